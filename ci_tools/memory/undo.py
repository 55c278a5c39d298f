"""Undo: put the target back exactly as a backup recorded it, after backing up the present."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import redis

from ci_tools.context import Context
from ci_tools.errors import InputError, RemoteError, VerificationError
from ci_tools.memory import moved
from ci_tools.memory.files import RecordFile, RecordWriter
from ci_tools.memory.model import CONNECTION_ERRORS, stamp
from ci_tools.memory.records import BATCH, Record, difference, read_by_key, value_digest
from ci_tools.memory.servers import connect, label, marker, server_id
from ci_tools.memory.writer import Writer, guarded_records


def undo_backup(
    ctx: Context, backup: Path, out_dir: Path, *, allow_other_server: bool = False, apply: bool = True
) -> tuple[Path | None, int, list[bytes]]:
    """Put every key of a backup back as it was (absent keys deleted), after backing up the present.

    Only a key that still holds what the write put there is put back, and only if still so when
    written (the guard): a key the user changed since is left alone and returned, so an undo never
    overwrites what was said after the write. Without ``apply``, the file and server are only checked.
    """
    fernet = ctx.snapshot_fernet()
    file = RecordFile(backup, fernet)
    if file.header.get("kind") != "backup":
        raise InputError(
            f"{backup.name} is a {file.header.get('kind')}, not a backup",
            hint="undo takes the backup path a copy printed",
        )
    count = file.check()
    url = ctx.secret("TARGET_REDIS_URL", purpose="the Redis to undo on")
    # host:port/db, and (since the base level) server_id, which tells one host's Key Values apart.
    recorded = file.header.get("server_id")
    other_user = bool(recorded) and recorded != server_id(url)
    if not allow_other_server and (file.header.get("server") != label(url) or other_user):
        also = " under another user (another Key Value behind the same host)" if other_user else ""
        raise InputError(
            f"this backup was taken on {file.header.get('server')}, but TARGET_REDIS_URL is {label(url)}{also}",
            hint="point TARGET_REDIS_URL at the server the copy wrote to, or pass --allow-other-server",
        )
    target = connect(url, "target", timeout=ctx.timeout)
    env, prefix = file.header.get("env"), str(file.header.get("prefix", ""))
    claimed = marker(target, prefix.encode())
    if env and claimed is not None and claimed != env:
        raise InputError(
            f"{backup.name} is a backup of {env} ({prefix or 'no prefix'}), but that Redis is marked {claimed}",
            hint=f"point TARGET_REDIS_URL at {env}'s Redis",
        )
    if not apply:
        return None, count, []
    keys = [r.key for r in file.records()]
    path = out_dir / f"undo-backup-{stamp()}.jsonl"
    header = {k: v for k, v in file.header.items() if k not in ("format", "version", "encrypted", "kind")}
    if "moved_before" in header and isinstance(header.get("user_id"), int):  # an undo of this undo needs today's
        header["moved_before"] = moved.raw(target, prefix, header["user_id"])
    try:
        present = guarded_records(target, keys)
        with RecordWriter(path, {"kind": "backup", **header, "undoes": backup.name}, fernet) as writer:
            for record, _ in present.values():
                writer.write(record)
        writer_ = Writer(target)
        left = _put_back(writer_, file.records(), present, file.after())
        mismatches = _verify_exact(target, file.records(), set(left) | set(writer_.result.changed))
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
    if "moved_before" in file.header and isinstance(file.header.get("user_id"), int):
        with contextlib.suppress(*CONNECTION_ERRORS):  # the keys are back and verified; the record follows them
            moved.put_back(target, prefix, file.header["user_id"], file.header["moved_before"])
    return path, count, [*left, *writer_.result.changed]


def _put_back(
    writer: Writer, records: Iterator[Record], present: dict[bytes, tuple[Record, str]], after: dict[bytes, str]
) -> list[bytes]:
    """Write the backup's records over keys that still hold what the write left; the rest stay."""
    batch: list[tuple[bytes, Record, str]] = []
    deletes: list[tuple[bytes, str]] = []
    left: list[bytes] = []
    for record in records:
        current, guard = present[record.key]
        if _changed_since_write(record, current, after.get(record.key)):
            left.append(record.key)
        elif not record.exists:
            if current.exists:
                deletes.append((record.key, guard))
        else:
            batch.append((record.key, record, guard))
    for start in range(0, max(len(batch), len(deletes)), BATCH):  # `present` holds them all already
        writer.write_batch(batch[start : start + BATCH])
        writer.delete(deletes[start : start + BATCH])
    # A backed-up key whose TTL ran out since would be gone by now anyway.
    writer.delete([(key, present[key][1]) for key in writer.result.expired])
    return left


def _changed_since_write(backed_up: Record, current: Record, wrote: str | None) -> bool:
    """Does the key hold something other than what the write put there (the user's since)?"""
    if wrote is None:  # a backup without digests: the guard alone decides
        return False
    if not current.exists:
        return backed_up.exists  # absent before and now: nothing to undo; else someone deleted it
    if value_digest(current) == wrote:
        return False
    return difference(backed_up, current) is not None  # already as backed up: nothing changes


def _verify_exact(target: redis.Redis, records: Iterator[Record], left: set[bytes]) -> list[str]:
    mismatches = []
    expected_all = [record for record in records if record.key not in left]
    for start in range(0, len(expected_all), BATCH):
        chunk = expected_all[start : start + BATCH]
        found = read_by_key(target, [r.key for r in chunk])
        for expected in chunk:
            actual, remaining = found[expected.key], expected.remaining_ms()
            if not expected.exists or (remaining is not None and remaining <= 0):
                reason = "should be absent" if actual.exists else None
            else:
                reason = difference(expected, actual)
            if reason:
                mismatches.append(f"{expected.key.decode(errors='replace')} ({reason})")
    return mismatches
