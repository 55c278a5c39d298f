"""Attacks on the replay gate (review of fc0dcbc): each test states what the gate promises and
fails while the promise does not hold. Real processes throughout: a sandbox World with real Redis,
real commits started as bots, and the run step started as GitHub's runner starts it (bash with
the workflow's own ``run:`` line, cancelled with the runner's signals)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from ci_tools.__main__ import main
from ci_tools.pipeline.replay_bots import powerful
from sandbox.breaks import BREAKS
from sandbox.world import World, git
from tests.pipeline import test_replay as base
from tests.pipeline.test_replay import DAILY, KEY, _alive, _children, _cli, flat, replay
from tests.support import ROOT, unmeasured

replaying = base.replaying  # the sandbox with the daily user's memory snapshotted (test_replay's)

CLAIM = "        claim_env_marker(client, settings.key_prefix, settings.env)\n"
OTHER = 7770001  # a user who is not protected: their memory is in the snapshot all the same
FORGETS = BREAKS["forgets the daily user"]  # the facts under another key: the daily user's are forgotten


# -- helpers -----------------------------------------------------------------------------------------


def commit_edits(world: World, message: str, *edits: tuple[str, str, str], new: dict[str, str] | None = None) -> str:
    """A commit on main with ``edits`` (path, old, new) and ``new`` files; its full SHA."""
    git(world.repo, "checkout", "-q", "main")
    for path, old, replacement in edits:
        target = world.repo / path
        text = target.read_text()
        assert old in text, f"{path} does not read as this attack expects"
        target.write_text(text.replace(old, replacement, 1))
        git(world.repo, "add", path)
    for path, text in (new or {}).items():
        target = world.repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        git(world.repo, "add", path)
    git(world.repo, "commit", "-q", "-m", message)
    return git(world.repo, "rev-parse", "HEAD")


def at_start(world: World, message: str, code: str, *more: tuple[str, str, str]) -> str:
    """A candidate whose start runs ``code`` (8-space indented, ``client`` and ``settings`` in scope)
    right after it claimed its Redis: where a data migration goes."""
    return commit_edits(world, message, ("mindmate/__main__.py", CLAIM, CLAIM + code), *more)


def snapshot_again(world: World, name: str) -> Path:
    out = world.root / name
    assert main(["memory", "snapshot", "production", "--out", str(out)]) == 0
    return out


def step_environ(runner_temp: Path, **extra: str) -> dict[str, str]:
    """A run step's environment in Actions, without any secret (what production.yml's replay step
    gets): the file commands the runner reads after the step, GITHUB_ACTIONS, RUNNER_TEMP."""
    files = {}
    for name in ("GITHUB_ENV", "GITHUB_PATH", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        path = runner_temp / "_runner_file_commands" / f"{name.lower()}_{uuid.uuid4()}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        files[name] = str(path)
    base = {k: v for k, v in os.environ.items() if not powerful(k)}
    return {**base, **files, "GITHUB_ACTIONS": "true", "RUNNER_TEMP": str(runner_temp), **extra}


def workflow_run(name_prefix: str) -> str:
    """The ``run:`` of production.yml's step whose name starts with ``name_prefix``."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "production.yml").read_text())
    for step in workflow["jobs"]["release"]["steps"]:
        if str(step.get("name", "")).startswith(name_prefix):
            return str(step["run"])
    raise AssertionError(f"production.yml has no step {name_prefix!r}")


REPLAY_STEP = "Replay it on private copies"


def as_the_runner_starts_it(script: str, environ: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """A ``run:`` step as GitHub's runner starts it: the script in a file under RUNNER_TEMP, run by
    ``bash --noprofile --norc -eo pipefail {0}``, which is the step's entry process."""
    path = Path(environ["RUNNER_TEMP"]) / f"{uuid.uuid4()}.sh"
    path.write_text(script)
    return subprocess.Popen(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)],
        env=unmeasured(environ),  # the runner cancels it from outside
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def prepared_for(world: World, snapshot: Path, candidate: str, live: str, out: Path) -> None:
    """The prepare step (it holds the keys): ``ci-tools replay … --out``."""
    secrets = {**world.secrets("production"), "MEMORY_SNAPSHOT_KEY": KEY}
    args = ["replay", "production", "--snapshot", str(snapshot), "--candidate", candidate, "--live", live]
    done = _cli([*args, "--out", str(out)], {**os.environ, **secrets})
    _, err = done.communicate(timeout=120)
    assert done.returncode == 0, err


