"""What the docs count and list is what the tree holds: the workflows, the commands, init's
prompts, the memory modules. A doc that names one too many or too few fails here, not in a reader's hands.

The command table in docs/COMMANDS.md is generated from ci_tools/__main__.py's COMMANDS (each command's --help line):
`uv run python -m tests.repo.test_docs_match_tree` prints it.
"""

from __future__ import annotations

import argparse
import ast
import re

from ci_tools.__main__ import COMMANDS, build_parser
from ci_tools.cli.init import ASKED, OPTIONAL_ASKED, PROMPTS
from ci_tools.repo.workflow_files import OURS_ONLY
from ci_tools.settings import reference
from tests.cli.test_unreachable import COMMANDS as UNREACHABLE_COMMANDS
from tests.support import ROOT
from tests.test_layers import _function_local_imports

NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
WORKFLOWS = sorted(p.stem for p in (ROOT / ".github" / "workflows").glob("*.yml"))


def _number(word: str) -> int:
    return int(word) if word.isdigit() else NUMBERS[word.lower()]


def _commands() -> dict[str, str]:
    """Each ci-tools command and its --help line, in the order of ci_tools/__main__.py's COMMANDS."""
    return COMMANDS


def command_table() -> str:
    commands = _commands()
    rows = [f"| `ci-tools {name}` | {text.replace('|', '/')} |" for name, text in commands.items()]
    return "\n".join([f"ci-tools has {len(commands)} commands:", "", "| command | what it does |", "|---|---|", *rows])


def _block(text: str, start: str, stop: str) -> str:
    """The lines of a `path   description` listing from ``start`` up to the next line starting ``stop``."""
    lines = text.split("\n")
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    last = next(i for i in range(first + 1, len(lines)) if lines[i].startswith(stop))
    return " ".join(line.strip() for line in lines[first:last])[len(start) :]


def _without_asides(text: str) -> str:
    while re.search(r"\([^()]*\)", text):
        text = re.sub(r"\([^()]*\)", "", text)
    return text


def _names(listing: str) -> list[str]:
    return [name.strip(" .;") for name in re.split(r",|\band\b|;", listing) if name.strip(" .;")]


def test_commands_md_lists_every_command_as_the_parser_has_it():
    text = (ROOT / "docs" / "COMMANDS.md").read_text()
    assert command_table() in text, "docs/COMMANDS.md's command table is stale: print it anew (see this module)"
    stated = re.findall(r"ci-tools has (\d+) commands", "\n".join(d.read_text() for d in DOCS))
    assert stated and {int(n) for n in stated} == {len(_commands())}


def test_architecture_lists_every_workflow_and_which_are_ours_only():
    block = _block((ROOT / "docs" / "ARCHITECTURE.md").read_text(), ".github/workflows/", ".github/actions/")
    adopted, ours = block.split("ours only", 1)
    counts = [int(n) for n in re.findall(r"\((\d+)\)", adopted) + re.findall(r"(\d+)\)", ours)]
    listed_adopted = _names(_without_asides(adopted).split(":", 1)[1])
    listed_ours = _names(_without_asides(ours).split(":", 1)[1])
    assert sorted(listed_adopted + listed_ours) == WORKFLOWS
    assert sorted(listed_ours) == sorted(name.removesuffix(".yml") for name in OURS_ONLY)
    assert counts == [len(WORKFLOWS) - len(OURS_ONLY), len(OURS_ONLY)]


def test_architecture_lists_every_memory_module():
    modules = sorted(p.stem for p in (ROOT / "ci_tools" / "memory").glob("*.py") if p.stem != "__init__")
    block = _block((ROOT / "docs" / "ARCHITECTURE.md").read_text(), "ci_tools/memory/", "ci_tools/clients/")
    found = re.fullmatch(r"\s*(\d+) modules: (.*)", block)
    assert found, block
    count, listing = found.groups()
    assert sorted(_names(_without_asides(listing))) == modules
    assert int(count) == len(modules)


def _entry(text: str, start: str) -> str:
    """The lines of docs/ARCHITECTURE.md's tree entry for ``start``, up to the next entry."""
    lines = text.split("\n")
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    last = next(i for i in range(first + 1, len(lines)) if not lines[i].startswith(" "))
    return " ".join(lines[first:last])


