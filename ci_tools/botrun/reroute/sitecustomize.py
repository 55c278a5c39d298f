"""Loaded by a bot that ci-tools started (``ci_tools/botrun``: this folder is on its PYTHONPATH).

An unchanged bot calls the Bot API at https://api.telegram.org. When ``CI_TOOLS_TELEGRAM_API``
is set, every request for that host goes to the given base URL instead, path and query kept
(the Telegram stand-in, or a capture server), whichever of the two HTTP clients Telegram
libraries use makes it: httpx (sync or async client: python-telegram-bot 21 and 22 use
``httpx.AsyncClient``) or aiohttp (aiogram). No bot code changes, and nothing happens until the
bot imports one of them. Another client's calls (requests: pyTelegramBotAPI) are not rerouted.

Python runs only the first ``sitecustomize`` on sys.path, and this folder comes first: the
bot's own (on its PYTHONPATH, in its virtualenv) is run after this one, as if it were alone.
Runs in the bot's process, not in ci-tools: it reads its own environment.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

TELEGRAM_HOST = "api.telegram.org"
TARGET = os.environ.get("CI_TOOLS_TELEGRAM_API", "").rstrip("/")


def _patch(httpx: Any) -> None:
    """Wrap ``Client.send`` and ``AsyncClient.send``: every request passes through one of them."""

    def reroute(request: Any) -> None:
        if request.url.host != TELEGRAM_HOST:
            return
        target = httpx.URL(TARGET + request.url.raw_path.decode("ascii"))
        request.url = target
        request.headers["Host"] = target.netloc.decode("ascii")

    sync_send = httpx.Client.send
    async_send = httpx.AsyncClient.send

    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        reroute(request)
        return sync_send(self, request, **kwargs)

    async def send_async(self: Any, request: Any, **kwargs: Any) -> Any:
        reroute(request)
        return await async_send(self, request, **kwargs)

    httpx.Client.send = send
    httpx.AsyncClient.send = send_async


def _patch_aiohttp(aiohttp: Any) -> None:
    """Wrap ``ClientSession._request``: ``request``, ``get``, ``post`` … all pass through it."""
    from yarl import URL  # aiohttp's own URL type: installed with it

    original = aiohttp.ClientSession._request

    async def _request(self: Any, method: str, str_or_url: Any, *args: Any, **kwargs: Any) -> Any:
        url = URL(str_or_url)
        if url.host == TELEGRAM_HOST:
            str_or_url = URL(TARGET + url.raw_path_qs, encoded=True)
        return await original(self, method, str_or_url, *args, **kwargs)

    aiohttp.ClientSession._request = _request


PATCHES: dict[str, Callable[[Any], None]] = {"httpx": _patch, "aiohttp": _patch_aiohttp}


class _WhenImported(importlib.abc.MetaPathFinder):
    """Patches each client right after its own module has run, wherever it is installed."""

    def __init__(self, pending: dict[str, Callable[[Any], None]]) -> None:
        self.pending = pending

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        patch = self.pending.pop(fullname, None)
        if patch is None:
            return None
        if not self.pending:
            sys.meta_path.remove(self)  # done: the real finders locate the rest
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _run_the_bots_own() -> None:
    """The next ``sitecustomize`` on sys.path after this folder's, run as Python would have."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


if TARGET:
    waiting = {}
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
        else:
            waiting[name] = patch
    if waiting:
        sys.meta_path.insert(0, _WhenImported(waiting))
_run_the_bots_own()
