"""A checklist of ✓ / ✗ items, each ✗ with its fix: how preflight and acceptance report."""

from __future__ import annotations

from dataclasses import dataclass

from ci_tools import github
from ci_tools.errors import VerificationError
from ci_tools.output import emit_json, say, table


@dataclass
class Item:
    name: str
    ok: bool | None  # None: not checked (missing input), counts as unmet
    detail: str = ""
    fix: str = ""

    @property
    def mark(self) -> str:
        return {True: "✓", False: "✗", None: "?"}[self.ok]


def report(title: str, items: list[Item], *, as_json: bool = False) -> None:
    """Print the checklist; exit non-zero naming every unmet item and its fix."""
    rows = [[i.mark, i.name, i.detail, i.fix if i.ok is not True else ""] for i in items]
    github.add_summary(
        f"### {title}\n\n" + github.markdown_table(["", "item", "seen", "fix"], rows)
    )
    if as_json:
        emit_json({"title": title, "items": [i.__dict__ for i in items]})
    else:
        table(title, ["", "item", "seen", "fix"], rows)
        for item in items:
            if item.ok is not True and item.fix:
                say(f"{item.mark} {item.name}: {item.fix}")
    unmet = [i for i in items if i.ok is not True]
    if unmet:
        raise VerificationError(
            f"{len(unmet)} of {len(items)} items unmet: "
            + "; ".join(f"{i.name} ({i.fix or i.detail})" for i in unmet)
        )
