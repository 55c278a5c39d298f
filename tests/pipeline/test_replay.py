"""``ci-tools replay``: the daily user's conversation on a private copy of their memory, with the
live commit and the candidate, each built from its own commit of a real repository."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from ci_tools.__main__ import main
from ci_tools.pipeline.replay_bots import interpreter, powerful, why_it_stopped
from ci_tools.pipeline.replay_judge import Answer, Runs, judge
from ci_tools.settings import Replay
from sandbox.breaks import commit_breaking
from sandbox.world import World, git
from tests.support import ROOT, unmeasured, use

DAILY = 5550001
FACTS = ["my sister is called Mira", "I walk by the river at seven"]
KEY = Fernet.generate_key().decode()


@pytest.fixture
def replaying(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[World, Path]]:
    """A sandbox whose repository is this project with the daily user protected, their memory in
    production's Redis, and production's snapshot of it taken (encrypted)."""
    with World(tmp_path / "world", step=0.05, source=ROOT) as world:
        monkeypatch.chdir(world.repo)
        world.protect(DAILY, 5550002)
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


def stopped(replaying: tuple[World, Path], how: str, message: str) -> str:
    """A commit that ``how`` (sandbox/breaks.py), replayed against the live HEAD before it: the
    replay stops it (exit 5). Its sha."""
    world, snapshot = replaying
    live = git(world.repo, "rev-parse", "HEAD")
    candidate = commit_breaking(world, how, message)
    assert replay(snapshot, candidate, live) == 5
    return candidate


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
    stopped(replaying, "forgets the daily user", "store facts under facts:")
    captured = capsys.readouterr()
    assert f"user {DAILY}, turn 2 (/recall): the candidate answers differently" in captured.err
    assert "lines changed: 1; masked diff: -xxxx" in captured.err  # the shape, every letter masked
    assert_private(captured.out + captured.err)


def test_a_commit_whose_memory_the_live_one_cannot_read_is_stopped(replaying, capsys):
    stopped(replaying, "reshapes memory", "facts as one JSON value")
    captured = capsys.readouterr()
    assert "this release writes memory the previous one cannot read — a rollback would not be safe" in captured.err
    assert "the candidate answers differently" not in captured.out  # it answers as before: only the way back breaks
    assert_private(captured.out + captured.err)


def test_a_candidate_that_cannot_start_is_named(replaying, capsys):
    candidate = stopped(replaying, "crash at start", "a start that crashes")
    err = capsys.readouterr().err
    assert f"the candidate {candidate[:12]} cannot start: it exited with status 1 at start" in err
    assert "(TypeError: " in err and "strict" not in err  # its type; its words masked


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
    tree = tmp_path / "candidate"
    tree.mkdir()
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    for package in ("mindmate", "release_kit", "ci_tools"):  # what the wheel ships (module-name)
        shutil.copytree(ROOT / package, tree / package)
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
    replay = Replay(turns=("/start", "/recall"), ignore=(r"\d\d:\d\d",))
    ok = Answer(200, ("Good to see you again at 09:14",))
    first = {(1, 0): ok, (1, 1): Answer(200, ("fact A",))}
    second = {(1, 0): Answer(200, ("Good to see you again at 09:15",)), (1, 1): Answer(200, ("fact B",))}
    candidate = {(1, 0): Answer(200, ("Good to see you again at 10:02",)), (1, 1): Answer(200, ("anything",))}

    def runs(candidate: dict, after_candidate: dict) -> Runs:
        return Runs(candidate, first, second, after_candidate, dict(first), dict(first))

    outcome = judge(replay, [1], runs(candidate, dict(first)))
    assert not outcome.stops  # the time is masked; turn 2 is noise, so its difference is no finding
    [item] = outcome.items
    assert item.warning and "turn(s) 2: the live commit answers differently each time" in item.detail

    broken = {**candidate, (1, 0): Answer(500)}
    outcome = judge(replay, [1], runs(broken, dict(first)))
    assert outcome.stops == ["user 1, turn 1 (/start): the candidate failed it (HTTP 500)"]
    after = {**first, (1, 0): Answer(None)}
    outcome = judge(replay, [1], runs(candidate, after))
    assert "a rollback would not be safe (the live commit failed it: no answer)" in outcome.stops[0]


def test_the_rollback_direction_compares_the_live_commit_after_the_candidate_with_it_after_itself():
    """A turn that writes the same way in both releases (/start records first_seen, so the second
    visit says "again") is no difference; what only the candidate's memory changes is."""
    replay = Replay(turns=("/start",))
    new, again = Answer(200, ("Nice to meet you.",)), Answer(200, ("Good to see you again.",))
    first, after_itself = {(1, 0): new}, {(1, 0): again}
    assert not judge(replay, [1], Runs({(1, 0): new}, first, first, after_itself, after_itself, after_itself)).stops
    stopped = judge(replay, [1], Runs({(1, 0): new}, first, first, first, after_itself, after_itself))
    assert "a rollback would not be safe" in stopped.stops[0]
    noisy = judge(replay, [1], Runs({(1, 0): new}, first, first, first, after_itself, first))
    assert not noisy.stops and noisy.items[0].warning  # the live commit disagrees with itself there


