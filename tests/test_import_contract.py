"""The architecture is a contract the imports obey (import-linter, pyproject [tool.importlinter]).

Each test copies the four packages beside the project's pyproject.toml into a scratch folder,
breaks one import on purpose, and runs ``lint-imports`` there: the contract must name it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sandbox.tools import find_tool
from tests.support import ROOT

PACKAGES = ("ci_tools", "mindmate", "release_kit", "sandbox")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over the packages in ``root`` (first on the path), with its pyproject."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [find_tool("lint-imports"), "--no-cache"]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)


def copy_of_the_project(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_project_keeps_its_import_contracts(tmp_path):
    done = lint_imports(copy_of_the_project(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("ci_tools/memory/ops.py", "from ci_tools.pipeline import deploy as deployment", "ci_tools is layered"),
        ("ci_tools/memory/ops.py", "from ci_tools.repo import flow as branch_flow", "ci_tools is layered"),  # siblings
        ("ci_tools/context.py", "from ci_tools.memory import files", "ci_tools is layered"),
        ("mindmate/app.py", "from ci_tools import redact", "the bot stands alone"),
        ("release_kit/server.py", "from mindmate import store", "the bot kit stands alone"),
        ("release_kit/kit.py", "import ci_tools.redact", "the bot kit stands alone"),
        ("ci_tools/pipeline/probe.py", "import mindmate.app", "the release tool talks to the bot over HTTP"),
        ("ci_tools/pipeline/status.py", "import httpx", "the phases reach every service through clients/"),
    ],
)
def test_a_mutated_import_breaks_the_contract_it_crosses(tmp_path, module, line, broken):
    root = copy_of_the_project(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{line}  # the mutation\n")
    done = lint_imports(root)
    assert done.returncode == 1, done.stdout
    assert f"{broken}" in done.stdout and "BROKEN" in done.stdout


def test_the_bot_copied_alone_into_an_empty_project_starts(tmp_path, redis_server, bot_environ, subprocess_env):
    """mindmate/ and the kit it is built on, nothing else: ci_tools and sandbox cannot even be imported there."""
    for package in ("mindmate", "release_kit"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    environ, _ = bot_environ(redis_server.url)
    guard = (
        "import importlib.abc, runpy, sys\n"
        "class Elsewhere(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('ci_tools', 'sandbox'):\n"
        "            raise ImportError(name + ' is not part of this project')\n"
        "sys.meta_path.insert(0, Elsewhere())\n"
        "import mindmate, os, release_kit\n"
        "for package in (mindmate, release_kit):\n"
        "    here = os.path.join(os.getcwd(), package.__name__)\n"
        "    assert os.path.dirname(package.__file__) == here, package.__file__\n"
        "runpy.run_module('mindmate', run_name='__main__')\n"
    )
    env = {**subprocess_env, **environ, "PYTHONPATH": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-c", guard], cwd=tmp_path, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                answer = httpx.get(f"http://127.0.0.1:{environ['PORT']}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("the bot copied alone did not answer /healthz")
        assert answer.status_code == 200 and answer.json()["env"] == "staging"
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()


def test_the_readme_draws_the_layers_the_contract_holds():
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (layered,) = [c for c in contracts if c["type"] == "layers"]
    readme = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    drawn = readme.split("<!-- layers: generated from [tool.importlinter]")[1].split("```")[1].strip().splitlines()
    assert drawn == layered["layers"]
