"""Snapshots and backups on disk: portable JSON lines, mode 0600, each line a Fernet token when
``MEMORY_SNAPSHOT_KEY`` is set (they hold a person's memory).

Files that cannot lie: a header says what the file is; the footer, with the record count, is written
only by ``close(complete=True)`` after the last record, so a file cut short (a ``with`` block left on an
exception) is refused, never half-applied. A reader given a key refuses a file with any line in the
clear: whoever can put a file in front of a restore must not be able to write the user's memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from ci_tools.errors import ConfigError, InputError, VerificationError
from ci_tools.memory.model import Action, PlanItem
from ci_tools.memory.records import Record, b64, batches, from_b64, from_json, to_json

FORMAT = "mindmate-memory"
VERSION = 1
KEY_ENV = "MEMORY_SNAPSHOT_KEY"
OURS = "restore only from the encrypted snapshots and backups the workflows keep"
ANOTHER = "use another snapshot or backup (an earlier run's), or take the snapshot again"


class RecordWriter:
    """Append records to a new file; ``close(complete=True)`` writes the footer that marks it complete."""

    def __init__(self, path: Path, header: dict[str, Any], fernet: Fernet | None) -> None:
        self.path, self.fernet, self.count = path, fernet, 0
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        # Last, so a header copied from the file a restore reads cannot make this one say otherwise.
        self._line({**header, "format": FORMAT, "version": VERSION, "encrypted": fernet is not None})

    def _line(self, document: dict[str, Any]) -> None:
        data = orjson.dumps(document)
        self._file.write((self.fernet.encrypt(data) if self.fernet else data) + b"\n")

    def write(self, record: Record) -> None:
        self._line(to_json(record))
        self.count += 1

    def write_rows(self, name: str, rows: Iterable[list[Any]]) -> None:
        """Rows beside the records, a line a thousand, not counted: ``after`` (what the write puts in
        each key, ``records.value_digest``) and ``plan`` (what a later ``--stage write`` follows)."""
        for batch in batches(rows):
            self._line({name: batch})

    def close(self, *, complete: bool) -> None:
        """``complete``: the footer, after the last record, so only now does the file say it is complete;
        else what was written is kept without one, and readers refuse it as incomplete."""
        if complete:
            self._line({"end": True, "records": self.count})
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self.close(complete=kind is None)


def plan_row(i: PlanItem) -> list[Any]:
    """One key's plan as a backup's ``plan`` line holds it: its action and guard, for ``--stage write``."""
    return [b64(i.source_key), b64(i.target_key), i.type, i.size, i.ttl_ms, str(i.action), i.reason, i.guard]


class RecordFile:
    """Read a snapshot or backup: the header first, then records, then the footer is checked."""

    def __init__(self, path: Path, fernet: Fernet | None) -> None:
        self.path, self.fernet = path, fernet
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            raise InputError(f"{path} {what}", hint="pass the path of the snapshot or backup file the copy printed")
        with path.open("rb") as handle:
            self.header = self._decode(handle.readline(), 1)
        if self.header.get("format") != FORMAT:
            raise InputError(f"{path} is not a memory snapshot or backup")

    def check(self) -> int:
        """Read the whole file once: every line decodes and the footer is there (else exit 5)."""
        return sum(1 for _ in self.records())

    def _documents(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Each line after the header, decoded, with its number."""
        with self.path.open("rb") as handle:
            handle.readline()
            for number, raw in enumerate(handle, start=2):
                yield number, self._decode(raw, number)

    def _rows(self, name: str) -> Iterator[Any]:
        """The rows of every ``name`` line (``plan``, ``after``): what a backup holds beside records."""
        return (row for _, document in self._documents() for row in document.get(name, ()))

    def plan(self) -> list[PlanItem]:
        """The plan a backup written by ``--stage plan`` carries (``plan_row``)."""
        return [
            PlanItem(from_b64(source), from_b64(target), type_, size, ttl, Action(action), reason, guard)
            for source, target, type_, size, ttl, action, reason, guard in self._rows("plan")
        ]

    def after(self) -> dict[bytes, str]:
        """The digests a backup recorded of what its write put in each key."""
        return {from_b64(key): str(digest) for key, digest in self._rows("after")}

    def _decode(self, raw: bytes, number: int) -> dict[str, Any]:
        raw, line = raw.strip(), f"{self.path.name} line {number}"
        if raw.startswith(b"{") and self.fernet is not None:
            raise VerificationError(
                f"{line} is not encrypted, though {KEY_ENV} is set: "
                "the file was not written by this pipeline, so nothing is read from it",
                hint=OURS,
            )
        if not raw.startswith(b"{"):
            if not raw.startswith(b"gAAAA"):  # a Fernet token's base64 (version 0x80): neither JSON nor ours
                raise InputError(
                    f"{line} is neither a memory snapshot's JSON nor an encrypted line",
                    hint="pass a snapshot or backup file a copy or snapshot wrote",
                )
            if self.fernet is None:
                raise ConfigError(
                    f"{self.path.name} is encrypted", hint=f"set {KEY_ENV} to the key it was written with"
                )
            try:
                raw = self.fernet.decrypt(raw)
            except InvalidToken:
                if number > 1:  # the header opened with this key: the line is cut or damaged, not the key wrong
                    raise VerificationError(
                        f"{line} cannot be decrypted though its header can: the file was "
                        "cut short or damaged, so nothing was written from it",
                        hint=ANOTHER,
                    ) from None
                raise ConfigError(
                    f"{self.path.name} cannot be decrypted with this {KEY_ENV}", hint="use the key it was written with"
                ) from None
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InputError(f"{line} is not valid JSON: the file was cut short or damaged", hint=ANOTHER) from None
        if not isinstance(document, dict):
            raise InputError(f"{line} is not a JSON object")
        return document

    def records(self) -> Iterator[Record]:
        count, complete = 0, False
        for number, document in self._documents():
            if document.get("end"):
                complete = document.get("records") == count
                break
            if "absent" in document:  # ci-tools before 2026-12 wrote absent keys so
                count += len(document["absent"])
                yield from (Record(from_b64(key), "none") for key in document["absent"])
            elif "part" in document:  # ci-tools before 2026-12 wrote keys over 10,000 elements in parts
                raise InputError(
                    f"{self.path.name} line {number} holds a key written in parts by a ci-tools from before "
                    "2026-12, which this one no longer reads; nothing was written from it",
                    hint="use a snapshot or backup taken since (each key whole), or the ci-tools release "
                    "that wrote this file",
                )
            elif "after" not in document and "plan" not in document:
                try:
                    record = from_json(document)
                except (KeyError, ValueError, TypeError) as exc:
                    raise InputError(f"{self.path.name} line {number} is malformed: {exc}") from None
                count += 1
                yield record
        if not complete:
            raise VerificationError(
                f"{self.path.name} is incomplete: no footer after {count} records, so it was cut short "
                "and nothing was written from it",
                hint=ANOTHER,
            )
