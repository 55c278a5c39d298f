"""``KitApplication``: python-telegram-bot's ``Application``, whose probe turns wait for their
non-blocking handlers.

A handler registered with ``block=False`` (python-telegram-bot's way to keep a slow handler, an
LLM call say, from holding up the others) runs in a task of its own, after ``process_update``
returns. The probe reads its replies right after the webhook's answer, so without waiting for
that task a bot whose handlers do not block could never pass its probe. ``kit.builder()`` builds
this class (an owner's own ``.application_class(...)`` still wins); real users' updates are
untouched: only a probe turn's tasks are noted, and only its answer waits for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator
from typing import Any, TypeVar

from telegram.ext import Application

from release_kit import probe

RT = TypeVar("RT")


class KitApplication(Application[Any, Any, Any, Any, Any, Any]):
    def create_task(
        self,
        coroutine: Generator[asyncio.Future[object], None, RT] | Awaitable[RT],
        update: object | None = None,
        *,
        name: str | None = None,
    ) -> asyncio.Task[RT]:
        task = super().create_task(coroutine, update, name=name)
        probe.started(task)
        return task
