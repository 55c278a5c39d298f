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


def test_every_help_that_names_a_step_names_its_own():
    (subparsers,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    mentioned = set()
    for name, parser in subparsers.choices.items():
        helps = [COMMANDS[name], *(a.help or "" for a in parser._actions)]
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
            for number in re.findall(r"[Rr]unbook step (\d+)", line):
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
