"""Loaded by a bot that ci-tools started (``ci_tools/botrun``: this folder is on its PYTHONPATH).

An unchanged bot calls the Bot API at https://api.telegram.org. When ``CI_TOOLS_TELEGRAM_API``
is set, every httpx request (sync or async client: python-telegram-bot 21 and 22 use
``httpx.AsyncClient``) for that host goes to the given base URL instead, path and query kept:
the Telegram stand-in, or a capture server. No bot code changes, and nothing happens until the
bot imports httpx. Runs in the bot's process, not in ci-tools: it reads its own environment.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Sequence
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


class _WhenImported(importlib.abc.MetaPathFinder):
    """Patches httpx right after its own module has run, wherever it is installed."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "httpx":
            return None
        sys.meta_path.remove(self)  # once: the real finders locate it
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            _patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if TARGET:
    if "httpx" in sys.modules:
        _patch(sys.modules["httpx"])
    else:
        sys.meta_path.insert(0, _WhenImported())
