"""What tests share that is not a fixture: the checkout's root, the webhook secret the bot is
given, and ``use`` for exporting a GitHub environment's secrets. Kept out of conftest.py so that
no test imports a conftest."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from ci_tools.context import Context, build

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_SECRET = "whsec-test-0123456789"


def use(monkeypatch: pytest.MonkeyPatch, values: dict[str, str], drop: tuple[str, ...] = ()) -> None:
    """Export ``values`` (a GitHub environment's secrets, say) for this test; unset ``drop``."""
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    for key in drop:
        monkeypatch.delenv(key, raising=False)


def context(**values: str) -> Context:
    """A Context as ``main()`` would build it from this test's environment (what ``use`` and
    monkeypatch set), plus ``values``: for tests that call a phase or a client directly."""
    return build({**os.environ, **values})


def after_the_move(directory: Path) -> Path:
    """The project's config as it reads after the daily user has moved (runbook step 9): staging
    has its own prefix, ``dev:``. The shipped files keep the legacy "" (render.yaml: "none")."""
    directory.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "pyproject.toml").read_text()
    moved = text.replace('key_prefix = ""', 'key_prefix = "dev:"', 1)
    assert moved != text, "pyproject.toml: staging's legacy key_prefix not found"
    (directory / "pyproject.toml").write_text(moved)
    blueprint = (ROOT / "render.yaml").read_text()
    (directory / "render.yaml").write_text(blueprint.replace('value: "none"', 'value: "dev:"', 1))
    return directory / "pyproject.toml"


def signed(token: str, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    """The header Telegram sends a bot's webhook: the environment's secret bound to that bot."""
    from mindmate.settings import bot_secret

    return {"X-Telegram-Bot-Api-Secret-Token": bot_secret(secret, token)}


def conversations(router: Any) -> int:
    """The probe conversations a service's public URL has served (the release's probe and each of
    the bake's looks): each ends with ``DELETE /probe/<nonce>``, the replies taken."""
    return sum(1 for method, path in list(router.requests) if method == "DELETE" and path.startswith("/probe/"))


def plain_text_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refactor's bug in the threaded bot's code: every plain message from now on fails in its
    handler (a KeyError), which /healthz counts as a handler failure."""

    async def boom(*args: object, **kwargs: object) -> None:
        raise KeyError("a refactor's bug")

    monkeypatch.setattr("mindmate.store.MemoryStore.append_history", boom)


def unmeasured(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) without coverage's subprocess measurement, for a child
    a test signals from outside while it works. Coverage's tracer takes a plain lock around a Python
    call when it first meets a file; a KeyboardInterrupt raised there by ci-tools' handler leaves it
    held, and the cleanup that follows waits on it for ever — a cancelled ``memory copy`` hung in
    ``coverage/collector.py`` ``lock_data``, 6 runs in 48 under ``--cov`` on a busy machine, none
    without (coveragepy/coveragepy#1892, open). The cancel is what these tests prove, not coverage."""
    env = dict(os.environ if environ is None else environ)
    for name in ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START"):
        env.pop(name, None)
    return env


def wait_until(condition: Callable[[], bool], what: str, deadline: float = 90.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after a generous ``deadline``."""
    stop = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < stop, f"{what} did not happen within {deadline:g} s"
        time.sleep(0.02)