def kill_all(pids: set[int]) -> None:
    """Processes this test's replay started and left behind: each by its own id."""
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# -- 1. GitHub's cancel: the runner signals bash, not ci-tools ------------------------------------------


def test_githubs_cancel_of_the_run_step_stops_the_bots_and_the_copies(replaying, tmp_path):
    """GitHub's runner cancels a step by kill(2)-ing the step's entry process — bash running the
    script of ``run:`` — with SIGINT, then SIGTERM 7.5 s later, then SIGKILL 2.5 s after that
    (actions/runner ProcessInvoker: ``kill(_proc.Id, …)``, then ``_proc.Kill()``). bash waits
    for its foreground child on SIGINT and dies on SIGTERM; ``ci-tools`` never gets either signal,
    so its handlers never run: the bots and the private copies of the daily user's memory keep
    running after the step is gone. Promise 3 holds only for a signal sent to ci-tools itself."""
    world, snapshot = replaying
    live = git(world.repo, "rev-parse", "HEAD")
    candidate = commit_edits(
        world,
        "a start stuck on a lock",
        (
            "mindmate/__main__.py",
            "    settings = prepare()\n",
            '    settings = prepare()\n    __import__("time").sleep(3600)\n',
        ),
        ("pyproject.toml", 'turns = ["/start", "/recall"]\n', 'turns = ["/start", "/recall"]\nstart_timeout = 600\n'),
    )
    runner_temp = tmp_path / "runner-temp"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    environ = step_environ(runner_temp, TMPDIR=str(scratch))
    prepared_for(world, snapshot, candidate, live, runner_temp / "replay")
    step = as_the_runner_starts_it(workflow_run(REPLAY_STEP), environ, world.repo)
    seen: set[int] = set()
    try:

        def bots_and_copies_running() -> bool:
            assert step.poll() is None, step.communicate()
            seen.update(_children(step.pid))
            running = [pid for pid in seen if _alive(pid)]
            commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in running]
            stuck = [pid for pid in running if _cwd(pid).endswith(candidate[:12])]
            return bool(stuck) and sum(b"server" in c for c in commands) >= 3

        assert wait_for(bots_and_copies_running, 180), "the stuck candidate never ran beside its copy"
        # The runner's cancel, as ProcessInvoker does it (its timeouts are the protocol, not a wait).
        os.kill(step.pid, signal.SIGINT)
        try:
            step.wait(timeout=7.5)
        except subprocess.TimeoutExpired:
            os.kill(step.pid, signal.SIGTERM)
            try:
                step.wait(timeout=2.5)
            except subprocess.TimeoutExpired:
                step.kill()
                step.wait()
        seen.update(_children(step.pid))
        gone = wait_for(lambda: not [pid for pid in seen if _alive(pid)], 5)
        left = sorted(Path(f"/proc/{pid}/comm").read_text().strip() for pid in seen if _alive(pid))
        assert gone, f"after GitHub's cancel of the step these still run: {left}"
        assert list(scratch.iterdir()) == []
    finally:
        kill_all(seen)


# -- 2. A bot's own children outlive the replay (and read the next step's secrets) -------------------


def test_a_bots_child_process_does_not_outlive_the_replay(replaying, tmp_path):
    """``ReplayBot.stop`` terminates the bot's pid alone, and PR_SET_PDEATHSIG is not inherited
    across fork: a worker the candidate starts (here a plain subprocess, no setsid) outlives the
    replay. It runs as the job's user, so it reads ``/proc/<pid>/environ`` of the next step —
    the deploy, which holds RENDER_API_KEY — and, with no RUNNER_TRACKING_ID in the environment
    the replay gave it, survives even the runner's orphan clean-up on a self-hosted runner."""
    world, snapshot = replaying
    spy = tmp_path / "spy"
    spy.mkdir()
    daemon = (
        "import os, pathlib, time\n"
        f"d = pathlib.Path({str(spy)!r})\n"
        '(d / "daemon.pid").write_text(str(os.getpid()))\n'
        "end = time.time() + 300\n"
        "while time.time() < end:\n"
        '    t = d / "target"\n'
        "    if t.exists():\n"
        '        (d / "stolen").write_bytes(pathlib.Path(f"/proc/{t.read_text()}/environ").read_bytes())\n'
        "        break\n"
        "    time.sleep(0.05)\n"
    )
    live = git(world.repo, "rev-parse", "HEAD")
    candidate = at_start(
        world,
        "a background worker",
        f"        __import__('subprocess').Popen([sys.executable, '-c', {daemon!r}])\n",
    )
    assert replay(snapshot, candidate, live) == 0
    pid_file = spy / "daemon.pid"
    assert wait_for(pid_file.exists, 30), "the candidate's worker never started"
    worker = int(pid_file.read_text())
    deploy = None
    try:
        left_behind = _alive(worker)
        stolen = b""
        if left_behind:  # the next step: the deploy, with Render's key in its environment
            key = "rnd_" + uuid.uuid4().hex
            deploy = subprocess.Popen(
                [sys.executable, "-c", "import sys; sys.stdin.read()"],
                env={"PATH": os.environ["PATH"], "RENDER_API_KEY": key},
                stdin=subprocess.PIPE,
            )
            tmp = spy / "target.tmp"
            tmp.write_text(str(deploy.pid))
            tmp.rename(spy / "target")
            if wait_for((spy / "stolen").exists, 30):
                stolen = (spy / "stolen").read_bytes()
            stolen_key = key.encode() in stolen
        else:
            stolen_key = False
        assert not left_behind, f"the candidate's worker (pid {worker}) outlives the replay" + (
            ", and read RENDER_API_KEY from the next step's /proc/<pid>/environ" if stolen_key else ""
        )
    finally:
        kill_all({worker})
        if deploy is not None:
            deploy.kill()
            deploy.wait()