# The folders whose tree entry lists its modules by name (ci_tools/cli/ is "one module a command").
LISTED = ("ci_tools/pipeline/", "ci_tools/repo/", "ci_tools/botrun/", "release_kit/", "mindmate/", "bench/")


def test_architecture_names_every_module_of_the_folders_it_lists():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    for folder in LISTED:
        entry = _entry(text, folder)
        modules = [p.stem for p in (ROOT / folder).glob("*.py") if p.stem not in ("__init__", "__main__")]
        unnamed = sorted(m for m in modules if not re.search(rf"\b{m}\b", entry))
        assert not unnamed, f"docs/ARCHITECTURE.md's {folder} does not name {unnamed}"


def test_the_readme_links_every_doc():
    readme = (ROOT / "README.md").read_text()
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert f"](docs/{doc.name})" in readme, f"README does not link docs/{doc.name}"


def test_developing_counts_the_commands_the_unreachable_bench_runs():
    stated = re.findall(r"default settings, (\d+) commands", (ROOT / "docs" / "DEVELOPING.md").read_text())
    assert stated == [str(len(UNREACHABLE_COMMANDS))]  # bench/unreachable.py runs the test's own list


def _init_help() -> str:
    return _commands()["init"]


def test_every_count_of_inits_prompts_is_the_codes():
    texts = {doc.name: doc.read_text() for doc in DOCS}
    texts[".env.example"] = (ROOT / ".env.example").read_text()
    texts["ci-tools init --help"] = _init_help()
    found = 0
    for name, text in texts.items():
        for total, optional in re.findall(r"\b(\w+) prompts \((\w+) optional", text):
            found += 1
            assert (_number(total), _number(optional)) == (len(PROMPTS), len(OPTIONAL_ASKED)), name
    assert found >= 3  # README, .env.example and --help say it at least


def test_env_example_marks_typed_what_inits_prompts_put_in_env():
    # Every prompt but the daily user's id (it goes into pyproject.toml's protected_users).
    lines = (ROOT / ".env.example").read_text().splitlines()
    marked = sorted(line.split("=", 1)[0].lstrip("# ") for line in lines if "# typed" in line)
    wanted = sorted(("PRODUCTION_" + n if n == "RENDER_API_KEY" else n) for n in PROMPTS if n != "DAILY_USER_ID")
    assert marked == wanted


def test_the_values_the_owner_types_are_counted_right():
    # init's required prompts, staging's Render power (a scoped key or else its hook: one of two
    # optional prompts), then --owner-chat-id and the GITHUB_TOKEN for github setup.
    typed = len(ASKED) + 1 + 2
    for doc in (ROOT / "README.md", ROOT / "docs" / "RUNBOOK.md"):
        stated = re.findall(r"\b(\w+) values, each once", doc.read_text())
        assert stated and {_number(word) for word in stated} == {typed}, doc.name


def _house_figure(what: str) -> str:
    """The figure column of docs/DEVELOPING.md's "The house, in figures" row that starts with ``what``."""
    house = (ROOT / "docs" / "DEVELOPING.md").read_text().split("## The house, in figures", 1)[1]
    (row,) = [line for line in house.splitlines() if line.startswith(f"| {what}")]
    return row.split(" | ")[1]


def test_the_readme_fits_on_a_first_page_and_developing_says_its_size():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= 10_000, f"README.md is {size} bytes: at most 10 KB (issue 44); move the rest to docs/"
    assert _house_figure("README.md") == f"{size / 1000:.1f} KB"


def test_developing_counts_the_imports_inside_functions_as_the_tree_has_them():
    local = typing_only = 0
    for path in (ROOT / "ci_tools").rglob("*.py"):
        text = path.read_text()
        local += len(_function_local_imports(ast.parse(text)))
        typing_only += len(re.findall(r"^[ \t]+(?:from .* import|import )", text, flags=re.M))
    typing_only -= local  # the grep in DEVELOPING counts both kinds
    figure = _house_figure("imports inside a function")
    assert figure == f"{local}, plus {typing_only} under `if TYPE_CHECKING:`", figure
    assert f"({local + typing_only}: both kinds)" in (ROOT / "docs" / "DEVELOPING.md").read_text()


