"""The one checked-item row, and the checklist of them: how every verdict is drawn.

``Item`` is the row of preflight, acceptance and status; the probe's ``Check`` and the
rehearsal's ``Phase`` are Items with what they add (a cause and attempts, a duration), so every
verdict in every table wears the same glyphs: ✓ met, ✗ unmet, ⚠ met but worth a look, · not
checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from ci_tools import output
from ci_tools.actions import Runner
from ci_tools.errors import FatalError, RemoteError, VerificationError

# Seconds a read-only check may retry before it says the service did not answer: one figure for
# preflight, acceptance and status, so each command reaches its verdict in seconds when a service is down.
BUDGET = 6.0


GLYPHS = {True: "✓", False: "✗", None: "·"}
WARNING = "⚠"


@dataclass
class Item:
    name: str
    ok: bool | None  # None: not checked (missing input), counts as unmet
    detail: str = ""
    fix: str = ""
    warning: bool = False  # met, but worth a person's attention (the fix says what to do)
    remote: bool = False  # unmet because a service did not answer: nothing was judged

    @property
    def mark(self) -> str:
        return WARNING if self.warning and self.ok is not False else GLYPHS[self.ok]


def unanswered(name: str, exc: FatalError, fix: str) -> Item:
    """The item for a check whose service did not answer: unmet, and nothing was judged."""
    return Item(name, False, exc.message, fix, remote=True)


TELEGRAM_DOWN = "Telegram did not answer: check TELEGRAM_API_URL and the network"


def report(runner: Runner, title: str, items: list[Item], *, as_json: bool = False) -> None:
    """Report the checklist as one table (each unmet item with its fix), then fail in one short
    line that counts what is unmet and names the services that did not answer."""
    rows = [[i.mark, i.name, i.detail, i.fix if i.ok is not True or i.warning else ""] for i in items]
    unmet = [i for i in items if i.ok is not True]
    # Warnings pass (they are not in the final line), so they are said once more below the table.
    notes = [f"{WARNING} {i.name}: {i.fix}" for i in items if i.warning and i.fix and i.ok is True]
    document = {"title": title, "items": [i.__dict__ for i in items]}
    output.report(runner, output.Report(title, ["", "item", "seen", "fix"], rows, document, notes), as_json=as_json)
    unanswered = [i for i in unmet if i.remote]
    if unanswered:  # a service that did not answer judged nothing: exit 4, not "verification failed"
        raise RemoteError(
            f"{len(unanswered)} of {len(items)} items could not be checked: "
            + short(", ".join(services(unanswered)) + " did not answer"),
            hint=unanswered[0].fix or "check the services' URLs and the network, then run again",
        )
    if unmet:
        said = "; ".join(f"{i.name}: {i.fix or i.detail}" for i in unmet)
        raise VerificationError(f"{len(unmet)} of {len(items)} items unmet: {short(said)}")


SERVICES = ("Telegram", "Render", "GitHub", "Redis", "healthz")


def services(items: list[Item]) -> list[str]:
    """The outside services these items waited for, named once each (the table has the rest)."""
    named = [s for s in SERVICES if any(s in i.detail for i in items)]
    return [("the bot's /healthz" if s == "healthz" else s) for s in named] or [i.name for i in items]


def short(text: str, limit: int = 200) -> str:
    """One final line stays readable: the table above already lists every item."""
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + " …"
