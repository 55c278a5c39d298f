"""What tests share that is not a fixture: the checkout's root, the webhook secret the bot is
given, and ``use`` for exporting a GitHub environment's secrets. Kept out of conftest.py so that
no test imports a conftest."""

from __future__ import annotations

import os
from pathlib import Path

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
