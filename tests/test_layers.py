"""The stand-ins stay out of what ships: not in the wheel, and no pipeline module imports them."""

from __future__ import annotations

import ast
import re
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


def lint_as(path: str, source: str) -> subprocess.CompletedProcess[str]:
    """ruff on ``source`` as if it were the file at ``path`` (its per-file rules apply)."""
    command = [find_tool("ruff"), "check", "--stdin-filename", path, "-"]
    return subprocess.run(command, cwd=ROOT, input=source, capture_output=True, text=True, check=False)


def test_a_pipeline_module_that_imports_a_stand_in_fails_the_lint():
    mutant = "from sandbox.world import World\n\n__all__ = ['World']\n"
    done = lint_as("ci_tools/pipeline/deploy.py", mutant)
    assert done.returncode == 1 and "TID251" in done.stdout and "`sandbox` is banned" in done.stdout
    fine = lint_as("tests/test_x.py", mutant)
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


LAYERS = {"cli", "pipeline", "repo", "clients", "memory", "contracts", "botrun"}
PLUMBING = {
    "__init__",
    "__main__",
    "errors",
    "output",
    "redact",
    "cancel",  # a cancel a finalizer swallowed, seen between batches of a memory write
    "http",
    "settings",
    "needs",
    "context",
    "actions",
    "checklist",
    "runbook",  # the owner's journey, numbered once: docs, --help and the rehearsal read it
}


# Modules that several commands share carry the name of what they hold, not of a command.
SHARED = {
    "bake",
    "blueprint_sync",
    "levels",
    "release_order",
    "safety_net",
    "serving",
    "back_merge",
    "blueprint",
    "workflow_files",
    "owner_files",
    "environment_gate",
    "replay_bots",  # the replay's bot processes and what they could read
    "replay_judge",  # the replay's comparison rule
    "scheduler",  # which of main's workflows a schedule starts (github dispatch --schedule)
    "unreviewed_secrets",  # what staging may hold (github setup and check)
    "old_bot",  # the daily user's old bot during the move (send-back and finish-move)
    "send_back_record",  # what send-back left in the old bot's keys (send-back and its undo)
    "retire_legacy",  # the daily user's legacy keys leave the old bot's Redis (finish-move; memory undo puts them back)
    "bot_detection",  # what adopt (and check-bot) read from a bot's repository
    "adopted_files",  # what adopt copies into a bot's repository: the one list
    "adopted_config",  # adopt's merge of render.yaml and [tool.ci_tools] (init's own edits: owner_files)
    "file_set",  # adopt's files written all together or none
}


def test_the_package_is_grouped_by_layer():
    package = ROOT / "ci_tools"
    folders = {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == LAYERS
    top = {p.stem for p in package.glob("*.py")}
    assert top <= PLUMBING, f"a phase or repository module at the top level: {sorted(top - PLUMBING)}"


def test_a_command_and_its_phase_carry_the_same_word():
    """``ci-tools X`` is ``cli/X.py``; its phase is ``pipeline/X.py`` or ``repo/X.py`` (CONTRIBUTING)."""
    package = ROOT / "ci_tools"
    commands = {p.stem for p in (package / "cli").glob("*.py")} - {"__init__", "_common"}
    for layer in ("pipeline", "repo"):
        phases = {p.stem for p in (package / layer).glob("*.py")} - {"__init__"}
        strays = sorted(phases - commands - SHARED)
        assert not strays, f"{layer}/ modules named after no command: {strays} (name them as their command)"


def _sources(folder: str) -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for p in sorted((ROOT / folder).rglob("*.py"))}


ENVIRONMENT_READS = re.compile(r"\bos\.environ\b|\bgetenv\(|\brequire_secret\b|\boptional_secret\b")


def test_nothing_below_main_reads_the_environment():
    """main() builds the Context (ci_tools/context.py); everything else takes it as a parameter."""
    readers = [
        f"{path}:{number}"
        for path, text in _sources("ci_tools").items()
        # botrun's sitecustomize.py runs inside a bot that ci-tools started, not in ci-tools: it reads the bot's own
        if path not in ("ci_tools/__main__.py", "ci_tools/context.py", "ci_tools/botrun/reroute/sitecustomize.py")
        for number, line in enumerate(text.splitlines(), 1)
        if ENVIRONMENT_READS.search(line.split("#")[0])
    ]
    assert readers == []


def test_the_environment_check_can_fail():
    assert ENVIRONMENT_READS.search('token = os.environ.get("TELEGRAM_BOT_TOKEN")')
    assert ENVIRONMENT_READS.search('os.getenv("X")') and not ENVIRONMENT_READS.search("ctx.optional('X')")


NAME_COMPARISON = re.compile(r"""[=!]=\s*["'](production|staging)["']|["'](production|staging)["']\s*[=!]=""")


def test_no_phase_compares_an_environment_with_its_name():
    """Roles live in config (rollback_on_failed_probe, cutover_target…): renaming production must
    not silently turn off its rollback (tests/pipeline/test_release.py renames it)."""
    found = [
        f"{path}:{number}: {line.strip()}"
        for path, text in _sources("ci_tools").items()
        for number, line in enumerate(text.splitlines(), 1)
        if NAME_COMPARISON.search(line)
    ]
    assert found == []
    assert NAME_COMPARISON.search('if env.name == "production":')


def test_the_formatter_is_in_charge():
    skips = [
        path
        for folder in ("ci_tools", "mindmate")
        for path, text in _sources(folder).items()
        for line in text.splitlines()
        if "fmt: skip" in line or "fmt: off" in line
    ]
    assert len(skips) <= 5, skips


def _function_local_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports inside a function body, those under ``if TYPE_CHECKING:`` (annotations only) aside."""
    typing_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for n in ast.walk(block)
    }
    found = {
        id(n): n
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for n in ast.walk(function)
        if isinstance(n, ast.Import | ast.ImportFrom) and id(n) not in typing_only
    }
    return list(found.values())


def _says_why(lines: list[str], node: ast.stmt) -> bool:
    """A comment on the import's lines or the line above, beyond a ``type: ignore``."""
    around = lines[node.lineno - 2 : node.end_lineno]
    comments = [re.sub(r"type:\s*ignore\[[^]]*\]", "", line.split("#", 1)[1]) for line in around if "#" in line]
    return any(c.strip(" #") for c in comments)


def test_modules_import_at_the_top_and_an_import_in_a_function_says_why():
    """``main()`` imports only the command it runs (ci_tools/__main__.py), so a module imports what
    it uses at its top; an import inside a function is the exception (an optional dependency, the
    weight ``--help`` must not carry) and its comment says which."""
    local = []
    for path in sorted((ROOT / "ci_tools").rglob("*.py")):
        text = path.read_text()
        for node in _function_local_imports(ast.parse(text)):
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            assert _says_why(text.splitlines(), node), f"{where}: move the import to the top, or say why it cannot be"
            local.append(where)
    assert len(local) <= 15, f"{len(local)} imports inside functions: {local}"