def test_a_start_failure_is_named_by_its_type_and_shape_never_its_words():
    log = (
        'INFO starting\nTraceback (most recent call last):\n  File "x.py", line 3, in <module>\n'
        "ValueError: could not convert string to float: b'my sister is called Mira'\n"
    )
    said = why_it_stopped(log)
    assert said == "ValueError: xxxxx xxx xxxxxxx xxxxxx xx xxxxxx xxxx xxxxxx xx xxxxxx xxxxx"
    assert "Mira" not in said and "sister" not in said
    plain = why_it_stopped("mindmate: my sister is called Mira\n")
    assert "Mira" not in plain and "34 chars" in plain
    assert why_it_stopped("") == "it printed nothing"


@pytest.mark.parametrize(
    ("how", "finding"),
    [
        ("moves facts at start", "a rollback would not be safe"),  # its own answers are as before
        ("deletes memory at start", "the candidate answers differently"),
        ("rewrites memory at start", "the candidate answers differently"),
    ],
)
def test_a_migration_that_runs_when_the_bot_starts_is_stopped(replaying, capsys, how, finding):
    """Each bot starts on a copy of its own, loaded before it starts: its start-up writes are judged."""
    candidate = stopped(replaying, how, f"migrate: {how}")
    captured = capsys.readouterr()
    assert f"the replay stopped the release of {candidate[:12]}: user {DAILY}, turn 2 (/recall)" in captured.err
    assert finding in captured.err
    assert_private(captured.out + captured.err)


def test_a_release_identical_to_the_live_one_passes_on_a_profile_without_first_seen(replaying, capsys):
    """A legacy bot left no first_seen: /start writes it, in both releases alike."""
    world, _ = replaying
    prod = world.redis["production"].client()
    prod.hdel(f"prod:user:{DAILY}:profile", "first_seen")
    again = world.root / "memory-again"
    assert main(["memory", "snapshot", "production", "--out", str(again)]) == 0
    live = git(world.repo, "rev-parse", "HEAD")
    git(world.repo, "commit", "-q", "--allow-empty", "-m", "nothing changes")
    candidate = git(world.repo, "rev-parse", "HEAD")
    assert replay(again, candidate, live) == 0, capsys.readouterr().err
    assert "as the live commit does, before and after" in flat(capsys.readouterr().out)


def test_a_start_failure_quoting_a_fact_prints_no_word_of_it(replaying, capsys):
    candidate = stopped(replaying, "crash quoting a fact", "facts as scores")
    err = capsys.readouterr().err
    assert f"the candidate {candidate[:12]} cannot start: it exited with status 1 at start (ValueError: " in err
    assert_private(err)


def test_a_gate_that_would_check_nothing_fails(replaying, capsys, monkeypatch):
    world, snapshot = replaying
    head = git(world.repo, "rev-parse", "HEAD")
    assert replay(world.root / "no-such-snapshot", head, head) == 5
    assert "no snapshot to replay on" in capsys.readouterr().err
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", Fernet.generate_key().decode())  # not the one it was written with
    assert replay(snapshot, head, head) == 3
    assert "cannot be decrypted with this MEMORY_SNAPSHOT_KEY" in capsys.readouterr().err
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", KEY)
    config = world.repo / "pyproject.toml"
    config.write_text(config.read_text().replace(f"protected_users = [{DAILY}, 5550002]", "protected_users = []"))
    assert replay(snapshot, head, head) == 3
    assert "protected_users is empty, so the replay would check nothing" in capsys.readouterr().err
    config.write_text(config.read_text().replace("enabled = true", "enabled = false"))
    assert replay(snapshot, head, head) == 0  # turned off by the owner: it says so and passes
    assert "enabled = false" in capsys.readouterr().out


