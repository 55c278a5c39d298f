"""Memory tests copy between two prefixed environments: the config after the move."""

from __future__ import annotations

import pytest

from tests.support import after_the_move


@pytest.fixture(autouse=True)
def _config_after_the_move(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    config = after_the_move(tmp_path_factory.mktemp("moved"))
    monkeypatch.chdir(config.parent)
