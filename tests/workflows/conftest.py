"""Fixtures for the workflow tests: a sandbox World whose repository is this project, and act."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator

import pytest

from sandbox.tools import find_tool
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


@pytest.fixture(scope="session")
def pipeline_wheel(tmp_path_factory: pytest.TempPathFactory) -> str:
    """This checkout as a wheel, ``<path>#sha256=<hex>``: what an adopted repository's pin to one
    commit installs (offline, a wheel built once a session stands in for the commit)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [find_tool("uv"), "build", "--wheel", "--out-dir", str(out), "--offline", "--quiet"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    [wheel] = out.glob("*.whl")
    return f"{wheel}#sha256={hashlib.sha256(wheel.read_bytes()).hexdigest()}"


@pytest.fixture
def act(world: World, tmp_path) -> Act:
    return Act(world, tmp_path / "act")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A workflow run is several act jobs, each with its own install: allow it minutes."""
    here = str(ROOT / "tests" / "workflows")
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.timeout(300))