def _children(pid: int) -> set[int]:
    """Every process descended from ``pid``, from /proc (no psutil needed)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cli(args: list[str], environ: dict[str, str], **kwargs) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ci_tools", *args],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_cancel_mid_run_leaves_nothing_behind(replaying, tmp_path, signum):
    """GitHub's cancel: SIGINT, then SIGTERM. Either stops the private Redis copies, the bots and the
    capture servers, and removes the folders."""
    world, snapshot = replaying
    live = git(world.repo, "rev-parse", "HEAD")
    candidate = commit_breaking(world, "hangs at start", "a start stuck on a lock")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    environ = unmeasured({**os.environ, "TMPDIR": str(scratch)})  # cancelled from outside
    process = _cli(
        ["replay", "production", "--snapshot", str(snapshot), "--candidate", candidate, "--live", live], environ
    )
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the stuck candidate runs beside its Redis copy
            seen |= _children(process.pid)
            commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in seen if _alive(pid)]
            if any(b"-m\0mindmate" in c for c in commands) and sum(b"server" in c for c in commands) >= 3:
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        else:
            pytest.fail("the replay never had its bots and copies running")
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "ci-tools: interrupted" in err
    assert [pid for pid in seen if _alive(pid)] == []
    assert list(scratch.iterdir()) == []  # checkouts, logs, the prepared memory: all gone


def _dumps_its_ancestry(world, report: Path) -> str:
    """A candidate whose start writes what it can read of its own and its ancestors' environments."""
    main_py = world.repo / "mindmate" / "__main__.py"
    text = main_py.read_text()
    spy = (
        "def main() -> None:\n"
        "    import pathlib\n"
        "    seen, pid = [], os.getpid()\n"
        "    while pid > 1:\n"
        "        try:\n"
        '            seen.append(pathlib.Path(f"/proc/{pid}/environ").read_bytes())\n'
        "        except OSError:\n"
        "            pass\n"
        '        pid = int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])\n'
        f'    pathlib.Path("{report}").write_bytes(b"\\n".join(seen))\n'
    )
    main_py.write_text(text.replace("def main() -> None:\n", spy))
    git(world.repo, "commit", "-qam", "a candidate that reads its ancestors' environments")
    return git(world.repo, "rev-parse", "HEAD")


def test_the_bots_cannot_read_the_jobs_secrets(replaying, tmp_path):
    """Prepared in a step with the secrets, run in one without: the candidate reads its own and every
    ancestor's /proc/<pid>/environ and finds none of them. Run where an ancestor holds them, in
    Actions, the replay refuses before any bot starts."""
    world, snapshot = replaying
    live = git(world.repo, "rev-parse", "HEAD")
    report = tmp_path / "ancestry"
    candidate = _dumps_its_ancestry(world, report)
    secrets = {**world.secrets("production"), "MEMORY_SNAPSHOT_KEY": KEY}
    values = [v for k, v in secrets.items() if powerful(k) and len(v) >= 8]
    assert values
    prepared = tmp_path / "prepared"
    args = ["replay", "production", "--snapshot", str(snapshot), "--candidate", candidate, "--live", live]
    step = {k: v for k, v in os.environ.items() if not powerful(k)} | {"GITHUB_ACTIONS": "true"}

    one_shot = _cli(args, {**step, **secrets})
    _, err = one_shot.communicate(timeout=120)
    assert one_shot.returncode == 3, err
    assert "the bots under replay could read secrets from their ancestors' environment" in err
    assert f"in pid {one_shot.pid} (python" in err and not report.exists()  # refused before any bot started
    assert not any(v in err for v in values)

    done = _cli([*args, "--out", str(prepared)], {**step, **secrets})
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    ran = _cli(["replay", "--from", str(prepared)], step)
    out, err = ran.communicate(timeout=300)
    assert ran.returncode == 0, err
    assert "no secret is readable from the bots' ancestry" in out
    found = report.read_bytes()
    assert b"PATH=" in found  # it did read its ancestors' environments
    assert not [v for v in values if v.encode() in found]
    assert not prepared.exists()  # the prepared memory is gone with the run
