"""What tests share that is not a fixture: the checkout's root, the webhook secret the bot is
given, and ``use`` for exporting a GitHub environment's secrets. Kept out of conftest.py so that
no test imports a conftest."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_SECRET = "whsec-test-0123456789"


def use(monkeypatch: pytest.MonkeyPatch, values: dict[str, str], drop: tuple[str, ...] = ()) -> None:
    """Export ``values`` (a GitHub environment's secrets, say) for this test; unset ``drop``."""
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    for key in drop:
        monkeypatch.delenv(key, raising=False)