# -- 3. The bots can plant code in the steps after (which hold the secrets) -----------------------------

PLANT = """\
        import json as _json, os as _os, pathlib as _pathlib, sys as _sys, sysconfig as _sysconfig
        _found, _pid = {{}}, _os.getpid()
        while _pid > 1:
            try:
                for _entry in _pathlib.Path(f"/proc/{{_pid}}/environ").read_bytes().split(b"\\0"):
                    _name, _, _value = _entry.partition(b"=")
                    if _name in (b"GITHUB_ENV", b"GITHUB_PATH"):
                        _found[_name.decode()] = _value.decode()
            except OSError:
                pass
            _pid = int(_pathlib.Path(f"/proc/{{_pid}}/stat").read_text().rsplit(")", 1)[1].split()[1])
        if "GITHUB_ENV" in _found:  # the next step's bash sources BASH_ENV: the deploy's secrets are its
            with open(_found["GITHUB_ENV"], "a") as _env:
                _env.write("BASH_ENV={planted}\\n")
        _site = _sysconfig.get_paths()["purelib"]
        _pathlib.Path({report!r}).write_text(_json.dumps(
            {{"found": _found, "prefix": _sys.prefix, "site": _site, "writable": _os.access(_site, _os.W_OK)}}
        ))
"""


def _planting_step(replaying, tmp_path) -> tuple[dict, dict[str, str]]:
    world, snapshot = replaying
    report = tmp_path / "plant.json"
    live = git(world.repo, "rev-parse", "HEAD")
    candidate = at_start(world, "reads its step's file commands", PLANT.format(report=str(report), planted="/tmp/x.sh"))
    runner_temp = tmp_path / "runner-temp"
    environ = step_environ(runner_temp)
    prepared_for(world, snapshot, candidate, live, runner_temp / "replay")
    step = as_the_runner_starts_it(workflow_run(REPLAY_STEP), environ, world.repo)
    out, err = step.communicate(timeout=300)
    assert step.returncode == 0, err
    assert "no secret is readable from the bots' ancestry" in out
    return json.loads(report.read_text()), environ


# -- 4. The judge compares answers only: memory the turns do not show is never compared ------------------


