"""``kit.builder()``: python-telegram-bot's ``Application.builder()``, with the probe's request layer.

Everything an owner sets on the builder keeps its meaning (token, timeouts, a proxy, their own
``.request(...)``, persistence, defaults): the kit only wraps the request object the builder makes
for the Bot API calls in ``ProbeRequest`` (``getUpdates`` is left alone), and points the bot at
``TELEGRAM_API_URL`` when that is set (the owner's own ``.base_url(...)`` still wins).
"""

from __future__ import annotations

from telegram.ext import ApplicationBuilder
from telegram.request import BaseRequest

from release_kit import redact
from release_kit.application import KitApplication
from release_kit.request import ProbeRequest


class KitBuilder(ApplicationBuilder):
    def __init__(self) -> None:
        super().__init__()
        # A probe turn's answer waits for its block=False handlers (release_kit.application);
        # an owner's own .application_class(...) replaces it, and only that wait is lost.
        self.application_class(KitApplication)

    def token(self, token: str) -> KitBuilder:
        # From here on no log line holds it: python-telegram-bot logs its URLs (/bot<token>) at
        # DEBUG while it builds the bot, before the kit's server exists.
        redact.hide([token])
        super().token(token)
        return self

    def _build_request(self, get_updates: bool) -> BaseRequest:
        # python-telegram-bot builds the bot's two request objects here (21.x and 22.x alike;
        # tests/release_kit holds the wrapping in place across upgrades).
        request = super()._build_request(get_updates)
        return request if get_updates or isinstance(request, ProbeRequest) else ProbeRequest(request)


def kit_builder(telegram_api_url: str | None) -> KitBuilder:
    builder = KitBuilder()
    if telegram_api_url:
        builder.base_url(f"{telegram_api_url}/bot").base_file_url(f"{telegram_api_url}/file/bot")
    return builder


def records_probe_replies(request: BaseRequest) -> bool:
    """Was this bot built by ``kit.builder()`` (its probe turns' replies are kept, not sent)?"""
    return isinstance(request, ProbeRequest)
