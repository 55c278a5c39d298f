"""What a workflow scenario is made of: the events act is given, the secrets of each GitHub
environment, and the checks every scenario shares (nothing secret in act's log)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from sandbox.world import World, git
from tests.support import ROOT
from tests.workflows.act import Run

REPOSITORY = "mindmate/mindmate-release"
OWNER_BOT = ROOT / "tests" / "fixtures" / "owner_bot"
KIT_PATCH = ROOT / "tests" / "fixtures" / "owner_bot_kit.patch"  # the kit lines docs/CONTRACT.md names
# Where the stand-ins are: the run's env file, not its secrets.
_NOT_SECRETS = ("CI_TOOLS_CONFIG", "RENDER_API_URL", "TELEGRAM_API_URL")


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


def assert_backup_kept_before_the_write(log: str) -> None:
    """The upload of the backup finished before the step that writes began."""
    kept = log.index("✅  Success - Main Keep the encrypted")
    writing = log.index("⭐ Run Main Write from that plan")
    assert kept < writing, "the backup was not kept before the write"
    assert "it exists before anything is written" in log[:writing]


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


def live_on_production(world: World, message: str) -> str:
    """A new commit on main put live on production by its deploy hook: the set-up of a test whose
    subject is a later run (a whole production.yml run cost such a test ~30-40 s; the release
    itself is what test_release_workflows and test_memory_safety_workflows run)."""
    sha = world.commit("main", message)
    start_live(world, "production", sha, timeout=120)  # built: a process per deploy, on a busy machine
    return sha


def adopt(root: Path, pin: str) -> str:
    """``ci-tools adopt ROOT --yes --pin PIN`` as the owner runs it; what it said."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CI_TOOLS_", "GITHUB_", "RUNNER_"))}
    done = subprocess.run(
        [sys.executable, "-m", "ci_tools", "adopt", str(root), "--yes", "--pin", pin],
        cwd=root.parent,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def adopted_owner_bot(root: Path, pin: str) -> Path:
    """The owner's bot (tests/fixtures/owner_bot: module ``bot``, requirements.txt, no uv.lock)
    in a git repository of its own, adopted as the owner adopts it, the setup action pinned to
    ``pin``. Their code is untouched; nothing is committed yet."""
    shutil.copytree(OWNER_BOT, root)
    git(root, "init", "-q", "-b", "main")
    adopt(root, pin)
    return root
