"""The Bot API clients' conformance modules share one stand-in a module and a bot a test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.telegram import FakeBot, FakeTelegram


@pytest.fixture(scope="module")
def telegram() -> Iterator[FakeTelegram]:
    """One Bot API stand-in for a client's whole module (tests/conftest.py starts one a test)."""
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def fake(telegram: FakeTelegram, request: pytest.FixtureRequest) -> FakeBot:
    """A bot of its own for each test, so that no test sees another's webhook or rate limit; its
    username names the client (the module's last word: ``aiogram``, ``ptb``) and the test."""
    client = request.module.__name__.rpartition("_")[2]
    return telegram.add_bot(f"{client}_{request.node.name[5:20]}_bot")
