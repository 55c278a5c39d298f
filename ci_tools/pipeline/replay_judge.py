"""The replay's verdict: what is compared with what, and how a difference is told without words.

Diffy's rule, applied to memory as well as answers. Every run starts its bot on a fresh copy
of the snapshot (its start-up writes are part of what it did) and replays the same turns:

- **primary** and **secondary**: the live commit, twice, each on its own copy. Where they agree,
  a turn is deterministic; where they do not, it is noise and is not compared (a warning names it).
- **candidate**: the new commit on its own copy. Compared with the primary where the live
  commit agrees with itself: it must not fail, fall silent or answer differently.
- **rollback direction**: on each copy the live commit is then started again and replays the
  same turns — on the primary's and the secondary's copies after *itself*, on the candidate's
  copy after the candidate. The live commit after the candidate is compared with the live
  commit after the primary, where the two "after itself" runs agree. A turn that writes the
  same way in both releases (``/start`` recording ``first_seen``) is no difference; a candidate
  whose start or turns leave memory the live commit reads differently is: a rollback would
  land on it.

Nothing of the user's memory or the replies is printed: a finding names the user, the turn and
the answers' shape (counts, changed line numbers, a diff with every letter and digit masked).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from ci_tools.checklist import Item
from ci_tools.settings import Replay

ROLLBACK_UNSAFE = "this release writes memory the previous one cannot read — a rollback would not be safe"


@dataclass(frozen=True)
class Answer:
    """One turn as one bot answered it: the webhook's status (None: no answer) and the replies."""

    status: int | None
    replies: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


Conversation = dict[tuple[int, int], Answer]  # (user, turn index) → answer


@dataclass(frozen=True)
class Runs:
    """Every conversation one replay produced; ``None`` where there was no live commit to run."""

    candidate: Conversation
    primary: Conversation | None = None
    secondary: Conversation | None = None
    after_candidate: Conversation | None = None  # the live commit, restarted on the candidate's copy
    after_primary: Conversation | None = None  # the live commit, restarted on its own first copy
    after_secondary: Conversation | None = None


@dataclass
class Outcome:
    items: list[Item] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)  # why the release stops, one line each (no memory)


def masked(replies: tuple[str, ...], ignore: tuple[re.Pattern[str], ...]) -> tuple[str, ...]:
    """The replies with every configured noise pattern (timestamps, ids) replaced alike."""
    out = []
    for reply in replies:
        for pattern in ignore:
            reply = pattern.sub("…", reply)
        out.append(reply)
    return tuple(out)


def letters_masked(line: str) -> str:
    """``line`` with every character but spaces an ``x``: its shape, none of its words (nor the
    emoji and punctuation a fact may carry)."""
    return re.sub(r"\S", "x", line)


def shape(expected: tuple[str, ...], got: tuple[str, ...]) -> str:
    """How two answers differ, without their words: counts, the lines that changed, a masked diff."""
    before, after = "\n".join(expected).splitlines(), "\n".join(got).splitlines()
    counts = (
        f"live {len(expected)} message(s), {len(before)} line(s), {sum(map(len, expected))} chars; "
        f"candidate {len(got)} message(s), {len(after)} line(s), {sum(map(len, got))} chars"
    )
    diff = [
        line
        for line in difflib.unified_diff(before, after, lineterm="", n=0)
        if not line.startswith(("---", "+++", "@@"))
    ]
    changed = sorted({i + 1 for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b})
    changed_text = ", ".join(map(str, changed[:8])) or "none of the common ones"
    masked_diff = " | ".join(letters_masked(line)[:60] for line in diff[:4])
    return f"{counts}; lines changed: {changed_text}; masked diff: {masked_diff}"


def _status(answer: Answer) -> str:
    return "no answer" if answer.status is None else f"HTTP {answer.status}"


class _Turns:
    """The verdict on one user's turns, built turn by turn."""

    def __init__(self, ignore: tuple[re.Pattern[str], ...]) -> None:
        self.ignore = ignore
        self.problems: list[str] = []
        self.noisy: set[int] = set()

    def same(self, a: Answer, b: Answer) -> bool:
        return a.ok and b.ok and masked(a.replies, self.ignore) == masked(b.replies, self.ignore)

    def forward(self, turn: str, index: int, a: Answer, b: Answer, c: Answer) -> None:
        if not self.same(a, b):
            self.noisy.add(index + 1)
            return
        if a.replies and not c.replies:
            self.problems.append(f"{turn}: the candidate answered nothing where the live commit answered")
        elif masked(c.replies, self.ignore) != masked(a.replies, self.ignore):
            self.problems.append(f"{turn}: the candidate answers differently ({shape(a.replies, c.replies)})")

    def rollback(self, turn: str, index: int, a: Answer, b: Answer, d: Answer) -> None:
        if not self.same(a, b):
            self.noisy.add(index + 1)
            return
        if not d.ok:
            self.problems.append(f"{turn}: {ROLLBACK_UNSAFE} (the live commit failed it: {_status(d)})")
        elif masked(d.replies, self.ignore) != masked(a.replies, self.ignore):
            self.problems.append(f"{turn}: {ROLLBACK_UNSAFE} ({shape(a.replies, d.replies)})")


def judge(replay: Replay, users: list[int], runs: Runs) -> Outcome:
    """The verdict per user and turn (the module's docstring states the rule)."""
    ignore = tuple(re.compile(p) for p in replay.ignore)
    outcome = Outcome()
    for user in users:
        turns = _Turns(ignore)
        for index, text in enumerate(replay.turns):
            turn = f"turn {index + 1} ({text.split()[0]})"
            c = runs.candidate[user, index]
            if not c.ok:
                turns.problems.append(f"{turn}: the candidate failed it ({_status(c)})")
                continue
            if runs.primary is None or runs.secondary is None:  # the first release: it must answer
                if not c.replies:
                    turns.problems.append(f"{turn}: the candidate answered nothing")
                continue
            turns.forward(turn, index, runs.primary[user, index], runs.secondary[user, index], c)
            if runs.after_candidate is not None and runs.after_primary is not None and runs.after_secondary is not None:
                turns.rollback(
                    turn,
                    index,
                    runs.after_primary[user, index],
                    runs.after_secondary[user, index],
                    runs.after_candidate[user, index],
                )
        outcome.items.append(_item(user, turns, replay, first=runs.primary is None))
        outcome.stops.extend(f"user {user}, {p}" for p in turns.problems)
    return outcome


def _item(user: int, turns: _Turns, replay: Replay, *, first: bool) -> Item:
    name = f"user {user}"
    if turns.problems:
        return Item(name, False, "; ".join(turns.problems), "fix forward on develop; nothing was deployed")
    if turns.noisy:
        listed = ", ".join(map(str, sorted(turns.noisy)))
        return Item(
            name,
            True,
            f"turn(s) {listed}: the live commit answers differently each time, so they were not compared",
            "add a pattern to [tool.ci_tools.replay] ignore for what changes between runs",
            warning=True,
        )
    what = "every one (no live release to compare with)" if first else "as the live commit does, before and after"
    return Item(name, True, f"{len(replay.turns)} turn(s) answered {what}")
