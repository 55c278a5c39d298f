"""Everything a command prints goes through here: redacted, human or ``--json``.

Human output uses rich tables on a terminal and plain text elsewhere; ``--json``
prints exactly one JSON document on stdout for machines. Diagnostics go to stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

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
