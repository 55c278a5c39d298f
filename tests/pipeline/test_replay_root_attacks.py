"""Attacks on the replay's start in a service's ``rootDir`` (bdd0ac9: ``own_start`` -> command and
folder), for a bot that is not ours: the spellings Render and botrun accept, folders that leave
the repository or are missing, each commit's own tree, the Python a rootDir's own uv.lock gives,
and the one-line refusals. Render: build and start run in the rootDir, and files outside it are
not there at build time or at runtime (render.com/docs/monorepo-support)."""

# ruff: noqa: F811 (the fixture imported below is a test's argument)
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from ci_tools import botrun
from ci_tools.errors import BuildFailed, ConfigError
from ci_tools.pipeline.replay import _cannot_start
from ci_tools.pipeline.replay_bots import CannotStart, interpreter, own_start, start_argv
from ci_tools.settings import Environment
from sandbox.world import World, git
from tests.cli.test_adopt_attacks3 import (  # noqa: F401 (procfile_bot: the fixture)
    adopt,
    committed,
    in_a_root_dir,
    procfile_bot,
    replay_a_release,
)
from tests.support import ROOT

SERVICE = "ava-bot"
ENV = cast(Environment, SimpleNamespace(render_service=SERVICE))
SAYS_WHERE = "import os; print(os.path.abspath(__file__))\n"


def blueprint(
    root: object = None, *, build: str = "pip install -r requirements.txt", start: str = "python ava.py"
) -> str:
    """A render.yaml of one Python web service (and its Key Value), ``rootDir`` when given."""
    lines = [
        "services:",
        "  - type: web",
        f"    name: {SERVICE}",
        "    runtime: python",
        f"    buildCommand: {json.dumps(build)}",
        f"    startCommand: {json.dumps(start)}",
    ]
    if root is not None:
        lines.append(f"    rootDir: {root if isinstance(root, list) else json.dumps(root)}")
    lines += ["  - type: keyvalue", "    name: ava-redis", "    ipAllowList: []"]
    return "\n".join(lines) + "\n"


