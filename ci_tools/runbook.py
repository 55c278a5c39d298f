"""The owner's runbook, numbered once: README's table, ``--help``, the rehearsal and the workflows'
step summaries all say "step N" from this tuple, and tests/repo/test_runbook_numbering.py holds
each of them to it. Anything that is not a numbered step (the seed, the way back) says so in words.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    number: int
    title: str  # what the rehearsal prints after "step N: "
    command: str  # the ci-tools subcommand that does it ("" for a step done by hand)
    workflow: str  # the workflow the owner dispatches for it ("" when none)

    def label(self) -> str:
        return f"step {self.number}: {self.title}"


RUNBOOK: tuple[Step, ...] = (
    Step(1, "a new production bot in @BotFather", "", ""),
    Step(2, "init writes the config and .env", "init", ""),
    Step(3, "GitHub set up and checked", "github", ""),
    Step(4, "preflight", "preflight", "preflight"),
    Step(5, "cutover", "cutover", "cutover"),
    Step(6, "memory copy", "memory", "migrate-memory"),
    Step(7, "announce the move", "announce", "announce"),
    Step(8, "acceptance", "acceptance", "acceptance"),
    Step(9, "finish the move", "finish-move", "finish-move"),
)


def step(number: int) -> Step:
    """The runbook's step ``number`` (KeyError for a number the runbook does not have)."""
    for found in RUNBOOK:
        if found.number == number:
            return found
    raise KeyError(number)
