"""GitHub Actions plumbing: step summary, annotations, outputs and masking.

A ``Runner`` is what the Context knows of the Actions runner (``GITHUB_ACTIONS``, the
output and summary files, the run id). Outside Actions every method is a no-op, so the
same command prints plain text on a laptop and annotates the run in CI. Text is redacted
before it reaches any of these channels: a summary is as public as a log.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ci_tools.redact import redact


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


@dataclass(frozen=True)
class Runner:
    """The Actions runner a command runs on; ``active=False`` on a laptop (every method a no-op)."""

    active: bool = False
    output: Path | None = None  # GITHUB_OUTPUT
    summary: Path | None = None  # GITHUB_STEP_SUMMARY
    run_id: str | None = None  # GITHUB_RUN_ID: what a later dispatch names to find its artifacts
    repository: str | None = None  # GITHUB_REPOSITORY, OWNER/NAME
    server: str = "https://github.com"  # GITHUB_SERVER_URL

    @property
    def run_url(self) -> str | None:
        """The link to this run, for a message that leaves GitHub (the owner's Telegram)."""
        if not (self.run_id and self.repository):
            return None
        return f"{self.server}/{self.repository}/actions/runs/{self.run_id}"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Runner:
        def path(name: str) -> Path | None:
            value = environ.get(name, "").strip()
            return Path(value) if value else None

        return cls(
            active=environ.get("GITHUB_ACTIONS") == "true",
            output=path("GITHUB_OUTPUT"),
            summary=path("GITHUB_STEP_SUMMARY"),
            run_id=environ.get("GITHUB_RUN_ID") or None,
            repository=environ.get("GITHUB_REPOSITORY") or None,
            server=(environ.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/"),
        )

    def annotate(
        self,
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
        if not self.active:
            return
        _command(
            level,
            redact(message),
            {"title": redact(title) if title else None, "file": file, "line": line},
            out or sys.stdout,
        )

    def mask(self, value: str, *, out: TextIO | None = None) -> None:
        """Ask Actions to mask ``value`` in the rest of the log."""
        if self.active and value:
            _command("add-mask", value, {}, out or sys.stdout)

    def _append(self, path: Path | None, text: str) -> bool:
        if not self.active or path is None:
            return False
        with path.open("a", encoding="utf-8") as handle:
            handle.write(text)
        return True

    def set_output(self, name: str, value: str) -> bool:
        """Write a step output; the heredoc form with a random delimiter survives newlines."""
        delimiter = f"ghadelimiter_{uuid.uuid4()}"
        return self._append(self.output, f"{name}<<{delimiter}\n{redact(value)}\n{delimiter}\n")

    def add_summary(self, markdown: str) -> bool:
        """Append Markdown to the job's step summary (redacted)."""
        return self._append(self.summary, redact(markdown).rstrip("\n") + "\n\n")


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
