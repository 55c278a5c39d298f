"""A bot's log, read from its end: what a failed build or start is reported with."""

from __future__ import annotations

from pathlib import Path

TAIL = 20  # lines a failure carries
READ = 64 * 1024  # bytes read from the end: a log may be large, its end is what counts


def last_lines(path: Path, count: int = TAIL) -> tuple[str, ...]:
    """The last ``count`` non-empty lines of ``path`` (none if it is missing)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - READ))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ()
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    return tuple(lines[-count:])
