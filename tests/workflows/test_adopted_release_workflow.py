"""staging.yml in act, in an ADOPTED repository whose bot is not ours (issue 41's must-show):
tests/fixtures/owner_bot (module ``bot``, requirements.txt, no uv.lock) after ``ci-tools adopt
--yes --pin <a wheel of this checkout>``. A push to develop installs ci-tools from the pin alone,
deploys the owner's bot to the Render stand-in, which builds and starts it with ITS render.yaml
commands, and probes it at the level it reaches."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from ci_tools.memory.files import RecordFile
from ci_tools.repo.workflow_files import PIN
from sandbox.world import World, git
from tests.workflows.act import Act
from tests.workflows.scenarios import (
    KIT_PATCH,
    REPOSITORY,
    SNAPSHOT_KEY,
    adopt,
    adopted_owner_bot,
    assert_no_secret,
    dispatch,
    environment_secrets,
    production_secrets,
    push,
)

USER = 5550123  # someone talking to the staging bot


@pytest.fixture
def adopted(tmp_path: Path, pipeline_wheel: str) -> Iterator[tuple[World, Act]]:
    owner = adopted_owner_bot(tmp_path / "ava", pipeline_wheel)
    with World(tmp_path / "world", step=0.05, source=owner) as world:
        git(world.repo, "remote", "add", "origin", f"https://github.com/{REPOSITORY}.git")
        yield world, Act(world, tmp_path / "act")


def _answers(world: World, env: str, text: str) -> str:
    """What the environment's bot replies to a user's ``text`` (the update goes where its webhook is)."""
    bot = world.bots[env]
    before = len(world.telegram.replies_to(bot, USER))
    world.telegram.send_user_message(bot, USER, text)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        replies = world.telegram.replies_to(bot, USER)
        if len(replies) > before:
            return replies[-1]
        time.sleep(0.05)
    raise AssertionError(f"@{bot.username} did not answer {text!r}")


@pytest.mark.timeout(600)
def test_a_push_to_develop_deploys_the_owners_bot_by_its_own_commands_and_probes_its_level(adopted, pipeline_wheel):
    world, act = adopted
    repo = world.repo
    assert not (repo / "uv.lock").exists() and not (repo / "ci_tools").exists()
    assert "wheels = [{ path =" in (repo / PIN).read_text()  # ci-tools from the pin, nothing of the bot's
    workflows = {p.name: p.read_text() for p in (repo / ".github").rglob("*.yml")}
    assert not [name for name, text in workflows.items() if "mindmate" in text.lower()]
    assert not [name for name, text in workflows.items() if "uv.lock" in text]

    sha = world.commit("develop", "Ava: the pipeline adopted")
    started = time.monotonic()
    run = act.run("staging.yml", "push", secrets=environment_secrets(world, "staging"), payload=push("develop", sha))
    took = time.monotonic() - started
    assert run.ok, run.tail(80)
    print(f"staging.yml in act, the bot unchanged: {took:.1f}s")
    assert "ci-tools 0.1.0, as pinned by .github/actions/setup-ci-tools/pylock.toml" in run.log
    assert "uv sync" not in run.log and "uv.lock" not in run.log  # nothing of a lock the bot does not have
    assert_no_secret(run, world)

    service = world.services["staging"]
    [live] = [d for d in service.deploys if d["status"] == "live"]
    assert live["commit"]["id"] == sha
    # Render built and started the commit by the render.yaml the owner's commit holds: theirs, not ours
    assert (service.built.commands.build, service.built.commands.start) == (
        "pip install -r requirements.txt",
        "python -m bot",
    )
    assert "Hi, I'm Ava" in _answers(world, "staging", "/start")
    # probed at ITS level, and the run says what that level could not verify
    assert (
        "| ⚠ | level | base — not verified: health (health_path is empty: the config says the bot has none), "
        "handler-failure counts (read in the health answer), conversation (needs health) |"
    ) in run.log
    assert "| ✓ | token | @ava_dev_bot" in run.log and "| ✓ | webhook |" in run.log

    # The kit lines docs/CONTRACT.md names, adopt again (it finds the health endpoint), pushed:
    # the same workflow now reaches the conversation level.
    git(repo, "checkout", "-q", "develop")
    git(repo, "apply", str(KIT_PATCH))
    again = adopt(repo, pipeline_wheel)
    assert "health_path `/healthz`" in again, again
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Ava: the kit lines")
    sha = git(repo, "rev-parse", "HEAD")
    started = time.monotonic()
    run = act.run("staging.yml", "push", secrets=environment_secrets(world, "staging"), payload=push("develop", sha))
    took = time.monotonic() - started
    assert run.ok, run.tail(80)
    print(f"staging.yml in act, the bot with the kit lines: {took:.1f}s")
    assert "| ✓ | level | conversation" in run.log, run.tail(40)
    assert "| ✓ | conversation |" in run.log
    assert [d["commit"]["id"] for d in service.deploys if d["status"] == "live"] == [sha]
    assert_no_secret(run, world)


@pytest.mark.timeout(600)
def test_the_first_production_release_of_the_unchanged_bot_snapshots_its_unmarked_memory(adopted):
    """production.yml snapshots production's memory before it deploys, and a base-level bot writes
    no meta:env marker: the snapshot must not refuse its Redis (that failed every first release),
    must say in one ⚠ line that nothing marks it, and must leave it unwritten. The replay is skipped
    by dispatch here (it has its own tests, and needs the owner's protected users from init)."""
    world, act = adopted
    memory = world.redis["production"].client()
    memory.rpush(f"memory:{USER}", "likes tea", "sister Mia")  # what bot/__main__.py keeps: no prefix
    memory.rpush(f"user:{USER}:history", "2026-12-01 user: likes tea")
    assert memory.get("meta:env") is None
    before = {key: memory.dump(key) for key in memory.scan_iter()}
    sha = world.commit("main", "Ava: the pipeline adopted")
    run = act.run(
        "production.yml",
        "workflow_dispatch",
        secrets=production_secrets(world),
        payload=dispatch("main", skip_replay="true"),
    )
    assert run.ok, run.tail(80)
    assert "production's Redis has no meta:env marker (its bot is at the base level" in run.log
    assert "memory snapshot of production: 2 key(s)" in run.log
    [path] = (act.artifacts / str(run.run_id) / f"memory-before-{sha}").glob("*.jsonl")
    file = RecordFile(path, Fernet(SNAPSHOT_KEY.encode()))
    assert file.header["marker"] is None and {r.key for r in file.records()} == set(before)
    assert {key: memory.dump(key) for key in memory.scan_iter()} == before  # read, never written
    assert [d["commit"]["id"] for d in world.services["production"].deploys if d["status"] == "live"] == [sha]
    assert_no_secret(run, world)
