"""What ``ci-tools adopt`` copies from the pipeline's checkout into a bot's repository: one list.

The workflows, their actions and the branch rules are copied as this checkout has them (their
contents are the pipeline's, never composed here); the bot kit is vendored; CONTRIBUTING.md
gets the flow section between two markers. Every copied file a comment can go in carries a
header naming adopt as its keeper, so a later adopt replaces its own files and refuses to
overwrite one the owner wrote under the same name.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ci_tools.errors import ConfigError, InputError
from ci_tools.repo.workflow_files import PIN, adopted_set, pin_entry, pinned_lock

MANAGED = "managed by ci-tools adopt"
_HEADERS = {
    ".py": f"# {MANAGED}: a later `ci-tools adopt` replaces this file; change it where the pipeline lives\n",
    ".yml": f"# {MANAGED}: a later `ci-tools adopt` replaces this file; change it where the pipeline lives\n",
    ".yaml": f"# {MANAGED}: a later `ci-tools adopt` replaces this file; change it where the pipeline lives\n",
    ".md": f"<!-- {MANAGED}: a later `ci-tools adopt` replaces this file -->\n",
    ".toml": f"# {MANAGED}, pinned by its --pin: a later `ci-tools adopt` replaces this file\n",
}
KIT = "release_kit"
FLOW_START = "<!-- ci-tools adopt: flow"
FLOW_END = "<!-- ci-tools adopt: end of flow -->"
FLOW_MARKER = (
    f"{FLOW_START} (a later `ci-tools adopt` replaces what lies between these markers; write outside them) -->"
)


@dataclass(frozen=True)
class Copied:
    """A folder adopt copies into, for the report and for what this checkout may lack."""

    folder: str
    what: str
    optional: bool = False  # absent from this checkout: a warning, not a failure


# The folders; which files of the three .github folders go is workflow_files.adopted_set's one
# list (every workflow but OURS_ONLY, the setup action, the rulesets), the kit is copied whole.
COPIED = (
    Copied(".github/workflows", "the workflows (each step one ci-tools call)"),
    Copied(".github/actions", "the action that installs ci-tools as pylock.toml pins it"),
    Copied(".github/rulesets", "the branch rules `ci-tools github setup` imports"),
    Copied(KIT, "the bot kit (vendored: your bot imports it from its own tree)", optional=True),
)


def checkout() -> Path:
    """The pipeline's own checkout, which adopt copies from (the wheel carries no workflows)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".github" / "workflows").is_dir() or not (root / "ci_tools").is_dir():
        raise ConfigError(
            f"ci-tools runs from {root}, which is no checkout of the release pipeline: adopt copies its workflows",
            hint="clone the pipeline's repository and run `uv run ci-tools adopt PATH` there",
        )
    return root


@dataclass(frozen=True)
class Pin:
    """What the adopted setup action installs ci-tools from (``workflow_files.pinned_lock``'s
    source), where that came from, and what the owner should know of it."""

    source: str
    origin: str
    warnings: tuple[str, ...] = ()


PIN_FORMS = (
    "--pin git+https://github.com/<owner>/<repo>@<40-hex commit> or --pin <wheel URL or absolute path>#sha256=<hex>"
)
# The addresses of a GitHub repository a clone's origin may have; the pin is its https form,
# which a workflow installs from without credentials.
_GITHUB = re.compile(
    r"^(?:https://github\.com/|git@github\.com:|ssh://git@github\.com/)([\w.-]+/[\w.-]+?)(?:\.git)?/?$"
)


def given_pin(value: str) -> Pin:
    """``--pin``: one of ``pinned_lock``'s two forms; a wheel on this machine by an absolute path
    whose file has that hash (a relative path would be read from the setup action's folder)."""
    try:
        pin_entry(value)
    except ConfigError as exc:
        raise InputError(f"--pin: {exc.message}", hint=PIN_FORMS) from None
    wheel, _, digest = value.partition("#sha256=")
    if digest and "://" not in wheel:
        path = Path(wheel)
        if not path.is_absolute():
            raise InputError(f"--pin: {wheel} is a relative path", hint="give the wheel's absolute path or its URL")
        if not path.is_file():
            raise InputError(f"--pin: {wheel} does not exist", hint="build it (uv build --wheel) or give its URL")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise InputError(f"--pin: {wheel} does not have sha256 {digest}", hint="give the hash of that file")
    return Pin(value, "--pin")