@pytest.mark.parametrize(
    ("how", "code"),
    [
        (  # an "orphan" clean-up: facts of users without a profile go; the daily user has one
            "deletes other users' memory",
            '        for key in client.scan_iter(match=f"{settings.key_prefix}memory:*"):\n'
            '            user = key.rsplit(b":", 1)[1].decode()\n'
            '            if not client.exists(f"{settings.key_prefix}user:{user}:profile"):\n'
            "                client.delete(key)\n",
        ),
        (  # a "retention policy": every fact now expires in a day
            "gives memory an expiry",
            '        for key in client.scan_iter(match=f"{settings.key_prefix}memory:*"):\n'
            "            client.expire(key, 86400)\n",
        ),
        (  # "history is kept elsewhere now": the daily user's conversation history is deleted
            "deletes the history",
            '        for key in client.scan_iter(match=f"{settings.key_prefix}user:*:history"):\n'
            "            client.delete(key)\n",
        ),
    ],
)
def test_a_migration_the_turns_do_not_show_is_stopped(replaying, capsys, how, code):
    """Issue: "a candidate whose start or turns leave memory the live commit reads differently is"
    a difference. Only the protected users' answers to /start and /recall are compared, never
    the memory itself: a start-up migration that destroys other users' facts, puts an expiry on
    everyone's, or wipes the daily user's own history passes the gate."""
    world, _ = replaying
    prod = world.redis["production"].client()
    prod.rpush(f"prod:memory:{OTHER}", "my cat is called Tibor")  # a user from before profiles
    prod.rpush(f"prod:user:{DAILY}:history", json.dumps({"ts": 1700000001, "text": "good morning"}))
    snapshot = snapshot_again(world, "memory-with-others")
    live = git(world.repo, "rev-parse", "HEAD")
    candidate = at_start(world, f"migrate: {how}", code)
    code_ = replay(snapshot, candidate, live)
    captured = capsys.readouterr()
    assert code_ == 5, f"a candidate that {how} at start passed the replay:\n{flat(captured.out)}"


# -- 5. A gate that checked nothing, in a production release -------------------------------------------


# -- 6. The live commit is started with the candidate's config -------------------------------------------


def test_a_candidate_that_renames_its_module_is_compared_not_stopped(replaying, capsys):
    """The module to start was read from the candidate's checkout and used to start the
    live commit too: a release that renames the bot's package (and says so in its config) stops
    as "the live commit … cannot start on this runner" — a false stop, every such release needs
    skip_replay."""
    world, snapshot = replaying
    live = git(world.repo, "rev-parse", "HEAD")
    candidate = commit_edits(
        world,
        "the bot is started as companion",
        ("render.yaml", ".venv/bin/python -m mindmate", ".venv/bin/python -m companion"),  # staging
        ("render.yaml", ".venv/bin/python -m mindmate", ".venv/bin/python -m companion"),  # production
        new={
            "companion/__init__.py": '"""MindMate, under its new name."""\n',
            "companion/__main__.py": "from mindmate.__main__ import main\n\nmain()\n",
        },
    )
    code = replay(snapshot, candidate, live)
    captured = capsys.readouterr()
    assert code == 0, captured.err


# -- 7. A candidate that cannot start a second time ------------------------------------------------------


def test_a_candidate_that_crashes_on_its_next_restart_is_stopped(replaying, capsys):
    """A migration that is not idempotent: it asserts the old schema instead of skipping when it
    already ran. Its first start migrates and serves (answers as before); every start after —
    Render's next restart or deploy — crashes. The candidate is started once per copy, never on
    what it left itself, so the gate passes a release that goes down at its first restart."""
    world, snapshot = replaying
    live = git(world.repo, "rev-parse", "HEAD")
    code = (
        '        schema = int(client.get(f"{settings.key_prefix}meta:schema") or 1)\n'
        '        assert schema == 1, f"unexpected schema {schema}"  # migrate 1 -> 2\n'
        '        client.set(f"{settings.key_prefix}meta:schema", 2)\n'
    )
    candidate = at_start(world, "migrate the schema to 2", code)
    assert replay(snapshot, candidate, live) == 5, capsys.readouterr().out


# -- 8. What the replay says: letters and digits masked, everything else shown --------------------------


def test_a_difference_in_facts_with_emoji_prints_none_of_them(replaying, capsys):
    """``letters_masked`` masks ``[^\\W_]`` only: emoji, symbols and punctuation of the daily user's
    facts reach the log in the masked diff (a fact like "💍 💔" or "🏳️‍🌈" says a lot)."""
    world, _ = replaying
    prod = world.redis["production"].client()
    prod.rpush(f"prod:memory:{DAILY}", "💔🍷")
    snapshot = snapshot_again(world, "memory-with-emoji")
    live = git(world.repo, "rev-parse", "HEAD")
    candidate = commit_edits(world, "forgets the daily user", FORGETS)
    assert replay(snapshot, candidate, live) == 5
    captured = capsys.readouterr()
    assert "the candidate answers differently" in captured.err
    shown = [line for line in (captured.out + captured.err).splitlines() if "💔" in line or "🍷" in line]
    assert not shown, f"the daily user's fact reached the log: {shown}"


# -- 9. Odd --out / --from folders ------------------------------------------------------------------


