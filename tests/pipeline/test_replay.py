"""``ci-tools replay``: the daily user's conversation on a private copy of their memory, with the
live commit and the candidate, each built from its own commit of a real repository."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from ci_tools.__main__ import main
from sandbox.breaks import commit_breaking
from sandbox.world import World, git
from tests.support import ROOT, use

DAILY = 5550001
FACTS = ["my sister is called Mira", "I walk by the river at seven"]
KEY = Fernet.generate_key().decode()


@pytest.fixture
def replaying(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[World, Path]]:
    """A sandbox whose repository is this project with the daily user protected, their memory in
    production's Redis, and production's snapshot of it taken (encrypted)."""
    with World(tmp_path / "world", step=0.05, source=ROOT) as world:
        monkeypatch.chdir(world.repo)
        config = world.repo / "pyproject.toml"
        config.write_text(config.read_text().replace("protected_users = []", f"protected_users = [{DAILY}, 5550002]"))
        git(world.repo, "commit", "-qam", "the daily user is protected")
        prod = world.redis["production"].client()
        prod.set("prod:meta:env", "production")
        prod.rpush(f"prod:memory:{DAILY}", *FACTS)
        prod.hset(f"prod:user:{DAILY}:profile", mapping={"first_seen": "1700000000", "first_name": "Ada"})
        use(monkeypatch, {**world.secrets("production"), "MEMORY_SNAPSHOT_KEY": KEY})
        monkeypatch.setenv("SOURCE_REDIS_URL", world.redis["production"].url)
        out = tmp_path / "memory-before"
        assert main(["memory", "snapshot", "production", "--out", str(out)]) == 0
        yield world, out


def replay(snapshot: Path, candidate: str, live: str | None) -> int:
    return main(
        [
            "replay",
            "production",
            "--snapshot",
            str(snapshot),
            "--candidate",
            candidate,
            *(["--live", live] if live else []),
        ]
    )


def flat(text: str) -> str:
    """A table's text as one line: borders and wrapping gone."""
    return " ".join(re.sub(r"[│┃┏┓┗┛┡┩┳┻╇━─┬┴┼└┘┌┐]", " ", text).split())


def assert_private(text: str) -> None:
    for fact in FACTS:
        for word in re.findall(r"\w{4,}", fact):
            assert word not in text, f"{word!r} of the daily user's memory reached the output"


def test_a_harmless_commit_answers_as_the_live_one(replaying, capsys):
    world, snapshot = replaying
    live = git(world.repo, "rev-parse", "HEAD")
    candidate = world.commit("main", "a harmless change")
    assert replay(snapshot, candidate, live) == 0
    out = capsys.readouterr().out
    assert f"user {DAILY}" in out and "2 turn(s) answered as the live commit does" in flat(out)
    assert "user 5550002" in out and "has no memory in the snapshot" in flat(out)  # ⚠, not a stop
    assert_private(out)


def test_a_commit_that_forgets_the_daily_user_is_stopped(replaying, capsys):
    world, snapshot = replaying
    live = git(world.repo, "rev-parse", "HEAD")
    candidate = commit_breaking(world, "forgets the daily user", "store facts under facts:")
    assert replay(snapshot, candidate, live) == 5
    captured = capsys.readouterr()
    assert f"user {DAILY}, turn 2 (/recall): the candidate answers differently" in captured.err
    assert "lines changed: 1; masked diff: -xxxx" in captured.err  # the shape, every letter masked
    assert_private(captured.out + captured.err)


def test_a_commit_whose_memory_the_live_one_cannot_read_is_stopped(replaying, capsys):
    world, snapshot = replaying
    live = git(world.repo, "rev-parse", "HEAD")
    candidate = commit_breaking(world, "reshapes memory", "facts as one JSON value")
    assert replay(snapshot, candidate, live) == 5
    captured = capsys.readouterr()
    assert "this release writes memory the previous one cannot read — a rollback would not be safe" in captured.err
    assert "the candidate answers differently" not in captured.out  # it answers as before: only the way back breaks
    assert_private(captured.out + captured.err)