def test_developing_counts_the_memory_lines_as_wc_does():
    paths = [*(ROOT / "ci_tools" / "memory").glob("*.py"), ROOT / "ci_tools" / "cli" / "memory.py"]
    lines = sum(len(path.read_text().splitlines()) for path in paths)
    assert _house_figure("`ci_tools/memory/`").startswith(f"{lines:,} lines"), lines


def test_developing_counts_the_lines_an_owner_adds_for_the_conversation_level():
    patch = (ROOT / "tests" / "fixtures" / "owner_bot_kit.patch").read_text().splitlines()
    added = [line for line in patch if re.match(r"\+[^+]", line)]  # the row's grep -c '^+[^+]'
    assert _house_figure("what an owner adds to their bot").startswith(f"{len(added)} lines"), len(added)


def test_a_default_the_prose_repeats_is_the_settings():
    """docs/CONFIGURATION.md's tables are generated; the prose elsewhere says some defaults again
    ("`window_days` (3)", "the old one kept 14 days"): each must be what ci_tools/settings.py says."""
    defaults: dict[str, set[str]] = {}
    for _table, key, _takes, default, _what in reference():
        defaults.setdefault(key, set()).add(default)
    said = {
        "window_days": [r"\b(\d+) days? (?:after|from) their first message"],
        "rollback_window_days": [r"the old one kept (\d+) days", r"`cutover --back` \((\d+) days"],
    }
    found = 0
    for doc in DOCS:
        if doc.name == "CONFIGURATION.md":
            continue
        text = doc.read_text()
        for key, value in re.findall(r"`(\w+)`[^`\n]{0,12}?\((?:default:? )?([\d.]+)(?: [a-z]+)?\)", text):
            if key in defaults:
                found += 1
                assert value in defaults[key], f"{doc.name}: `{key}` ({value}); the setting's default: {defaults[key]}"
        for key, patterns in said.items():
            for value in (v for pattern in patterns for v in re.findall(pattern, text)):
                found += 1
                assert value in defaults[key], f"{doc.name}: {value} days; {key}'s default: {defaults[key]}"
    assert found >= 8


def test_developing_names_every_bench():
    benchmarks = (ROOT / "docs" / "DEVELOPING.md").read_text().split("## Benchmarks", 1)[1].split("\n## ", 1)[0]
    scripts = sorted(p.name for p in (ROOT / "bench").glob("[!_]*.py"))
    assert [s for s in scripts if f"`bench/{s}`" not in benchmarks] == [], "docs/DEVELOPING.md's Benchmarks"


def _options(parser: argparse.ArgumentParser) -> tuple[set[str], dict[str, argparse.ArgumentParser]]:
    subcommands = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            subcommands |= action.choices
    return {o for a in parser._actions for o in a.option_strings}, subcommands


def test_every_option_a_doc_gives_a_command_is_one_it_takes():
    """`ci-tools init --staging-prefix dev:` in a doc: init takes --staging-prefix (a renamed or
    removed flag fails here, not in the owner's terminal)."""
    (commands,) = [a for a in build_parser(list(COMMANDS))._actions if isinstance(a, argparse._SubParsersAction)]
    checked = 0
    for doc in [*DOCS, ROOT / ".env.example"]:
        text = doc.read_text()
        spans = re.findall(r"`((?:uv run )?ci-tools )?([a-z][a-z-]*)([^`\n]*)`", text)
        # a command line in a fenced block: "ci-tools memory copy --user-id 123 … --apply   # comment"
        found = re.findall(r"^((?:\$ )?(?:uv run )?ci-tools )([a-z][a-z-]*)([^#\n]*)", text, flags=re.M)
        lines = [line for line in found if line[1] in commands.choices]  # not prose ("ci-tools has 27 …")
        for prefix, name, rest in spans + lines:
            if not prefix and (name not in commands.choices or "--" not in rest):
                continue  # a word in code, or a command named without options ("`init --repo …`" is checked)
            assert name in commands.choices, f"{doc.name}: ci-tools {name}"
            options, subcommands = _options(commands.choices[name])
            words = rest.split()
            if words and words[0] in subcommands:
                options |= _options(subcommands[words[0]])[0]
            for word in words:
                flag = word.split("=", 1)[0].rstrip(",;:.)]")
                if flag.startswith("--"):
                    checked += 1
                    assert flag in options, f"{doc.name}: ci-tools {name} has no {flag}"
    assert checked >= 20


if __name__ == "__main__":
    print(command_table())
