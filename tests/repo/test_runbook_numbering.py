"""One numbering for the owner's runbook: README's table, docs/RUNBOOK.md's, the rehearsal's printed
phases, every `--help` that names a step and every workflow summary that does all say the numbers of
ci_tools/runbook.py, and nothing says "phase N" any more."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ci_tools.__main__ import COMMANDS, build_parser
from ci_tools.runbook import RUNBOOK, step
from sandbox.rehearsal import Rehearsal
from tests.support import ROOT

# "phase 18,643 keys/s" in a benchmark figure is a copy's phase, not a runbook one.
PHASE_NUMBER = re.compile(r"\bphase (\d+)(?![\d,])", re.I)


def _runbook_rows(doc: Path) -> list[tuple[int, str]]:
    section = (
        doc.read_text().split("## Runbook", 1)[-1].split("\n## ", 1)[0] if doc.name == "README.md" else doc.read_text()
    )
    return [(int(n), row) for n, row in re.findall(r"^\| (\d+) \|(.*)$", section.split("\n## ", 1)[0], flags=re.M)]


def _names_its_step(row: str, number: int) -> bool:
    wanted = step(number)
    if wanted.workflow:
        return f"**{wanted.workflow}** → Run" in row
    if wanted.command:
        return f"ci-tools {wanted.command}" in row
    return "@BotFather" in row


def test_readme_and_the_full_runbook_number_the_steps_as_the_source_does():
    for doc in (ROOT / "README.md", ROOT / "docs" / "RUNBOOK.md"):
        rows = _runbook_rows(doc)
        assert [n for n, _ in rows] == [s.number for s in RUNBOOK], doc.name
        for number, row in rows:
            assert _names_its_step(row, number), f"{doc.name} step {number} does not name {step(number)}"


def test_the_rehearsal_prints_the_runbooks_steps_in_order(tmp_path):
    names = [name for name, _ in Rehearsal(tmp_path, ROOT, process=False, log=lambda line: None).plan()]
    numbered = [(int(m[1]), name) for name in names if (m := re.match(r"step (\d+): ", name))]
    for number, name in numbered:
        assert name.startswith(step(number).label()), name
    seen = [n for n, _ in numbered]
    assert seen == sorted(seen)
    # Every step but init's: the rehearsal's world starts already configured as init leaves it.
    assert set(seen) == {s.number for s in RUNBOOK} - {2}
    stated = re.findall(r"the rehearsal, (\d+) phases", (ROOT / "docs" / "DEVELOPING.md").read_text())
    assert stated == [str(len(names))], "docs/DEVELOPING.md counts the rehearsal's phases wrong"


def _help_texts(parser: argparse.ArgumentParser) -> list[str]:
    """What ``--help`` shows of ``parser`` and of each of its subcommands (``memory copy --help``)."""
    texts = [parser.description or "", *(a.help or "" for a in parser._actions)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            texts += [choice.help or "" for choice in action._choices_actions]  # the subcommands' lines
            for sub in action.choices.values():
                texts += _help_texts(sub)
    return texts


def test_every_help_that_names_a_step_names_its_own():
    (subparsers,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    mentioned = set()
    for name, parser in subparsers.choices.items():
        helps = [COMMANDS[name], *_help_texts(parser)]
        for text in helps:
            assert not PHASE_NUMBER.search(text), f"ci-tools {name}: {text}"
            for number in re.findall(r"runbook step (\d+)", text):
                assert step(int(number)).command == name, f"ci-tools {name} --help says step {number}"
                mentioned.add(name)
    assert {"init", "github", "preflight", "cutover", "announce", "acceptance", "finish-move"} <= mentioned


def test_every_workflow_that_names_a_step_names_its_own():
    named = 0
    for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        for line in path.read_text().splitlines():
            assert not PHASE_NUMBER.search(line), f"{path.name}: {line.strip()}"
            named_here = re.findall(r"(?:[Rr]unbook|RUNBOOK\.md,) step (\d+)", line)
            # a bare "step 9" is a number nothing holds to the runbook: say "runbook step 9"
            assert len(named_here) == len(re.findall(r"\b[Ss]teps? \d", line)), f"{path.name}: {line.strip()}"
            for number in named_here:
                named += 1
                wanted = step(int(number)).workflow
                if line.lstrip().startswith("#"):  # the file's header: this workflow is that step
                    assert path.stem == wanted, f"{path.name}: {line.strip()}"
                else:  # a summary's "Next (runbook step N): dispatch **workflow**"
                    assert re.findall(r"\*\*([a-z-]+)\*\*", line)[:1] == [wanted], f"{path.name}: {line.strip()}"
    assert named >= 8


def test_nothing_the_owner_reads_counts_phases():
    texts = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / ".env.example", *(ROOT / "docs").glob("*.md")]
    texts += [*(ROOT / "ci_tools").rglob("*.py"), *(ROOT / "sandbox").rglob("*.py")]
    for path in texts:
        found = PHASE_NUMBER.search(path.read_text())
        assert not found, f"{path.relative_to(ROOT)}: {found[0]!r}: say the runbook's step (ci_tools/runbook.py)"


# Mentions of a step by what it does rather than by its name: each must carry the step's own number.
BY_WHAT_IT_DOES = [
    # the memory copy's options and its apply run (migrate-memory)
    (re.compile(r"\bsteps? (\d+)(?:'s)?[ ,(`]*(?:on_conflict|replace|`apply`)"), "memory"),
    (re.compile(r"`apply` run's id from step (\d+)"), "memory"),
    # the one message the daily user notices
    (re.compile(r"message from the old bot, in step (\d+)"), "announce"),
    # preflight before the new bot exists: "step 4 run before step 1"
    (re.compile(r"\bstep (\d+) (?:run )?before step \d+"), "preflight"),
    (re.compile(r"\bstep \d+ (?:run )?before step (\d+)"), ""),
]


def _owner_texts() -> list[Path]:
    texts = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")]
    texts += [*(ROOT / ".github" / "workflows").glob("*.yml")]
    return [*texts, *(ROOT / "ci_tools").rglob("*.py"), *(ROOT / "sandbox").rglob("*.py")]


def test_a_step_named_by_what_it_does_carries_its_number():
    found = 0
    for path in _owner_texts():
        for pattern, command in BY_WHAT_IT_DOES:
            for number in pattern.findall(path.read_text()):
                found += 1
                wanted = command or "@BotFather"
                assert step(int(number)).command == command, f"{path.relative_to(ROOT)}: step {number} is not {wanted}"
    assert found >= 8


def test_a_commands_module_says_its_own_step():
    """``cli/announce.py``'s and ``pipeline/announce.py``'s docstrings say "runbook step 7": the
    step whose command they are."""
    commands = {s.command for s in RUNBOOK if s.command}
    named = 0
    for folder in ("cli", "pipeline"):
        for path in (ROOT / "ci_tools" / folder).glob("*.py"):
            command = path.stem.replace("_", "-")
            if command not in commands:
                continue
            first = (path.read_text().split('"""', 2)[1:2] or [""])[0].split("\n\n", 1)[0]
            for number in re.findall(r"[Rr]unbook step (\d+)", first):
                named += 1
                assert step(int(number)).command == command, f"{path.relative_to(ROOT)}: says runbook step {number}"
    assert named >= 8