def a_tree(at: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (at / name).parent.mkdir(parents=True, exist_ok=True)
        (at / name).write_text(text)
    return at


def one_clear_line(message: str, *words: str) -> None:
    assert "\n" not in message and "Traceback" not in message, message
    assert "rootDir" in message, message
    for word in words:
        assert word in message, message


# -- where the bot starts: the spellings of one folder --------------------------------------------


@pytest.mark.parametrize(
    ("root", "folder"),
    [
        ("app", "app"),
        ("./app", "app"),
        ("app/", "app"),
        ("/app", "app"),  # relative to the repository, as botrun reads it
        (" app ", "app"),
        ("services/bot", "services/bot"),
        ("./services/bot/", "services/bot"),
        ("app/../app", "app"),
        ("link", "app"),  # a symlink to a folder of the tree: the folder it names
        ("", ""),
        (".", ""),
        ("/", ""),
    ],
)
def test_every_spelling_of_a_root_dir_starts_where_botrun_builds(tmp_path, root, folder):
    tree = a_tree(tmp_path / "tree", {"render.yaml": blueprint(root), "app/ava.py": "", "services/bot/ava.py": ""})
    (tree / "link").symlink_to("app")
    command, workdir = own_start(tree, ENV)
    assert command == "python ava.py"
    assert workdir.resolve() == (tree / folder).resolve()
    commands = botrun.from_blueprint((tree / "render.yaml").read_text(), SERVICE)
    assert workdir.resolve() == (tree / commands.root).resolve()  # the replay agrees with botrun/check-bot


@pytest.mark.parametrize(
    ("root", "why"),
    [
        ("..", "leaves the repository"),
        ("../tree", "leaves the repository"),  # back into itself by name, still out first
        ("app/../..", "leaves the repository"),
        ("out", "leaves the repository"),  # a symlink to a folder outside the checkout
        ("loop", "not a folder of the commit"),  # a symlink to itself: resolve() raised RuntimeError
        ("missing", "not a folder of the commit"),
        ("/etc", "not a folder of the commit"),  # absolute: the repository's etc/, which it lacks
        ("ava.py", "not a folder of the commit"),  # a file
        (["app", "svc"], "not a folder"),  # a YAML list
    ],
)
def test_a_root_dir_that_is_no_folder_of_the_commit_is_one_line_naming_it_and_the_fix(tmp_path, root, why):
    """own_start, and the interpreter that runs before it (a tree without uv.lock is built by its
    build command in the rootDir): one line naming the rootDir and the fix. It was the build's
    failure with every letter masked ('its build command failed (xxx xxxxxxx'x xxxxxxx ...)')."""
    (tmp_path / "outside").mkdir()
    tree = a_tree(
        tmp_path / "tree", {"render.yaml": blueprint(root), "app/ava.py": "", "ava.py": "", "requirements.txt": ""}
    )
    (tree / "out").symlink_to(tmp_path / "outside")
    (tree / "loop").symlink_to(tree / "loop")
    with pytest.raises(CannotStart) as started:
        own_start(tree, ENV)
    one_clear_line(str(started.value), why)
    assert any(fix in str(started.value) for fix in ("set it", "write it")), started.value
    with pytest.raises(CannotStart) as built:
        interpreter(tree, {"PATH": os.environ["PATH"]}, lambda line: None, ENV)
    assert str(built.value) == str(started.value)
    for role in ("live", "candidate"):
        error = _cannot_start(role, "ab" * 20, str(built.value))
        assert "\n" not in error.one_line() and why in error.one_line()
    try:  # botrun (check-bot, the deploy's build) refuses it too
        commands = botrun.from_blueprint((tree / "render.yaml").read_text(), SERVICE)
    except ConfigError:
        return
    with pytest.raises(BuildFailed, match="rootDir"):
        botrun.build(tree, commands, {"PATH": os.environ["PATH"]})


def test_a_root_dir_out_of_the_repository_is_named_even_beside_another_web_service(tmp_path):
    """Two web services: the interpreter's fallback to 'the only web service' said 'render.yaml
    has 2 web services: which one is the bot?' for a rootDir '..' of the named one."""
    text = blueprint("..") + "  - type: web\n    name: ava-admin\n    runtime: python\n    startCommand: python a.py\n"
    tree = a_tree(tmp_path / "tree", {"render.yaml": text, "requirements.txt": ""})
    with pytest.raises(CannotStart) as built:
        interpreter(tree, {"PATH": os.environ["PATH"]}, lambda line: None, ENV)
    one_clear_line(str(built.value), "leaves the repository")


@pytest.mark.parametrize("text", ["- just\n- a list\n", "services: 5\n", "services:\n  - 7\n", "42\n"])
def test_a_render_yaml_of_another_shape_is_a_line_not_a_traceback(tmp_path, text):
    """A tree with a uv.lock skips the build's reading of render.yaml: own_start met a list or a
    number with ``.get`` (AttributeError, TypeError: a traceback that stopped the release)."""
    tree = a_tree(tmp_path / "tree", {"render.yaml": text})
    with pytest.raises(CannotStart, match="says no startCommand for ava-bot"):
        own_start(tree, ENV)


# -- each commit as its own tree says --------------------------------------------------------------


def test_the_live_commit_and_the_candidate_each_start_in_their_own_folder(tmp_path):
    """The move into a monorepo: live at the top (an app/ it does not use), the candidate in app/."""
    live = a_tree(tmp_path / "live", {"render.yaml": blueprint(), "ava.py": "", "app/ava.py": ""})
    moved = a_tree(tmp_path / "moved", {"render.yaml": blueprint("app"), "app/ava.py": ""})
    assert own_start(live, ENV)[1] == live  # its app/ is there, but its render.yaml names no rootDir
    assert own_start(moved, ENV)[1] == (moved / "app").resolve()


def test_a_live_commit_without_the_candidates_folder_says_so_not_a_masked_build_failure(tmp_path):
    """The live commit's render.yaml names app/ but the commit lacks it (a rootDir set before the
    move landed): the replay names that, in words, whatever the candidate holds."""
    live = a_tree(tmp_path / "live", {"render.yaml": blueprint("app"), "ava.py": "", "requirements.txt": ""})
    with pytest.raises(CannotStart) as built:
        interpreter(live, {"PATH": os.environ["PATH"]}, lambda line: None, ENV)
    one_clear_line(str(built.value), "'app'", "not a folder of the commit")
    assert "xxx" not in str(built.value)


# -- which Python: the rootDir's own dependency files, not the repository's top --------------------


def test_a_uv_lock_outside_the_root_dir_does_not_choose_the_python(tmp_path, monkeypatch):
    """The repository's top holds this checkout's uv.lock (its tooling), the bot in app/ has its own
    requirements.txt and build. On Render the top's uv.lock is not even there; the replay ran the
    bot with this environment (the top's lock was 'the same'), never running app/'s build."""
    monkeypatch.chdir(ROOT)
    tree = a_tree(
        tmp_path / "tree",
        {"render.yaml": blueprint("app", build="true"), "app/ava.py": "", "app/requirements.txt": ""},
    )
    shutil.copy2(ROOT / "uv.lock", tree / "uv.lock")
    python = interpreter(tree, {"PATH": os.environ["PATH"]}, lambda line: None, ENV)
    assert Path(python).parent.parent.resolve() == (tree / "app" / ".venv").resolve()


def fake_uv(folder: Path, record: Path) -> dict[str, str]:
    """A ``uv`` first on PATH that records where it ran and makes the environment's python."""
    folder.mkdir()
    uv = folder / "uv"
    uv.write_text(
        "#!/bin/sh\n"
        f'echo "$(pwd -P) $UV_PROJECT_ENVIRONMENT" > {record}\n'
        'mkdir -p "$UV_PROJECT_ENVIRONMENT/bin"\n'
        f'ln -sf {sys.executable} "$UV_PROJECT_ENVIRONMENT/bin/python"\n'
    )
    uv.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def test_the_root_dirs_own_uv_lock_is_synced_in_the_root_dir(tmp_path, monkeypatch):
    """A `python -m pkg` bot in app/ with its own uv.lock, and another project's uv.lock at the top:
    uv syncs app/'s project into app/.venv (it synced the top's project into the tree's .venv)."""
    monkeypatch.chdir(ROOT)
    tree = a_tree(
        tmp_path / "tree",
        {
            "render.yaml": blueprint("app", build="uv sync --locked", start="python -m pkg"),
            "uv.lock": "# the top's tooling\n",
            "app/uv.lock": "# the bot's own\n",
            "app/pkg/__init__.py": "",
            "app/pkg/__main__.py": SAYS_WHERE,
        },
    )
    record = tmp_path / "uv-ran"
    python = interpreter(tree, fake_uv(tmp_path / "bin", record), lambda line: None, ENV)
    app = (tree / "app").resolve()
    assert python == str(app / ".venv" / "bin" / "python")
    assert record.read_text().split() == [str(app), str(app / ".venv")]


def test_a_root_dirs_uv_lock_like_this_checkouts_runs_with_this_environment(tmp_path, monkeypatch):
    """app/uv.lock is this checkout's: this environment serves, as for the same lock at the top
    (it was built anew by the build command in app/)."""
    monkeypatch.chdir(ROOT)
    tree = a_tree(tmp_path / "tree", {"render.yaml": blueprint("app", build="false"), "app/ava.py": ""})
    shutil.copy2(ROOT / "uv.lock", tree / "app" / "uv.lock")
    assert interpreter(tree, {"PATH": os.environ["PATH"]}, lambda line: None, ENV) == sys.executable


@pytest.mark.parametrize("start", ["python -m pkg", "python ava.py"])
def test_the_start_command_runs_the_root_dirs_code_not_the_tops(tmp_path, start):
    """`python -m pkg` and a Procfile's `python ava.py`, each with a namesake at the top: the bot
    the rootDir holds runs (the process the replay starts: start_argv in own_start's folder)."""
    files = {"render.yaml": blueprint("services/bot", start=start)}
    for where in ("", "services/bot/"):
        files |= {f"{where}pkg/__init__.py": "", f"{where}pkg/__main__.py": SAYS_WHERE, f"{where}ava.py": SAYS_WHERE}
    tree = a_tree(tmp_path / "tree", files)
    command, workdir = own_start(tree, ENV)
    environ = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    ran = subprocess.run(
        start_argv(sys.executable, command), cwd=workdir, env=environ, capture_output=True, text=True, check=True
    )
    ran_file = Path(ran.stdout.strip()).resolve()
    assert ran_file.is_relative_to((tree / "services" / "bot").resolve()), ran_file


@pytest.mark.xfail(
    strict=True,
    reason="the replay keeps the whole checkout around a rootDir: a bot reaching ../shared.py runs "
    "here though Render (and check-bot's only_root) have nothing outside the rootDir; isolating it "
    "must keep render.yaml for the build, a change beyond this attack",
)
def test_nothing_outside_the_root_dir_is_there_for_the_bot(tmp_path):
    tree = a_tree(
        tmp_path / "tree",
        {"render.yaml": blueprint("app", build="true", start="python ../shared.py"), "app/ava.py": "", "shared.py": ""},
    )
    interpreter(tree, {"PATH": os.environ["PATH"]}, lambda line: None, ENV)
    _, workdir = own_start(tree, ENV)
    assert not (workdir.parent / "shared.py").exists()


# -- end to end: the move into a rootDir, live at the top and the candidate in app/ ----------------


@pytest.mark.timeout(300)  # adopt as a process, two builds, nine bot starts: 110 s at load 10
def test_the_replay_of_a_bot_moving_into_a_root_dir_runs_each_commit_where_it_lives(procfile_bot, tmp_path):
    """production's replay stage when the candidate moves the Procfile bot into app/: the live
    commit starts at its top, the candidate in app/, and the replay compares them."""
    assert adopt(procfile_bot).returncode == 0
    committed(procfile_bot)

    def into_app(world: World) -> str:
        in_a_root_dir(world.repo, "app")
        committed(world.repo)
        return git(world.repo, "rev-parse", "HEAD")

    statuses = replay_a_release(procfile_bot, tmp_path, into_app)
    assert any("live ×2 and candidate" in status for status in statuses), statuses
