"""What ``ci-tools adopt`` copies from the pipeline's checkout into a bot's repository: one list.

The workflows, their actions and the branch rules are copied as this checkout has them (their
contents are the pipeline's, never composed here); the bot kit is vendored; CONTRIBUTING.md
gets the flow section between two markers. Every copied file a comment can go in carries a
header naming adopt as its keeper, so a later adopt replaces its own files and refuses to
overwrite one the owner wrote under the same name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ci_tools.errors import ConfigError, InputError

MANAGED = "managed by ci-tools adopt"
_HEADERS = {
    ".py": f"# {MANAGED}: a later `ci-tools adopt` replaces this file; change it where the pipeline lives\n",
    ".yml": f"# {MANAGED}: a later `ci-tools adopt` replaces this file; change it where the pipeline lives\n",
    ".yaml": f"# {MANAGED}: a later `ci-tools adopt` replaces this file; change it where the pipeline lives\n",
    ".md": f"<!-- {MANAGED}: a later `ci-tools adopt` replaces this file -->\n",
}
FLOW_START = "<!-- ci-tools adopt: flow"
FLOW_END = "<!-- ci-tools adopt: end of flow -->"
FLOW_MARKER = (
    f"{FLOW_START} (a later `ci-tools adopt` replaces what lies between these markers; write outside them) -->"
)


@dataclass(frozen=True)
class Copied:
    """A folder of the checkout and the files of it adopt copies."""

    folder: str
    pattern: str
    what: str
    optional: bool = False  # absent from this checkout: a warning, not a failure


COPIED = (
    Copied(".github/workflows", "*.yml", "the workflows (each step one ci-tools call)"),
    Copied(".github/actions", "**/*", "the actions the workflows use"),
    Copied(".github/rulesets", "*.json", "the branch rules `ci-tools github setup` imports"),
    Copied("release_kit", "**/*", "the bot kit (vendored: your bot imports it from its own tree)", optional=True),
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


def _with_header(relative: str, data: bytes) -> bytes:
    header = _HEADERS.get(Path(relative).suffix)
    return header.encode() + data if header else data


def copied_files(source: Path) -> tuple[dict[str, bytes], list[str]]:
    """Every file adopt copies (relative path → content as written), and a warning per absent
    optional folder."""
    found: dict[str, bytes] = {}
    missing: list[str] = []
    for entry in COPIED:
        folder = source / entry.folder
        if not folder.is_dir():
            if not entry.optional:
                raise ConfigError(f"this checkout has no {entry.folder}/", hint="restore it from the repository")
            missing.append(f"{entry.folder}/ is not in this checkout of the pipeline: {entry.what} not copied")
            continue
        for path in sorted(folder.glob(entry.pattern)):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                relative = path.relative_to(source).as_posix()
                found[relative] = _with_header(relative, path.read_bytes())
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
