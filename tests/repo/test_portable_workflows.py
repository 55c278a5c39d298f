"""The workflows every adopted repository gets assume nothing of ours: not our bot, not uv, not
our webhook path. And what decides it (OURS_ONLY, the pin, the required checks) holds."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from ci_tools.errors import ConfigError
from ci_tools.repo.workflow_files import (
    OURS_ONLY,
    PIN,
    adopted_set,
    adopted_workflows,
    pinned_lock,
    pull_request_checks,
)
from sandbox.tools import find_tool
from tests.support import ROOT

# What a workflow or the setup action may not say in a repository whose bot is not ours.
FORBIDDEN = {
    "mindmate": re.compile(r"mindmate", re.IGNORECASE),  # our bot, our package, our repository
    "uv sync": re.compile(r"\buv\s+sync\b"),  # a uv project with our extras
    "uv run": re.compile(r"\buv\s+run\b"),
    "uv.lock": re.compile(r"\buv\.lock\b"),  # a lock the bot may not have
    "python -m <bot>": re.compile(r"python3?\s+-m\s+(?!pip\b|venv\b)\w"),  # starting a bot by module
    "/telegram": re.compile(r"/telegram\b"),  # our webhook path
}


def assumptions(text: str) -> list[str]:
    """Each assumption of ours that ``text`` makes, by name."""
    return [name for name, pattern in FORBIDDEN.items() if pattern.search(text)]


ADOPTED_YAML = [name for name in adopted_set(ROOT) if name.endswith(".yml")]


def test_the_adopted_set_is_every_workflow_but_ours_and_the_setup_action():
    workflows = {p.name for p in (ROOT / ".github/workflows").glob("*.yml")}
    assert workflows >= OURS_ONLY, "OURS_ONLY names a workflow that does not exist"
    assert {Path(name).name for name in ADOPTED_YAML} == (workflows - OURS_ONLY) | {"action.yml"}
    assert {"ci.yml", "production.yml", "branch-flow.yml"} <= {p.name for p in adopted_workflows(ROOT)}
    assert {PIN, ".github/rulesets/main.json", ".github/rulesets/develop.json"} <= set(adopted_set(ROOT))


@pytest.mark.parametrize("name", ADOPTED_YAML)
def test_an_adopted_file_assumes_nothing_of_ours(name):
    assert assumptions((ROOT / name).read_text()) == [], f"{name} would break in a repository whose bot is not ours"


@pytest.mark.parametrize(
    ("line", "caught"),
    [
        ("        run: uv sync --locked --extra tools", "uv sync"),
        ("        run: uv run ci-tools release production", "uv run"),
        ("        cache-dependency-glob: uv.lock", "uv.lock"),
        ("        run: .venv/bin/python -m mindmate", "mindmate"),
        ("        run: python -m bot", "python -m <bot>"),
        ('        run: curl "$BASE_URL/telegram"', "/telegram"),
    ],
)
def test_the_check_catches_each_assumption(line, caught):
    """Guard against a test that cannot fail: each assumption, added to ci.yml, is named."""
    text = (ROOT / ".github/workflows/ci.yml").read_text() + line + "\n"
    assert caught in assumptions(text)


def test_only_ours_may_assume_our_project():
    """The point of OURS_ONLY: ci-self.yml installs from uv.lock and contract-drift reads our specs."""
    for name in OURS_ONLY:
        text = (ROOT / ".github/workflows" / name).read_text()
        assert assumptions(text) or "ci_tools/" in text, f"{name} assumes nothing of ours: adopt it instead"


@pytest.mark.parametrize("branch", ["main", "develop"])
def test_a_pull_request_gets_the_checks_its_workflows_produce(branch, tmp_path):
    assert pull_request_checks(ROOT, branch) == ["branch-flow", "lint", "pipeline-tests", "test"]
    for name in adopted_set(ROOT):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    assert pull_request_checks(tmp_path, branch) == ["branch-flow", "test"]
    # branch-flow runs only into main and develop; ci.yml into any base.
    assert pull_request_checks(tmp_path, "feature/x") == ["test"]


def test_the_pin_is_uv_lock_as_the_setup_action_installs_it():
    """pylock.toml holds exactly uv.lock's versions and hashes of the tools extra: a dependabot bump
    of uv.lock without the pin would run the pipeline on libraries its tests never ran with."""
    command = ["uv", "export", "--frozen", "--format", "pylock.toml", "--no-default-groups", "--extra", "tools"]
    exported = subprocess.run(
        [find_tool("uv"), *command[1:], "--no-header", "--quiet"],
        cwd=ROOT,
        env={**os.environ, "UV_OFFLINE": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pinned = (ROOT / PIN).read_text()

    def packages(text: str) -> list[dict]:
        found = tomllib.loads(text)["packages"]
        return [{k: v for k, v in p.items() if k != "directory"} for p in found]  # the checkout's path differs

    assert packages(pinned) == packages(exported), f"{PIN} is stale: run `{' '.join(command)} -o {PIN}`"
    assert f"{' '.join(command)} -o {PIN}" in pinned.splitlines()[1], "its header says how to regenerate it"


def test_a_commit_pin_replaces_only_the_checkout():
    lock = (ROOT / PIN).read_text()
    commit = "0123456789abcdef0123456789abcdef01234567"
    pinned = pinned_lock(lock, f"git+https://github.com/someone/release-pipeline.git@{commit}")
    [own] = [p for p in tomllib.loads(pinned)["packages"] if "vcs" in p]
    assert own["vcs"] == {"type": "git", "url": "https://github.com/someone/release-pipeline", "commit-id": commit}
    assert not [p for p in tomllib.loads(pinned)["packages"] if "directory" in p]
    assert len(pinned.splitlines()) == len(lock.splitlines())


def test_a_wheel_pin_carries_its_hash(tmp_path):
    digest = hashlib.sha256(b"a wheel").hexdigest()
    pinned = pinned_lock((ROOT / PIN).read_text(), f"{tmp_path}/ci_tools-1-py3-none-any.whl#sha256={digest}")
    [own] = [p for p in tomllib.loads(pinned)["packages"] if "wheels" in p and "path" in p["wheels"][0]]
    assert own["wheels"] == [{"path": f"{tmp_path}/ci_tools-1-py3-none-any.whl", "hashes": {"sha256": digest}}]


@pytest.mark.parametrize(
    "source",
    [
        "git+https://github.com/someone/release-pipeline@main",  # a branch moves: not a pin
        "https://example.com/ci_tools-1-py3-none-any.whl",  # a wheel without its hash
        "ci-tools==1.0",
        'git+https://github.com/a/b"injected = 1@' + "0" * 40,  # nothing but a URL goes into the TOML
    ],
)
def test_what_is_no_pin_is_refused_with_the_forms_that_are(source):
    with pytest.raises(ConfigError, match="cannot pin ci-tools") as refused:
        pinned_lock((ROOT / PIN).read_text(), source)
    assert "@<40-hex commit>" in str(refused.value)


def test_a_lock_that_does_not_install_the_checkout_cannot_be_pinned():
    already = pinned_lock((ROOT / PIN).read_text(), "git+https://github.com/a/b@" + "0" * 40)
    with pytest.raises(ConfigError, match="does not install the checkout"):
        pinned_lock(already, "git+https://github.com/a/b@" + "1" * 40)