def test_adopting_counts_the_rehearsals_steps():
    """docs/ADOPTING.md's "12 of the 17 steps green" and "all 17 green": 17 is the rehearsal's plan
    (the 12 green at base level are held by tests/sandbox/test_rehearsal.py)."""
    total = len(Rehearsal(Path("/nonexistent"), ROOT, process=False, log=lambda line: None).plan())
    text = (ROOT / "docs" / "ADOPTING.md").read_text()
    stated = re.findall(r"of the (\d+) steps green", text) + re.findall(r"all (\d+) green", text)
    assert stated and {int(n) for n in stated} == {total}, stated


def test_commands_md_plan_table_numbers_each_row_by_its_command():
    """docs/COMMANDS.md's "The migration plan, step by step": a row's step numbers are the steps
    of the commands it names (step 1, done by hand, is @BotFather's)."""
    text = (ROOT / "docs" / "COMMANDS.md").read_text()
    table = text.split("## The migration plan, step by step", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([^|]*\d[^|]*) \|(.*)$", table, flags=re.M)
    assert len(rows) >= 9, rows
    for cell, rest in rows:
        if cell.startswith("—"):  # outside the numbered steps ("— (before 9)")
            continue
        for number in map(int, re.findall(r"\d+", cell)):
            wanted = step(number).command
            said = "@BotFather" in rest if not wanted else re.search(rf"\b{re.escape(wanted)}\b", rest)
            assert said, f"docs/COMMANDS.md: step {number} on a row that does not name {wanted or '@BotFather'}"
