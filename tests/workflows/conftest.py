"""Fixtures for the workflow tests: a sandbox World whose repository is this project, and act."""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.breaks import commit_breaking
from sandbox.tools import find_tool
from sandbox.world import World, git
from tests.memory.helpers import seed_user
from tests.support import ROOT
from tests.workflows.act import Act, Run
from tests.workflows.scenarios import REPOSITORY, live_on_production, production_secrets, push


@pytest.fixture
def world(tmp_path, request: pytest.FixtureRequest) -> Iterator[World]:
    """With ``@pytest.mark.built`` each deploy builds its commit and runs it as a process, as
    Render does: a commit that breaks the bot breaks the deployed bot (slower: a process per deploy)."""
    built = request.node.get_closest_marker("built") is not None
    with this_project(tmp_path / "world", built=built) as sandbox:
        yield sandbox


@contextlib.contextmanager
def this_project(root: Path, *, built: bool) -> Iterator[World]:
    with World(root, step=0.05, source=ROOT, process=built) as sandbox:
        git(sandbox.repo, "remote", "add", "origin", f"https://github.com/{REPOSITORY}.git")
        yield sandbox


@dataclass(frozen=True)
class Rejected:
    """One production.yml run that released a bad commit over a good one and rolled it back."""

    world: World
    act: Act
    good: str
    bad: str
    run: Run


@pytest.fixture(scope="session")
def rejected_release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rejected]:
    """A good commit live on production (by its deploy hook), production's memory seeded, then a
    push of a commit whose webhook forgot its secret, built and run as Render runs it: its probe
    fails and the run rolls back. Three tests read this one run (the rollback itself, the snapshot
    it names, rollback.yml's defaults after it), each of which ran it alone (~40 s a run).
    Nothing a reader does changes what the others assert: rollback.yml with its defaults refuses
    here and changes nothing on Render. Under xdist each worker that draws one of the three runs
    it once (``--dist loadgroup`` would keep them on one worker, but pytest-xdist 3.8 cannot group
    under pytest 9.2: the group suffix it writes to ``item._nodeid`` is not read back;
    pytest-dev/pytest-xdist#1386, fix open in #1388)."""
    root = tmp_path_factory.mktemp("rejected")
    with this_project(root / "world", built=True) as world:
        seed_user(world.redis["production"].client(), "prod:")
        act = Act(world, root / "act")
        good = live_on_production(world, "a good release")
        bad = commit_breaking(world, "open webhook", "a webhook that forgets its secret")
        run = act.run("production.yml", "push", secrets=production_secrets(world), payload=push("main", bad))
        yield Rejected(world, act, good, bad, run)


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
