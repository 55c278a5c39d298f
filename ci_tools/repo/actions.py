"""GitHub Actions plumbing: step summary, annotations, outputs and masking.

Every function is a no-op outside Actions (``GITHUB_ACTIONS != "true"``), so the
same command prints plain text on a laptop and annotates the run in CI. Text is
redacted before it reaches any of these channels: a summary is as public as a log.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import TextIO

from ci_tools.redact import redact


def in_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def run_id() -> str | None:
    """This workflow run's id (what a later dispatch names to find its artifacts)."""
    return os.environ.get("GITHUB_RUN_ID") or None


def escape_data(value: str) -> str:
    """Escape a workflow command's message, as @actions/core does."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """Escape a workflow command's property value, as @actions/core does."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def _command(name: str, message: str, properties: dict[str, str | int | None], out: TextIO) -> None:
    props = ",".join(f"{key}={escape_property(str(value))}" for key, value in properties.items() if value is not None)
    out.write(f"::{name}{' ' + props if props else ''}::{escape_data(message)}\n")
    out.flush()


def annotate(
    level: str,
    message: str,
    *,
    title: str | None = None,
    file: str | None = None,
    line: int | None = None,
    out: TextIO | None = None,
) -> None:
    """An ``error``, ``warning`` or ``notice`` annotation on the run (redacted)."""
    if level not in {"error", "warning", "notice"}:
        raise ValueError(f"unknown annotation level {level!r}")
    if not in_actions():
        return
    _command(
        level,
        redact(message),
        {"title": redact(title) if title else None, "file": file, "line": line},
        out or sys.stdout,
    )


def mask(value: str, *, out: TextIO | None = None) -> None:
    """Ask Actions to mask ``value`` in the rest of the log."""
    if in_actions() and value:
        _command("add-mask", value, {}, out or sys.stdout)


def _append(variable: str, text: str) -> bool:
    path = os.environ.get(variable)
    if not in_actions() or not path:
        return False
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
    return True


def set_output(name: str, value: str) -> bool:
    """Write a step output; the heredoc form with a random delimiter survives newlines."""
    delimiter = f"ghadelimiter_{uuid.uuid4()}"
    value = redact(value)
    return _append("GITHUB_OUTPUT", f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def add_summary(markdown: str) -> bool:
    """Append Markdown to the job's step summary (redacted)."""
    return _append("GITHUB_STEP_SUMMARY", redact(markdown).rstrip("\n") + "\n\n")


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
