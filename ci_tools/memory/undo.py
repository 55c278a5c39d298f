"""Undo: put the target back exactly as a backup recorded it, after backing up the present."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from ci_tools import cancel
from ci_tools.context import Context
from ci_tools.errors import InputError, RemoteError, VerificationError
from ci_tools.memory import moved
from ci_tools.memory.files import RecordFile, RecordWriter
from ci_tools.memory.job import Verifier
from ci_tools.memory.model import CONNECTION_ERRORS, stamp
from ci_tools.memory.records import BATCH, Record, batches, difference, read_records, value_digest
from ci_tools.memory.servers import connect, label, marker, server_id
from ci_tools.memory.writer import PARTIAL, Writer, fingerprint


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
    if (kind := file.header.get("kind")) != "backup":
        raise InputError(f"{backup.name} is a {kind}, not a backup", hint="undo takes the backup path a copy printed")
    count, recorded = file.check(), file.header
    url = ctx.secret("TARGET_REDIS_URL", purpose="the Redis to undo on")
    # host:port/db, and (since the base level) server_id, which tells one host's Key Values apart.
    other_user = bool(recorded.get("server_id")) and recorded.get("server_id") != server_id(url)
    if not allow_other_server and (recorded.get("server") != label(url) or other_user):
        also = " under another user (another Key Value behind the same host)" if other_user else ""
        raise InputError(
            f"this backup was taken on {recorded.get('server')}, but TARGET_REDIS_URL is {label(url)}{also}",
            hint="point TARGET_REDIS_URL at the server the copy wrote to, or pass --allow-other-server",
        )
    target = connect(url, "target", timeout=ctx.timeout)
    env, prefix = recorded.get("env"), str(recorded.get("prefix", ""))
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
    header = {k: v for k, v in recorded.items() if k not in ("format", "version", "encrypted", "kind")}
    if moves := "moved_before" in header and isinstance(header.get("user_id"), int):  # an undo of it needs today's
        header["moved_before"] = moved.raw(target, prefix, header["user_id"])
    try:
        # Each key and its guard, both from one atomic read.
        present = {r.key: (r, fingerprint(r.dump)) for r in read_records(target, keys, with_dump=True)}
        with RecordWriter(path, {"kind": "backup", **header, "undoes": backup.name}, fernet) as writer:
            for record, _ in present.values():
                writer.write(record)
        writer_ = Writer(target)
        left = _put_back(writer_, file.records(), present, file.after())
        # A write cut between building a value under its temporary name and renaming it over the key
        # (the cross-version path) left that name behind: only a write makes it, so it goes unguarded.
        for chunk in batches(keys):
            target.delete(*(key + PARTIAL for key in chunk))
        verifier, skipped = Verifier(target), {*left, *writer_.result.changed}
        for pairs in batches((record.key, record) for record in file.records() if record.key not in skipped):
            verifier.batch(pairs)
    except CONNECTION_ERRORS as exc:
        raise RemoteError(
            f"the target stopped answering during undo ({type(exc).__name__})",
            hint=f"rerun the same undo once it is back; the state before this undo is in {path}",
        ) from None
    if mismatches := verifier.mismatches:
        raise VerificationError(
            f"{len(mismatches)} key(s) differ from the backup after undo: {', '.join(mismatches[:5])}",
            hint=f"the state before this undo is in {path}",
        )
    if moves:
        with contextlib.suppress(*CONNECTION_ERRORS):  # the keys are back and verified; the record follows them
            moved.put_back(target, prefix, recorded["user_id"], recorded["moved_before"])
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
        # A cancel a finalizer swallowed stops here (ci_tools/cancel.py): what is put back is put
        # back for good, and the same undo run again puts back the rest.
        cancel.checkpoint()
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