def test_from_a_folder_removes_only_what_prepare_wrote(replaying, tmp_path, capsys):
    """``--out "$RUNNER_TEMP"`` or ``--out .`` must not let ``--from`` delete what lies beside the
    replay: prepare takes an empty folder only, and the run removes only what prepare wrote."""
    world, snapshot = replaying
    head = git(world.repo, "rev-parse", "HEAD")
    shared = tmp_path / "runner-temp"
    shared.mkdir()
    (shared / "someone-elses.txt").write_text("not the replay's")
    args = ["replay", "production", "--snapshot", str(snapshot), "--candidate", head, "--live", head]
    assert main([*args, "--out", str(shared)]) == 2
    assert "is not an empty folder" in capsys.readouterr().err
    own = shared / "replay"
    assert main([*args, "--out", str(own)]) == 0
    (own / "kept-by-someone.txt").write_text("written beside the replay after it was prepared")
    assert main(["replay", "--from", str(own)]) == 0
    assert (shared / "someone-elses.txt").exists() and (own / "kept-by-someone.txt").exists()
    assert sorted(p.name for p in own.iterdir()) == ["kept-by-someone.txt"]


def test_a_renamed_package_is_compared_with_the_live_commit_not_with_itself(replaying, tmp_path):
    """As production.yml runs it: setup-ci-tools installs the candidate's checkout into .venv
    (editable: a ``.pth`` puts the checkout's root on sys.path), and a live commit whose uv.lock is
    the same runs on that interpreter. The live commit is started as the candidate's module;
    absent from the live tree, it is imported from the candidate's checkout through the ``.pth``:
    the "live" runs are the candidate itself, and a release that renames the package *and*
    forgets the daily user is compared with itself and passes."""
    world, snapshot = replaying
    live = git(world.repo, "rev-parse", "HEAD")
    git(world.repo, "checkout", "-q", "main")
    git(world.repo, "mv", "mindmate", "companion")
    for path in (world.repo / "companion").glob("*.py"):
        text = path.read_text().replace("from mindmate", "from companion")
        if path.name == "store.py":  # and it forgets the daily user: facts under a new key
            text = text.replace('return f"{prefix}memory:{user_id}"', 'return f"{prefix}facts:{user_id}"')
        path.write_text(text)
    commit_edits(
        world,
        "the bot is called companion now (and keeps facts under facts:)",
        (
            "pyproject.toml",
            'module-name = ["ci_tools", "mindmate", "release_kit"]',
            'module-name = ["ci_tools", "companion", "release_kit"]',
        ),
        # both services start it (an edit replaces one occurrence): production's is the second
        ("render.yaml", ".venv/bin/python -m mindmate", ".venv/bin/python -m companion"),
        ("render.yaml", ".venv/bin/python -m mindmate", ".venv/bin/python -m companion"),
    )
    git(world.repo, "add", "-A", "companion")
    git(world.repo, "commit", "-q", "--amend", "--no-edit")
    candidate = git(world.repo, "rev-parse", "HEAD")
    # setup-ci-tools, in the candidate's checkout: `uv sync --locked --no-default-groups --extra tools`
    quiet = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    subprocess.run(
        ["uv", "sync", "--locked", "--no-default-groups", "--extra", "tools", "--quiet"],
        cwd=world.repo,
        env=quiet,
        check=True,
    )
    runner_temp = tmp_path / "runner-temp"
    environ = step_environ(runner_temp, PATH=f"{world.repo / '.venv' / 'bin'}:{os.environ['PATH']}")
    environ.pop("VIRTUAL_ENV", None)
    prepared_for(world, snapshot, candidate, live, runner_temp / "replay")
    step = as_the_runner_starts_it(workflow_run(REPLAY_STEP), environ, world.repo)
    out, err = step.communicate(timeout=300)
    assert step.returncode == 5, f"a release that forgets the daily user passed:\n{flat(out)}"
    assert "the candidate answers differently" in err


# -- 10. Noise swallows the whole turn -----------------------------------------------------------------


def test_a_regression_beside_a_noisy_line_is_stopped(replaying, capsys):
    """A bot whose /recall carries one line that changes every time ("as of 09:14:03.123") has that
    turn called noise — the two live runs differ — and the whole turn, the facts with it, goes
    uncompared. A candidate that forgets the daily user then passes, with a warning only: in a
    production release the gate compared nothing of what matters and says ✓."""
    world, snapshot = replaying
    footer = '        await reply(update, f"Here\'s what I remember:\\n{lines}")\n'
    noisy = (
        "        stamp = __import__('datetime').datetime.now().strftime('%H:%M:%S.%f')\n"
        '        await reply(update, f"Here\'s what I remember:\\n{lines}\\n(as of {stamp})")\n'
    )
    live = commit_edits(world, "recall says when", ("mindmate/handlers.py", footer, noisy))
    candidate = commit_edits(world, "forgets the daily user", FORGETS)
    code = replay(snapshot, candidate, live)
    captured = capsys.readouterr()
    assert code == 5, f"a candidate that forgets the daily user passed:\n{flat(captured.out)}"


