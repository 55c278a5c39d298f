"""Issue 41's promise tried on owner bots shaped unlike tests/fixtures/owner_bot: a src/ layout, a
Poetry project with workflows of its own, a single-file bot started from a Procfile, a render.yaml
with environment groups, comments and several services; and check-bot against a bot that never
answers and will not die. Each runs ``ci-tools`` as the owner does, as a process in a git repository.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox.world import World, git
from tests.botrun.test_botrun import alive
from tests.cli.test_adopt import FIXTURE, PINNED, ci_tools, tree
from tests.support import unmeasured

BOT_CODE = (FIXTURE / "bot" / "__main__.py").read_text()


def repo(root: Path, files: dict[str, str], *, commit: bool = True) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    if commit:
        committed(root)
    return root


def committed(root: Path) -> None:
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "x"], cwd=root, check=True
    )


def adopt(root: Path, *more: str) -> subprocess.CompletedProcess[str]:
    return ci_tools("adopt", str(root), *PINNED, "--yes", *more, cwd=root.parent)


def adopted_cleanly(root: Path, *more: str) -> str:
    """adopt --yes succeeds, config check is green, a second run changes nothing, and no workflow
    it wrote names mindmate or needs a uv.lock."""
    first = adopt(root, *more)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    check = ci_tools("config", "check", cwd=root)
    assert check.returncode == 0, check.stdout + check.stderr
    committed(root)
    before = tree(root)
    second = adopt(root)
    assert second.returncode == 0, second.stderr
    assert "nothing to change" in second.stdout
    assert tree(root) == before
    for workflow in sorted((root / ".github" / "workflows").glob("*.yml")):
        text = workflow.read_text()
        assert "mindmate" not in text.lower() and "uv.lock" not in text, workflow.name
    return first.stdout


SRC_PYPROJECT = """\
[project]
name = "ava"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["python-telegram-bot[webhooks]>=21,<23", "redis>=5"]

