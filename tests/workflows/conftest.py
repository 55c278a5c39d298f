"""Fixtures for the workflow tests: a sandbox World whose repository is this project, and act."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.world import World, git
from tests.support import ROOT
from tests.workflows.act import Act
from tests.workflows.scenarios import REPOSITORY


@pytest.fixture
def world(tmp_path, request: pytest.FixtureRequest) -> Iterator[World]:
    """With ``@pytest.mark.built`` each deploy builds its commit and runs it as a process, as
    Render does: a commit that breaks the bot breaks the deployed bot (slower: a process per deploy)."""
    built = request.node.get_closest_marker("built") is not None
    with World(tmp_path / "world", step=0.05, source=ROOT, process=built) as sandbox:
        git(sandbox.repo, "remote", "add", "origin", f"https://github.com/{REPOSITORY}.git")
        yield sandbox


@pytest.fixture
def act(world: World, tmp_path) -> Act:
    return Act(world, tmp_path / "act")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A workflow run is several act jobs, each with its own install: allow it minutes."""
    here = str(ROOT / "tests" / "workflows")
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.timeout(300))
