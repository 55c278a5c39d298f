"""Everything a command prints goes through here: redacted, human or ``--json``.

Human output uses rich tables on a terminal and plain text elsewhere; ``--json``
prints exactly one JSON document on stdout for machines. Diagnostics go to stderr.
``report()`` is how every command reports a result: the step summary in Actions and
a table or JSON document, in one call.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from ci_tools.actions import Runner, markdown_table
from ci_tools.redact import redact


def console(stderr: bool = False) -> Console:
    # Created per call so that tests capturing sys.stdout see the output.
    stream = sys.stderr if stderr else sys.stdout
    return Console(
        file=stream,
        highlight=False,
        soft_wrap=True,
        emoji=False,
        width=None if stream.isatty() else 140,  # logs are wide; don't wrap tables at 80
    )


def say(message: str = "", *, err: bool = False) -> None:
    """One line of human output, redacted."""
    print(redact(message), file=sys.stderr if err else sys.stdout, flush=True)


def emit_json(document: Any) -> None:
    print(redact(json.dumps(document, indent=2, sort_keys=True, default=str)), flush=True)


def table(title: str, headers: list[str], rows: list[list[Any]]) -> None:
    grid = Table(title=redact(title), title_justify="left", show_lines=False)
    for header in headers:
        grid.add_column(header, overflow="fold")
    for row in rows:
        grid.add_row(*(redact(str(cell)) for cell in row))
    console().print(grid)


@dataclass
class Report:
    """What a command reports: one title, one table, optional notes, and its --json document."""

    title: str
    headers: list[str]
    rows: list[list[Any]]
    document: Any = None  # --json prints this (default: the rows keyed by the headers)
    notes: list[str] = field(default_factory=list)  # lines after the table, on both channels
    shown: int = 50  # rows printed on a terminal; --json and the summary list more


def report(runner: Runner, result: Report, *, as_json: bool = False) -> None:
    """The one way a command reports: step summary (in Actions), then a table or JSON."""
    notes = "".join(f"\n\n{note}" for note in result.notes)
    runner.add_summary(
        f"### {result.title}\n\n"
        + markdown_table(result.headers, [[str(c) for c in r] for r in result.rows[:200]])
        + notes
    )
    if as_json:
        document = result.document
        if document is None:
            document = {
                "title": result.title,
                "rows": [dict(zip(result.headers, r, strict=True)) for r in result.rows],
            }
        emit_json(document)
        return
    table(result.title, result.headers, result.rows[: result.shown])
    if len(result.rows) > result.shown:
        say(f"… and {len(result.rows) - result.shown} more (--json lists all)")
    for note in result.notes:
        say(note)
