"""Undo: put the target back exactly as a backup recorded it, after backing up the present."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import redis

from ci_tools.context import Context
from ci_tools.errors import InputError, RemoteError, VerificationError
from ci_tools.memory.compare import difference
from ci_tools.memory.files import RecordFile, RecordWriter
from ci_tools.memory.model import CONNECTION_ERRORS, group_parts, stamp
from ci_tools.memory.ops import validate_file
from ci_tools.memory.records import BATCH, Record, read_records
from ci_tools.memory.sides import connect, label
from ci_tools.memory.writer import Writer


def undo_backup(
    ctx: Context, backup: Path, out_dir: Path, *, allow_other_server: bool = False, apply: bool = True
) -> tuple[Path | None, int]:
    """Put every key of a backup back as it was (absent keys deleted), after backing up the present.

    Without ``apply``, a dry run: the file and the server are checked, nothing is written.
    """
    fernet = ctx.snapshot_fernet()
    file = RecordFile(backup, fernet)
    if file.header.get("kind") != "backup":
        raise InputError(
            f"{backup.name} is a {file.header.get('kind')}, not a backup",
            hint="undo takes the backup path a copy printed",
        )
    count = validate_file(file)
    url = ctx.secret("TARGET_REDIS_URL", purpose="the Redis to undo on")
    if not allow_other_server and file.header.get("server") != label(url):
        raise InputError(
            f"this backup was taken on {file.header.get('server')}, but TARGET_REDIS_URL is {label(url)}",
            hint="point TARGET_REDIS_URL at the server the copy wrote to, or pass --allow-other-server",
        )
    target = connect(url, "target", timeout=ctx.timeout)
    if not apply:
        return None, count
    keys = [r.key for r in file.records() if r.part == 0]
    path = out_dir / f"undo-backup-{stamp()}.jsonl"
    header = {k: v for k, v in file.header.items() if k not in ("format", "version", "encrypted", "kind")}
    with RecordWriter(path, {"kind": "backup", **header, "undoes": backup.name}, fernet) as writer:
        for record in read_records(target, keys, with_dump=True):
            writer.write(record)
    try:
        _put_back(target, file.records())
        mismatches = _verify_exact(target, file.records())
    except CONNECTION_ERRORS as exc:
        raise RemoteError(
            f"the target stopped answering during undo ({type(exc).__name__})",
            hint=f"rerun the same undo once it is back; the state before this undo is in {path}",
        ) from None
    if mismatches:
        raise VerificationError(
            f"{len(mismatches)} key(s) differ from the backup after undo: {', '.join(mismatches[:5])}",
            hint=f"the state before this undo is in {path}",
        )
    return path, count


def _put_back(target: redis.Redis, records: Iterator[Record]) -> None:
    writer = Writer(target, replace=True)
    batch: list[tuple[bytes, Record]] = []
    deletes: list[bytes] = []
    for record in records:
        if not record.exists:
            deletes.append(record.key)
        elif record.final and record.part == 0:
            batch.append((record.key, record))
            if len(batch) >= BATCH:
                writer.write_batch(batch)
                batch = []
        else:
            writer.write_part(record.key, record)  # built aside, renamed over the key at the end
        if len(deletes) >= BATCH:
            target.delete(*deletes)
            deletes = []
    if batch:
        writer.write_batch(batch)
    if deletes:
        target.delete(*deletes)
    # A backed-up key whose TTL ran out since would be gone by now anyway.
    if writer.result.expired:
        target.delete(*writer.result.expired)


def _verify_exact(target: redis.Redis, records: Iterator[Record]) -> list[str]:
    mismatches = []
    expected_small: list[Record] = []
    for record in records:
        if record.final and record.part == 0:
            expected_small.append(record)
    for start in range(0, len(expected_small), BATCH):
        chunk = expected_small[start : start + BATCH]
        found = group_parts(read_records(target, [r.key for r in chunk]))
        for expected in chunk:
            actual = found[expected.key][0]
            remaining = expected.remaining_ms()
            if not expected.exists or (remaining is not None and remaining <= 0):
                if actual.exists:
                    mismatches.append(f"{expected.key.decode(errors='replace')} (should be absent)")
            elif reason := difference(expected, actual):
                mismatches.append(f"{expected.key.decode(errors='replace')} ({reason})")
    return mismatches


# -- seed: the plan's option A ----------------------------------------------------
