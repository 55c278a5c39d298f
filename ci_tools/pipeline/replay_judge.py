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
    # the second visit on each copy, the bot restarted on what its first left (a migration that
    # cannot run twice crashes here): the candidate's compared with the live commit's
    candidate_again: Conversation | None = None
    primary_again: Conversation | None = None
    secondary_again: Conversation | None = None


KeyState = dict[bytes, tuple[str, bool]]  # key → (type, persistent): what a copy holds after a run


def compare_memory(
    primary: KeyState, secondary: KeyState, candidate: KeyState, patterns: tuple[str, ...]
) -> str | None:
    """What the candidate's start and turns did to keys the live commit keeps, in counts by pattern.

    The turns show only what they answer; a migration may delete other users' facts, put an
    expiry on everyone's, or wipe a history no turn reads. A key both live runs keep (persistent,
    of one type) that the candidate's copy lacks, holds with an expiry, or holds as another type
    is a finding. Keys the live runs disagree on are noise; keys only the candidate writes are its
    own business."""
    lost: dict[str, int] = {}
    for key, kept in primary.items():
        if secondary.get(key) != kept or not kept[1]:
            continue
        now = candidate.get(key)
        if now is None:
            what = "deleted"
        elif now[0] != kept[0]:
            what = "changed in type"
        elif not now[1]:
            what = "given an expiry"
        else:
            continue
        label = f"{what} ({_family(key, patterns)})"
        lost[label] = lost.get(label, 0) + 1
    if not lost:
        return None
    listed = ", ".join(f"{count} {label}" for label, count in sorted(lost.items()))
    return f"the candidate's start or turns leave keys the live commit keeps: {listed}"


def _family(key: bytes, patterns: tuple[str, ...]) -> str:
    """Which configured memory pattern ``key`` belongs to (names, never values), else "other keys"."""
    text = key.decode(errors="replace")
    for pattern in patterns:
        before, _, after = pattern.partition("{user_id}")
        if re.search(re.escape(before) + r"\d+" + re.escape(after) + "$", text):
            return pattern
    return "other keys"


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
    masked_diff = " | ".join(line[:1] + letters_masked(line[1:])[:60] for line in diff[:4])
    return f"{counts}; lines changed: {changed_text}; masked diff: {masked_diff}"


def _status(answer: Answer) -> str:
    return "no answer" if answer.status is None else f"HTTP {answer.status}"


def _lines(replies: tuple[str, ...]) -> list[list[str]]:
    return [reply.splitlines() for reply in replies]


def _without(replies: tuple[str, ...], noisy: set[tuple[int, int]]) -> list[list[str]]:
    """The replies' lines, each line the two live runs disagree on replaced alike."""
    return [
        ["…" if (m, n) in noisy else line for n, line in enumerate(lines)] for m, lines in enumerate(_lines(replies))
    ]


class _Turns:
    """The verdict on one user's turns, built turn by turn.

    Noise is found line by line: where the two live runs answer with the same messages and
    lines but some lines differ (a time stamp), only those lines are left out of the comparison;
    the rest of the turn — the facts — is still compared. Where even the shape differs, the turn
    is noise and is not compared (a warning names it)."""

    def __init__(self, ignore: tuple[re.Pattern[str], ...]) -> None:
        self.ignore = ignore
        self.problems: list[str] = []
        self.noisy: set[int] = set()
        self.compared = 0  # turns compared at all: a user whose every turn is noise was not checked

    def _noise(self, a: Answer, b: Answer) -> set[tuple[int, int]] | None:
        """The (message, line) positions the two live runs disagree on; None: not comparable."""
        if not (a.ok and b.ok):
            return None
        one, two = _lines(masked(a.replies, self.ignore)), _lines(masked(b.replies, self.ignore))
        if [len(m) for m in one] != [len(m) for m in two]:
            return None
        return {(m, n) for m, lines in enumerate(one) for n, line in enumerate(lines) if line != two[m][n]}

    def _differs(self, a: Answer, c: Answer, noisy: set[tuple[int, int]]) -> bool:
        return _without(masked(c.replies, self.ignore), noisy) != _without(masked(a.replies, self.ignore), noisy)

    def forward(self, turn: str, index: int, a: Answer, b: Answer, c: Answer) -> None:
        noisy = self._noise(a, b)
        if noisy is None:
            self.noisy.add(index + 1)
            return
        self.compared += 1
        if noisy:
            self.noisy.add(index + 1)
        if not c.ok:
            self.problems.append(f"{turn}: the candidate failed it ({_status(c)})")
        elif a.replies and not c.replies:
            self.problems.append(f"{turn}: the candidate answered nothing where the live commit answered")
        elif self._differs(a, c, noisy):
            self.problems.append(f"{turn}: the candidate answers differently ({shape(a.replies, c.replies)})")

    def rollback(self, turn: str, index: int, a: Answer, b: Answer, d: Answer) -> None:
        noisy = self._noise(a, b)
        if noisy is None:
            self.noisy.add(index + 1)
            return
        if noisy:
            self.noisy.add(index + 1)
        if not d.ok:
            self.problems.append(f"{turn}: {ROLLBACK_UNSAFE} (the live commit failed it: {_status(d)})")
        elif self._differs(a, d, noisy):
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
            if runs.candidate_again is not None and runs.primary_again is not None and runs.secondary_again is not None:
                turns.forward(
                    f"{turn}, second visit",
                    index,
                    runs.primary_again[user, index],
                    runs.secondary_again[user, index],
                    runs.candidate_again[user, index],
                )
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