def test_a_candidate_that_cannot_start_is_named(replaying, capsys):
    world, snapshot = replaying
    live = git(world.repo, "rev-parse", "HEAD")
    candidate = commit_breaking(world, "crash at start", "a start that crashes")
    assert replay(snapshot, candidate, live) == 5
    err = capsys.readouterr().err
    assert f"the candidate {candidate[:12]} cannot start: it exited with status 1 at start" in err
    assert "strict" in err  # its last line: the TypeError


def test_the_first_release_runs_the_candidate_alone(replaying, capsys):
    world, snapshot = replaying
    candidate = git(world.repo, "rev-parse", "HEAD")
    assert not world.services["production"].deploys  # Render has nothing live
    assert main(["replay", "production", "--snapshot", str(snapshot), "--candidate", candidate]) == 0
    assert "every one (no live release to compare with)" in flat(capsys.readouterr().out)


def test_empty_turns_is_a_config_error_with_the_fix(replaying, capsys):
    world, snapshot = replaying
    config = world.repo / "pyproject.toml"
    text = config.read_text()
    assert 'turns = ["/start", "/recall"]' in text
    config.write_text(text.replace('turns = ["/start", "/recall"]', "turns = []"))
    head = git(world.repo, "rev-parse", "HEAD")
    assert replay(snapshot, head, head) == 3
    err = capsys.readouterr().err
    assert "turns is empty" in err and 'turns = ["/start", "/recall"]' in err


def test_a_commit_with_a_lock_of_its_own_runs_with_its_own_dependencies(tmp_path, monkeypatch):
    """Its uv.lock differs from this checkout's: uv sync --locked builds the tree's own venv."""
    import os
    import shutil
    import subprocess

    from ci_tools.pipeline.replay import interpreter

    tree = tmp_path / "candidate"
    tree.mkdir()
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(ROOT / "mindmate", tree / "mindmate")
    shutil.copytree(ROOT / "ci_tools", tree / "ci_tools")
    with (tree / "uv.lock").open("a") as lock:
        lock.write("# this commit's own lock\n")  # other bytes, the same resolution
    monkeypatch.chdir(ROOT)
    said: list[str] = []
    environ = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "UV_CACHE_DIR", "XDG_CACHE_HOME")}
    python = interpreter(tree, environ, said.append)
    assert python == str(tree / ".venv" / "bin" / "python")
    assert said and "candidate's own dependencies" in said[0]
    ran = subprocess.run(
        [python, "-c", "import telegram, redis, mindmate; print(mindmate.__file__)"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    assert ran.stdout.strip().startswith(str(tree))
    monkeypatch.chdir(tree)  # the same lock as the checkout's: this environment serves
    assert interpreter(tree, environ, said.append) == sys.executable


def test_the_judge_compares_only_where_the_live_commit_agrees_with_itself():
    """Diffy's rule: a turn the live commit answers differently on two fresh copies is noise, not
    compared; an ``ignore`` pattern masks what changes (a time) on every side."""
    from ci_tools.pipeline.replay import Answer, judge
    from ci_tools.settings import Replay

    replay = Replay(turns=("/start", "/recall"), ignore=(r"\d\d:\d\d",))
    ok = Answer(200, ("Good to see you again at 09:14",))
    first = {(1, 0): ok, (1, 1): Answer(200, ("fact A",))}
    second = {(1, 0): Answer(200, ("Good to see you again at 09:15",)), (1, 1): Answer(200, ("fact B",))}
    candidate = {(1, 0): Answer(200, ("Good to see you again at 10:02",)), (1, 1): Answer(200, ("anything",))}
    outcome = judge(replay, [1], first, second, candidate, dict(first))
    assert not outcome.stops  # the time is masked; turn 2 is noise, so its difference is no finding
    [item] = outcome.items
    assert item.warning and "turn(s) 2: the live commit answers differently each time" in item.detail

    broken = {**candidate, (1, 0): Answer(500)}
    outcome = judge(replay, [1], first, second, broken, dict(first))
    assert outcome.stops == ["user 1, turn 1 (/start): the candidate failed it (HTTP 500)"]
    after = {**first, (1, 0): Answer(None)}
    outcome = judge(replay, [1], first, second, candidate, after)
    assert "a rollback would not be safe (the live commit failed it: no answer)" in outcome.stops[0]