# -- 11. A snapshot over max_mb is not production's state ------------------------------------------------


# -- 12. The candidate runs on ci-tools' environment, not on what Render builds --------------------------


# -- 13. Which users have memory: glob patterns are never matched ----------------------------------------


def test_a_user_whose_memory_patterns_are_globs_is_replayed(replaying, capsys):
    """``memory_patterns`` may hold globs (``ci_tools.memory.keys`` scans them), but ``prepare``
    decides who has memory by exact key: a protected user whose keys all match glob patterns is
    "absent", replayed for nobody — and a candidate that forgets them passes."""
    world, snapshot = replaying
    config = world.repo / "pyproject.toml"
    exact = (
        'memory_patterns = ["user:{user_id}:history", "user:{user_id}:profile", "memory:{user_id}", '
        '"conversation:{user_id}"]'
    )
    text = config.read_text()
    assert exact in text
    config.write_text(text.replace(exact, 'memory_patterns = ["user:{user_id}:*", "memory:{user_id}*"]'))
    live = git(world.repo, "rev-parse", "HEAD")
    candidate = commit_edits(world, "forgets the daily user", FORGETS)
    code = replay(snapshot, candidate, live)
    captured = capsys.readouterr()
    assert code == 5, f"a candidate that forgets the daily user passed:\n{flat(captured.out)}"
    assert f"user {DAILY} has no memory in the snapshot" not in flat(captured.out)


# -- 14. The cleanup outlasts the runner's budget -------------------------------------------------------


def test_a_cancel_while_every_bot_is_mid_turn_cleans_up_within_the_runners_budget(replaying, tmp_path):
    """Even with the signals reaching ci-tools (the step's entry process, as after ``exec``), the
    runner allows 7.5 s + 2.5 s before SIGKILL. Each bot is stopped one after another with a 5 s
    grace each (``throwaway.terminate``, blocking the event loop); uvicorn waits for a request in
    flight on SIGTERM (a slow turn: an LLM call, a slow Redis). Three bots mid-turn take 15 s:
    SIGKILL lands mid-cleanup and the checkouts and the bots' logs (which may quote a fact) stay
    in TMPDIR — /tmp, across jobs, on a self-hosted runner."""
    world, snapshot = replaying
    inside = tmp_path / "inside"
    inside.mkdir()
    slow = (
        "    async def recall(update: Update, context: Context) -> None:\n"
        "        await seen(update, final=True)\n"
        f"        __import__('pathlib').Path({str(inside)!r}, str(__import__('os').getpid())).touch()\n"
        "        await __import__('asyncio').sleep(3600)  # a slow turn\n"
    )
    live = commit_edits(
        world,
        "a slow recall",
        (
            "mindmate/handlers.py",
            "    async def recall(update: Update, context: Context) -> None:\n        await seen(update, final=True)\n",
            slow,
        ),
    )
    candidate = world.commit("main", "a harmless change")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    environ = unmeasured({**os.environ, "TMPDIR": str(scratch)})  # cancelled from outside
    args = ["replay", "production", "--snapshot", str(snapshot), "--candidate", candidate, "--live", live]
    process = _cli(args, environ)
    seen: set[int] = set()
    try:

        def all_mid_turn() -> bool:
            assert process.poll() is None, process.communicate()
            seen.update(_children(process.pid))
            return len(list(inside.iterdir())) >= 3

        assert wait_for(all_mid_turn, 180), "the three bots never were mid-turn together"
        seen.update(_children(process.pid))
        process.send_signal(signal.SIGINT)  # the runner's protocol, to ci-tools itself
        try:
            process.wait(timeout=7.5)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=2.5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        killed = process.returncode == -signal.SIGKILL
        wait_for(lambda: not [pid for pid in seen if _alive(pid)], 5)
        left = sorted(p.name for p in scratch.iterdir())
        assert not killed and left == [], f"SIGKILL landed mid-cleanup (killed: {killed}); left in TMPDIR: {left}"
    finally:
        kill_all(seen)


# -- 15. The replay's update ids are real update ids --------------------------------------------------
