"""Fixtures for the workflow tests: a sandbox World whose repository is this project, and act."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest
from cryptography.fernet import Fernet

from sandbox.world import World, git
from tests.conftest import ROOT
from tests.workflows.act import Act, Run

REPOSITORY = "mindmate/mindmate-release"
# Where the stand-ins are: the run's env file, not its secrets.
_NOT_SECRETS = ("CI_TOOLS_CONFIG", "RENDER_API_URL", "TELEGRAM_API_URL")


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    with World(tmp_path / "world", step=0.05, source=ROOT) as sandbox:
        git(sandbox.repo, "remote", "add", "origin", f"https://github.com/{REPOSITORY}.git")
        yield sandbox


@pytest.fixture
def act(world: World, tmp_path) -> Act:
    return Act(world, tmp_path / "act")


def environment_secrets(world: World, env: str, **extra: str) -> dict[str, str]:
    """What the GitHub environment ``env`` holds, as a secret file for act."""
    values = {k: v for k, v in world.secrets(env).items() if k not in _NOT_SECRETS}
    return {**values, **extra}


SNAPSHOT_KEY = Fernet.generate_key().decode()  # production's MEMORY_SNAPSHOT_KEY in these runs


def production_secrets(world: World, **extra: str) -> dict[str, str]:
    """What production.yml reads: the environment's secrets, its Key Value by the external URL
    (refused until the run admits itself) and the key its memory snapshots are encrypted with."""
    values = {
        "REDIS_URL": world.external_redis_url("production"),
        "MEMORY_SNAPSHOT_KEY": SNAPSHOT_KEY,
    }
    return environment_secrets(world, "production", **{**values, **extra})


def push(branch: str, sha: str) -> dict:
    return {
        "ref": f"refs/heads/{branch}",
        "after": sha,
        "repository": {"full_name": REPOSITORY, "default_branch": "main"},
    }


def dispatch(branch: str, **inputs: str) -> dict:
    return {
        "ref": f"refs/heads/{branch}",
        "inputs": inputs,
        "repository": {"full_name": REPOSITORY, "default_branch": "main"},
    }


def health(world: World, env: str) -> dict:
    return httpx.get(world.services[env].router.url + "/healthz", timeout=10).json()


def assert_no_secret(run: Run, world: World) -> None:
    """No secret value of either environment appears anywhere in act's log."""
    for env in ("staging", "production"):
        for name, value in environment_secrets(world, env).items():
            assert value not in run.log, f"{name} of {env} appears in act's log"
    assert SNAPSHOT_KEY not in run.log, "MEMORY_SNAPSHOT_KEY appears in act's log"


def start_live(world: World, env: str, sha: str, timeout: float = 30) -> None:
    """Put ``sha`` live on ``env`` through its deploy hook, outside any workflow (the set-up)."""
    service = world.services[env]
    httpx.post(f"{world.render.hook_url(service)}&ref={sha}", timeout=10)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            if health(world, env).get("commit") == sha:
                return
        time.sleep(0.1)
    raise AssertionError(f"{sha[:12]} did not go live on {env}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A workflow run is several act jobs, each with its own install: allow it minutes."""
    here = str(ROOT / "tests" / "workflows")
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.timeout(300))