def _git(checkout: Path, *args: str) -> str | None:
    done = subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def default_pin(checkout: Path) -> Pin:
    """This checkout's commit on its GitHub origin: the pipeline the adopted workflows were copied
    from is the one they install. Refused (naming --pin) when origin is no GitHub repository;
    warned when that commit is on no branch of origin this clone knows, or the copied files
    differ from it (the pin installs the commit, without those changes)."""
    origin = _git(checkout, "remote", "get-url", "origin")
    found = _GITHUB.match(origin or "")
    if found is None:
        where = f"origin is {origin}" if origin else "no origin remote"
        raise InputError(
            f"adopt cannot pin ci-tools: this checkout has {where}, not a GitHub repository to install from",
            hint=f"give {PIN_FORMS}",
        )
    commit = _git(checkout, "rev-parse", "HEAD") or ""
    pin = f"git+https://github.com/{found[1]}@{commit}"
    warnings = []
    if not _git(checkout, "branch", "-r", "--contains", commit):
        warnings.append(
            f"ci-tools is pinned to {commit[:12]}, which is on no branch of origin this checkout knows: "
            "push it before the workflows run, or they cannot install ci-tools"
        )
    changed = _git(checkout, "status", "--porcelain", "--", ".github", "ci_tools", KIT, "pyproject.toml")
    if changed:
        warnings.append(
            f"this checkout has changes not in {commit[:12]} ({changed.splitlines()[0].strip()}"
            f"{', …' if len(changed.splitlines()) > 1 else ''}): the pin installs the commit without them"
        )
    return Pin(pin, "this checkout's origin at HEAD", tuple(warnings))


def _with_header(relative: str, data: bytes) -> bytes:
    header = _HEADERS.get(Path(relative).suffix)
    return header.encode() + data if header else data


def copied_files(source: Path, pin: str) -> tuple[dict[str, bytes], list[str]]:
    """Every file adopt copies (relative path → content as written), the setup action's
    ``pylock.toml`` pinned to ``pin`` (``workflow_files.pinned_lock``), and a warning per absent
    optional folder."""
    missing: list[str] = []
    for entry in COPIED:
        if (source / entry.folder).is_dir():
            continue
        if not entry.optional:
            raise ConfigError(f"this checkout has no {entry.folder}/", hint="restore it from the repository")
        missing.append(f"{entry.folder}/ is not in this checkout of the pipeline: {entry.what} not copied")
    if not (source / PIN).is_file():
        raise ConfigError(f"this checkout has no {PIN}", hint="restore it from the repository")
    names = adopted_set(source)
    if (source / KIT).is_dir():
        names += [p.relative_to(source).as_posix() for p in sorted((source / KIT).glob("**/*")) if p.is_file()]
    found: dict[str, bytes] = {}
    for relative in names:
        if "__pycache__" in Path(relative).parts or relative.endswith(".pyc"):
            continue
        data = (source / relative).read_bytes()
        if relative == PIN:
            data = pinned_lock(data.decode("utf-8"), pin).encode()
        found[relative] = _with_header(relative, data)
    return found, missing


def _headed(path: Path) -> bool:
    return path.is_file() and MANAGED.encode() in path.read_bytes()[:300]


def clashes(target: Path, wanted: dict[str, bytes]) -> list[str]:
    """The files adopt would overwrite that the owner wrote: there, different, and without the
    header. A file that cannot carry one (a ruleset is JSON GitHub takes whole) is adopt's only
    once adopt has run here, which its headed files show; before that, it is the owner's."""
    adopted_before = any(_headed(target / name) for name in wanted if Path(name).suffix in _HEADERS)
    found = []
    for relative, data in wanted.items():
        path = target / relative
        if not path.is_file() or path.read_bytes() == data:
            continue
        ours = _headed(path) if Path(relative).suffix in _HEADERS else adopted_before
        if not ours:
            found.append(relative)
    return found


def flow_section(source: Path, names: dict[str, str]) -> str:
    """Our CONTRIBUTING.md's flow section, each of our service names (``names``: ours → theirs)
    replaced by theirs, the diagram's columns kept."""
    text = (source / "CONTRIBUTING.md").read_text(encoding="utf-8")
    try:
        start = text.index(FLOW_START)
        body = text[text.index("\n", start) + 1 : text.index(FLOW_END)]
    except ValueError:
        raise ConfigError(
            "this checkout's CONTRIBUTING.md has no flow markers", hint="restore it from the repository"
        ) from None
    for ours, theirs in names.items():
        body = body.replace(f"({ours})", f"({theirs})".ljust(len(ours) + 2)).replace(ours, theirs)
    return "\n".join(line.rstrip() for line in body.splitlines()) + "\n"


def with_flow_section(current: str | None, section: str, path_name: str = "CONTRIBUTING.md") -> str:
    """``current`` (None: no such file) with ``section`` between the markers: replaced where they
    are, appended where they are not."""
    block = f"{FLOW_MARKER}\n{section}{FLOW_END}\n"
    if current is None:
        return f"# Contributing\n\n{block}"
    if FLOW_START not in current:
        return current.rstrip("\n") + "\n\n" + block
    start = current.index(FLOW_START)
    if FLOW_END not in current[start:]:
        raise InputError(
            f"{path_name} has the flow's start marker and no end marker ({FLOW_END})",
            hint="put the end marker back, or delete the start marker line",
        )
    end = current.index(FLOW_END, start) + len(FLOW_END)
    after = current[end:]
    return current[:start] + block.rstrip("\n") + (after if after.startswith("\n") else "\n" + after)