[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[tool.ruff]
line-length = 100
"""


def test_a_src_layout_package_is_started_as_its_module(tmp_path):
    """src/ava/__main__.py, installed by `pip install .`: adopt finds `python -m ava` as it finds a
    top-level package (it used to refuse: 'no start command found … a package with __main__.py')."""
    root = repo(
        tmp_path / "ava",
        {"pyproject.toml": SRC_PYPROJECT, "src/ava/__init__.py": "", "src/ava/__main__.py": BOT_CODE},
        commit=False,
    )
    said = adopted_cleanly(root)
    assert "detected: start command `python -m ava` from src/ava/__main__.py (the build installs it)" in said
    assert "detected: build command `pip install .` from pyproject.toml" in said
    assert "detected: memory key `memory:{user_id}` at src/ava/__main__.py:29" in said
    assert "[tool.ruff]" in (root / "pyproject.toml").read_text()  # the owner's table kept


def test_a_src_layout_whose_build_does_not_install_it_is_not_guessed(tmp_path):
    """With requirements.txt as the build, src/ava is not importable: no guess, the flag is named."""
    root = repo(
        tmp_path / "ava",
        {"requirements.txt": "redis>=5\n", "src/ava/__init__.py": "", "src/ava/__main__.py": BOT_CODE},
    )
    done = adopt(root)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no start command found" in done.stderr and "--start" in done.stderr


POETRY = """\
[tool.poetry]
name = "ava"
version = "0.1.0"
description = "Ava"
authors = ["Owner <o@example.invalid>"]

[tool.poetry.dependencies]
python = "^3.11"
redis = ">=5"

[build-system]
requires = ["poetry-core"]
build-backend = "poetry.core.masonry.api"
"""
OWNERS_WORKFLOW = (
    "name: lint\non: [push]\njobs:\n  lint:\n    runs-on: ubuntu-latest\n    steps:\n      - run: ruff .\n"
)


def test_a_poetry_bot_with_a_workflow_of_its_own(tmp_path):
    """Poetry (poetry.lock, no render.yaml) and the owner's own lint workflow: built by Poetry,
    their workflow left as it was, and adopt's own installing ci-tools without any lock of the bot's."""
    root = repo(
        tmp_path / "ava",
        {
            "pyproject.toml": POETRY,
            "poetry.lock": '[metadata]\nlock-version = "2.0"\n',
            "bot/__init__.py": "",
            "bot/__main__.py": BOT_CODE,
            ".github/workflows/lint.yml": OWNERS_WORKFLOW,
        },
    )
    said = adopted_cleanly(root)
    assert "detected: build command `poetry install --only main --no-root` from poetry.lock" in said
    assert "detected: start command `python -m bot` from bot/__main__.py" in said
    assert (root / ".github" / "workflows" / "lint.yml").read_text() == OWNERS_WORKFLOW
    assert "[tool.poetry.dependencies]" in (root / "pyproject.toml").read_text()


MULTI = """\
# Ava's infrastructure: keep in sync with the dashboard!
envVarGroups:
  - name: ava-shared   # shared by bot and digest
    envVars:
      - key: LOG_LEVEL
        value: info

services:
  # the bot itself
  - type: web
    name: ava-bot
    runtime: python
    plan: starter # upgrade when she talks more
    branch: main
    buildCommand: pip install -r requirements.txt
    startCommand: python -m bot
    envVars:
      - fromGroup: ava-shared
      - key: REDIS_URL
        fromService:
          type: keyvalue
          name: ava-redis
          property: connectionString
      - key: TELEGRAM_BOT_TOKEN
        sync: false

  # nightly digest
  - type: cron
    name: ava-digest
    runtime: python
    schedule: "0 3 * * *"
    buildCommand: pip install -r requirements.txt
    startCommand: python -m bot.digest
    envVars:
      - fromGroup: ava-shared

  - type: web
    name: ava-landing
    runtime: static
    staticPublishPath: ./public
    buildCommand: echo ok

  - type: keyvalue
    name: ava-redis
    plan: starter
    ipAllowList: [] # private only
    maxmemoryPolicy: noeviction

databases:
  - name: ava-db   # analytics, one day
    plan: free
"""


def test_a_render_yaml_with_an_environment_group_comments_and_several_services(tmp_path):
    """`- fromGroup: NAME` is an envVars item Render takes (render.com/docs/blueprint-spec): adopt
    used to refuse it as 'envVars must be a list of variables'. A static site is no bot: it is not
    asked about. The owner's comments, group, cron and database survive; staging gets the group too."""
    root = tmp_path / "ava"
    shutil.copytree(FIXTURE, root)
    (root / "render.yaml").write_text(MULTI)
    repo(root, {}, commit=False)
    said = adopted_cleanly(root)
    assert "live web service `ava-bot` from render.yaml (its only web service)" in said
    text = (root / "render.yaml").read_text()
    for comment in (
        "# Ava's infrastructure",
        "# shared by bot and digest",
        "# the bot itself",
        "# upgrade when she talks more",
        "# nightly digest",
        "# private only",
        "# analytics, one day",
    ):
        assert comment in text
    assert text.count("- fromGroup: ava-shared") == 3  # the bot's, the digest's, staging's
    assert "ava-digest (cron) deploys itself from this repository on each push" in said


@pytest.fixture
def procfile_bot(tmp_path: Path) -> Path:
    """A single-file bot started from a Procfile (`python ava.py`), requirements.txt, no render.yaml."""
    return repo(
        tmp_path / "ava",
        {
            "ava.py": BOT_CODE,
            "requirements.txt": (FIXTURE / "requirements.txt").read_text(),
            "Procfile": "web: python ava.py\n",
        },
    )


def test_a_procfile_bot_is_adopted_and_checked_at_the_base_level(procfile_bot, monkeypatch):
    said = adopted_cleanly(procfile_bot)
    assert "detected: start command `python ava.py` from Procfile" in said
    environ = {**os.environ, "PIP_NO_INDEX": "1"}
    environ = {k: v for k, v in environ.items() if not k.startswith(("CI_TOOLS_", "GITHUB_", "RUNNER_"))}
    done = subprocess.run(
        [sys.executable, "-m", "ci_tools", "check-bot", str(procfile_bot)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "starting with its own command: python ava.py" in done.stdout
    assert "level reached: base (service ava-dev)" in done.stdout


def in_a_root_dir(root: Path, folder: str) -> None:
    """The bot moved into ``folder`` and every web service of its render.yaml given that rootDir
    (a monorepo: render.com/docs/monorepo-support — build and start run in that folder)."""
    (root / folder).mkdir()
    for name in ("ava.py", "requirements.txt"):
        (root / name).rename(root / folder / name)
    blueprint = root / "render.yaml"
    text = blueprint.read_text()
    moved = text.replace("    startCommand:", f"    rootDir: {folder}\n    startCommand:")
    assert moved != text, text
    blueprint.write_text(moved)


def replay_a_release(bot: Path, tmp_path: Path, candidate_of: Callable[[World], str]) -> list[str]:
    """production.yml's replay stage on an adopted bot: the daily user's memory snapshotted, then
    the live commit (the bot as adopted) and ``candidate_of(world)``'s commit replayed against it.
    Holds that nothing stopped the release and returns what the replay said."""
    import contextlib

    from cryptography.fernet import Fernet

    from ci_tools.context import build
    from ci_tools.memory import restore_points
    from ci_tools.pipeline.replay import ReplayRequest, replay

    daily, key = 424242001, Fernet.generate_key().decode()
    statuses: list[str] = []
    with World(tmp_path / "world", step=0.05, source=bot) as world, contextlib.chdir(world.repo):
        production = world.redis["production"].client()
        production.hset(f"memory:{daily}", mapping={"name": "Ada", "facts": "1", "fact:1": "tea at seven"})
        ctx = build({**world.secrets("production"), "MEMORY_SNAPSHOT_KEY": key, "PATH": os.environ["PATH"]})
        env = ctx.config.env("production")
        live = git(world.repo, "rev-parse", "HEAD")
        candidate = candidate_of(world)
        taken = restore_points.take_snapshot(
            production,
            env,
            tmp_path / "memory-before",
            server="sandbox",
            max_mb=100,
            protected=(daily,),
            commit=candidate,
            writes_no_marker=lambda: "a base-level bot writes none",
            fernet=Fernet(key),
        )
        outcome = replay(ctx, ReplayRequest(env, taken.path, candidate, live, (daily,)), on_status=statuses.append)
    assert outcome.stops == []
    return statuses


@pytest.mark.timeout(300)  # adopt as a process, two builds and two bots: 60 s ran out at load 10
@pytest.mark.parametrize("root_dir", ["", "app"])
def test_the_replay_runs_a_procfile_bot_by_its_own_start_command(procfile_bot, tmp_path, root_dir):
    """production.yml's replay stage on the adopted Procfile bot: the live commit and the candidate,
    each started by its render.yaml's `python ava.py`. It used to stop every release here: the
    replay started a bot only as `python -m <module>` ('cannot start'), though adopt, config check
    and check-bot took the command. In a service's rootDir, the bot starts in that folder (it
    started in the repository's root, where `python ava.py` finds no ava.py)."""
    assert adopt(procfile_bot).returncode == 0
    if root_dir:
        in_a_root_dir(procfile_bot, root_dir)
    committed(procfile_bot)
    statuses = replay_a_release(procfile_bot, tmp_path, lambda world: world.commit("main", "a harmless change"))
    assert any("live ×2 and candidate" in status for status in statuses), statuses


STUBBORN = """\
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
open(os.environ["STUBBORN_PID"], "w").write(str(os.getpid()))
time.sleep(100000)
"""


def stubborn_repo(tmp_path: Path, pid: Path) -> Path:
    """A repository whose bot never binds its port and ignores SIGTERM and SIGINT, writing its pid to ``pid``."""
    return repo(
        tmp_path / "stubborn",
        {
            "stubborn.py": STUBBORN,
            "render.yaml": "services:\n  - type: web\n    name: stubborn\n    runtime: python\n"
            "    buildCommand: 'true'\n    startCommand: python stubborn.py\n    envVars:\n"
            f"      - key: STUBBORN_PID\n        value: {pid}\n",
        },
    )


def test_check_bot_on_a_bot_that_never_listens_and_ignores_sigterm_leaves_nothing(tmp_path):
    """A bot that never binds its port and ignores SIGTERM and SIGINT: check-bot gives up at its
    timeout, says why in one line, exits non-zero, and the bot is gone afterwards."""
    pid = tmp_path / "bot.pid"
    root = stubborn_repo(tmp_path, pid)
    done = subprocess.run(
        [sys.executable, "-m", "ci_tools", "check-bot", str(root), "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert pid.exists(), done.stdout + done.stderr
    assert not alive(int(pid.read_text())), "the bot outlived check-bot"


def test_ctrl_c_while_the_bot_runs_leaves_no_bot(tmp_path):
    """SIGINT to check-bot while the bot is up (it ignores SIGINT itself): everything it started goes."""
    pid = tmp_path / "bot.pid"
    root = stubborn_repo(tmp_path, pid)
    command = subprocess.Popen(
        [sys.executable, "-m", "ci_tools", "check-bot", str(root), "--timeout", "300"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=unmeasured(),
    )
    deadline = time.monotonic() + 90
    while not (pid.exists() and pid.read_text().strip()):
        assert command.poll() is None and time.monotonic() < deadline, "the bot did not start"
        time.sleep(0.05)
    command.send_signal(signal.SIGINT)
    assert command.wait(timeout=60) != 0
    assert "Traceback" not in (command.stderr.read() if command.stderr else "")
    bot = int(pid.read_text())
    deadline = time.monotonic() + 15
    while alive(bot):
        assert time.monotonic() < deadline, "the bot outlived check-bot's Ctrl-C"
        time.sleep(0.05)
