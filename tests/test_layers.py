"""The stand-ins stay out of what ships: not in the wheel, and no pipeline module imports them."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from sandbox.tools import find_tool
from tests.support import ROOT


def test_the_built_wheel_holds_no_stand_ins(tmp_path):
    subprocess.run(
        [find_tool("uv"), "build", "--wheel", "--out-dir", str(tmp_path), "--offline", "--quiet"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("ci_tools/") for n in names) and any(n.startswith("mindmate/") for n in names)
    assert not [n for n in names if n.startswith("sandbox/") or "/sandbox/" in n]


def test_a_pipeline_module_that_imports_a_stand_in_fails_the_lint():
    mutant = "from sandbox.world import World\n\n__all__ = ['World']\n"
    done = subprocess.run(
        [find_tool("ruff"), "check", "--stdin-filename", "ci_tools/pipeline/deployment.py", "-"],
        cwd=ROOT,
        input=mutant,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "TID251" in done.stdout and "`sandbox` is banned" in done.stdout
    fine = subprocess.run(
        [find_tool("ruff"), "check", "--stdin-filename", "tests/test_x.py", "-"],
        cwd=ROOT,
        input=mutant,
        capture_output=True,
        text=True,
        check=False,
    )
    assert fine.returncode == 0, fine.stdout  # tests may


def test_without_the_stand_ins_the_rehearsal_says_where_they_are(tmp_path):
    """A wheel install has no sandbox/: one line naming the checkout, exit 3."""
    blocker = tmp_path / "sandbox"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'sandbox'\", name='sandbox')\n")
    # python -m puts the working folder first on sys.path: there, sandbox/ cannot be imported.
    done = subprocess.run(
        [sys.executable, "-m", "ci_tools", "rehearse"],
        cwd=tmp_path,
        env={"CI_TOOLS_CONFIG": str(ROOT / "pyproject.toml"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 3, done.stderr
    assert done.stderr.strip().startswith("ci-tools: configuration: the stand-ins (sandbox/) are not installed")


LAYERS = {"cli", "pipeline", "repo", "clients", "memory", "contracts"}
PLUMBING = {"__init__", "__main__", "errors", "output", "redact", "http", "settings", "needs", "context"}


def test_the_package_is_grouped_by_layer_and_no_two_modules_share_a_name():
    package = ROOT / "ci_tools"
    folders = {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == LAYERS
    top = {p.stem for p in package.glob("*.py")}
    assert top <= PLUMBING, f"a phase or repository module at the top level: {sorted(top - PLUMBING)}"
    seen: dict[str, str] = {}
    for path in sorted(package.rglob("*.py")):
        if path.stem in ("__init__", "__main__", "_common"):
            continue
        where = str(path.relative_to(package))
        assert path.stem not in seen, f"{where} and {seen[path.stem]} share a name"
        seen[path.stem] = where
