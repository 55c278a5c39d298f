"""``Kit``: the few calls an owner's bot makes to meet the release pipeline's contract.

``Kit.from_environ()`` reads the environment once (one line and exit 1 on a bad value);
``kit.builder()`` replaces ``Application.builder()``; ``kit.key(name)`` prefixes a Redis key with
the environment's ``KEY_PREFIX``; ``kit.run_webhook(application, ...)`` replaces
``application.run_webhook(...)`` and takes the same arguments; ``kit.asgi(application, ...)`` is
the same surface as a Starlette app, for a bot that runs its own ASGI server.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import redis
import uvicorn
from starlette.applications import Starlette
from telegram.ext import Application

from release_kit import redact
from release_kit.builder import KitBuilder, kit_builder, records_probe_replies
from release_kit.config import ConfigError, KitConfig, read_config
from release_kit.marker import EnvMismatchError, claim_env_marker
from release_kit.oops import THANKS, add_oops
from release_kit.server import PROBE_PATH, Surface, build_app

# A probe_path the kit mounts and the health answer names: as health.schema.json's contract.probe_path.
PLAIN_PATH = re.compile(r"(?:/(?!\.\.?(?:/|$))[A-Za-z0-9._~-]+)+")

log = logging.getLogger("release_kit")


def _exit(message: str) -> NoReturn:
    sys.exit(f"release_kit: {message}")


class Kit:
    def __init__(self, config: KitConfig) -> None:
        self.config = config
        redact.hide([config.webhook_secret, redact.url_password(config.redis_url)])  # before any log line

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Kit:
        """The kit for this process's environment; a bad value ends the start with one line."""
        try:
            return cls(read_config(environ))
        except ConfigError as exc:
            _exit(str(exc))

    def key(self, name: str) -> str:
        """``name`` under this environment's key prefix (``KEY_PREFIX``; ``none``: as it is)."""
        return f"{self.config.key_prefix}{name}"

    def builder(self) -> KitBuilder:
        """``Application.builder()``, whose bot keeps the probe user's replies instead of sending them."""
        return kit_builder(self.config.telegram_api_url)

    def oops(self, application: Application, command: str = "oops", thanks: str | None = None) -> None:
        """Optional: ``/<command>`` lets the user say something is off; the owner is told
        (OWNER_CHAT_ID) which commit is live and when, never who or what (release_kit.oops)."""
        if not re.fullmatch(r"[a-z0-9_]{1,32}", command):
            _exit(f"oops(command={command!r}): a Telegram command is 1-32 of a-z, 0-9 and _")
        add_oops(application, self.config, command, thanks or THANKS)

    def claim(self) -> None:
        """Claim this environment's Redis at start: EnvMismatchError for one another environment
        claimed; a Redis that does not answer is logged and claimed later (503 until then)."""
        try:
            client = redis.Redis.from_url(self.config.redis_url, socket_connect_timeout=5, socket_timeout=5)
            try:
                claim_env_marker(client, self.config.key_prefix, self.config.env)
            finally:
                client.close()
        except (redis.RedisError, OSError) as exc:
            # Serve anyway: the health answer says 503 until Redis answers, so Render keeps routing
            # to the old instance, and updates get a 503 so Telegram delivers them again later.
            log.warning(
                "Redis does not answer (%s): health answers 503 until it does; check REDIS_URL", type(exc).__name__
            )

    def asgi(
        self,
        application: Application,
        url_path: str = "",
        *,
        health_path: str = "/healthz",
        webhook_url: str | None = None,
        allowed_updates: Sequence[str] | None = None,
        probe_path: str = PROBE_PATH,
        **set_webhook_extra: Any,
    ) -> Starlette:
        """The webhook at ``url_path``, the health answer at ``health_path`` and, for a bot built by
        ``kit.builder()``, the probe's replies at ``<probe_path>/{nonce}`` (``/probe`` unless the
        owner's server has that path already: the health answer tells the pipeline which): one
        Starlette app whose lifespan initializes, starts and stops ``application`` and sets its webhook."""
        webhook_path, health = _path(url_path), _path(health_path)
        conversation = records_probe_replies(application.bot.request)
        probe = _path(probe_path).rstrip("/")
        if conversation and (not probe or probe == health or health.startswith(probe + "/")):
            raise ValueError(f"probe_path {probe_path!r} must be a path of its own, not / or the health path")
        if conversation and not PLAIN_PATH.fullmatch(probe):
            # The health answer tells the pipeline this path and it requests <probe_path>/<nonce>:
            # a query, a fragment, a . or .. segment (clients resolve it away) or a {…} (a Starlette
            # parameter) would name a place no request reaches, and the probe would fail.
            raise ValueError(
                f"probe_path {probe_path!r} must be a plain path: segments of letters, digits and -._~, "
                "no query, fragment, . or .. (e.g. /ops/probe)"
            )
        taken = {health, *([probe] if conversation else [])}
        if webhook_path in taken or (webhook_path.startswith(probe + "/") and conversation):
            raise ValueError(f"url_path {webhook_path!r} is one of the kit's own paths: pick another")
        return build_app(
            self.config,
            application,
            Surface(
                webhook_path=webhook_path,
                health_path=health,
                webhook_url=self._webhook_url(webhook_path, webhook_url),
                allowed_updates=allowed_updates,
                set_webhook_extra={k: v for k, v in set_webhook_extra.items() if v is not None},
                conversation=conversation,
                probe_path=probe,
            ),
        )

    def run_webhook(
        self,
        application: Application,
        listen: str | None = None,
        port: int | None = None,
        url_path: str = "",
        cert: object = None,
        key: object = None,
        bootstrap_retries: object = None,
        webhook_url: str | None = None,
        allowed_updates: Sequence[str] | None = None,
        drop_pending_updates: bool | None = None,
        ip_address: str | None = None,
        max_connections: int | None = None,
        close_loop: object = None,
        stop_signals: object = None,
        secret_token: str | None = None,
        unix: object = None,
        *,
        health_path: str = "/healthz",
        probe_path: str = PROBE_PATH,
    ) -> None:
        """``application.run_webhook(...)``'s arguments, served with the contract on ``PORT``.

        ``bootstrap_retries``, ``close_loop`` and ``stop_signals`` are accepted and left to uvicorn
        (it stops on SIGINT/SIGTERM); a certificate, a unix socket or an own ``secret_token`` are
        refused: Render terminates TLS, routes to ``PORT``, and the secret is the environment's."""
        for name, value in (("cert", cert), ("key", key), ("unix", unix), ("secret_token", secret_token)):
            if value is not None:
                _exit(
                    f"run_webhook({name}=...) is not supported by the kit: drop it "
                    "(the webhook secret comes from TELEGRAM_WEBHOOK_SECRET, TLS from Render)"
                )
        try:
            app = self.asgi(
                application,
                url_path,
                health_path=health_path,
                webhook_url=webhook_url,
                allowed_updates=allowed_updates,
                probe_path=probe_path,
                drop_pending_updates=drop_pending_updates,
                ip_address=ip_address,
                max_connections=max_connections,
            )
            self.claim()
        except (ValueError, EnvMismatchError) as exc:
            _exit(str(exc))
        host, served = listen or self.config.host, port or self.config.port
        log.info("serving ENV=%s commit=%s on %s:%s", self.config.env, self.config.short_commit, host, served)
        uvicorn.run(app, host=host, port=served, log_level="info", access_log=False)

    def _webhook_url(self, path: str, given: str | None) -> str | None:
        """The owner's absolute ``webhook_url`` if given, else RENDER_EXTERNAL_URL + the path."""
        if given and given.startswith(("https://", "http://")):
            return given
        return f"{self.config.external_url}{path}" if self.config.external_url else None


def _path(path: str) -> str:
    """A path as python-telegram-bot takes ``url_path``: its leading slash optional."""
    return "/" + path.lstrip("/")
