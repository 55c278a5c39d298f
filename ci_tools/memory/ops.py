"""The memory commands' use cases: copy (and diff, its dry run), export, restore and seed one user's
memory, and undo: put the target back exactly as a backup recorded it, after backing up the present."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from ci_tools import cancel
from ci_tools.context import Context
from ci_tools.errors import InputError, RemoteError, VerificationError
from ci_tools.memory import moved
from ci_tools.memory.files import RecordFile, RecordWriter
from ci_tools.memory.job import JobOptions, MemoryJob, Verifier
from ci_tools.memory.keys import KeySpace, discover, uncovered
from ci_tools.memory.model import CONNECTION_ERRORS, Action, Outcome, Uncovered, stamp, target_header
from ci_tools.memory.records import Record, batches, difference, now_ms, read_records, value_digest
from ci_tools.memory.servers import check_marker, connect, identity, label, marker, open_side, server_id
from ci_tools.memory.writer import PARTIAL, Writer, fingerprint
from ci_tools.settings import Config, Environment


@dataclass(kw_only=True)
class Writing(JobOptions):
    """A write into one environment's Redis: where, under which policy, and whether for real."""

    target_env: Environment
    target_prefix: str
    ignore_markers: bool = False

    def backup_header(self, ctx: Context, user_id: Any) -> dict[str, Any]:
        url = ctx.secret("TARGET_REDIS_URL")
        return target_header(user_id, self.target_env.name, self.target_prefix, label(url), server_id(url))

    def open_target(self, ctx: Context, purpose: str) -> redis.Redis:
        env = None if self.ignore_markers else self.target_env
        return open_side(ctx, "target", purpose, env, self.target_prefix)


@dataclass(kw_only=True)
class CopyRequest(Writing):
    """One user's keys from a source environment's Redis into the target's."""

    user_id: int
    source_env: Environment
    source_prefix: str
    patterns: tuple[str, ...]
    legacy_source: bool = False  # the source bot never wrote a marker (accepted when told)
    legacy_target: bool = False  # the same for the target (send-back: the old bot's Redis; --unmarked-target)
    uncovered: Uncovered = Uncovered.REFUSE  # keys naming the user that no pattern covers


def between(config: Config, user_id: int, source: str, target: str, out_dir: Path, **changes: Any) -> CopyRequest:
    """``user_id``'s memory from environment ``source`` to ``target``, a dry run under the fail
    policy with each side's configured prefix and the source's patterns; ``changes`` override."""
    source_env, target_env = config.env(source), config.env(target)
    defaults: dict[str, Any] = dict(source_prefix=source_env.key_prefix, target_prefix=target_env.key_prefix)
    defaults |= dict(patterns=source_env.memory_patterns, source_env=source_env, target_env=target_env)
    return CopyRequest(user_id=user_id, out_dir=out_dir, **defaults | changes)


def _sides(ctx: Context, request: CopyRequest) -> tuple[redis.Redis, redis.Redis]:
    """Both servers; "the target is the source" is refused before any marker is read."""
    source = open_side(ctx, "source", "the Redis to copy from")
    target = open_side(ctx, "target", "the Redis to copy to")
    if identity(source) == identity(target) and request.source_prefix == request.target_prefix:
        raise InputError(
            "the target is the source (same server, same database, same key prefix)",
            hint="set TARGET_REDIS_URL to the other environment's Redis",
        )
    if not request.ignore_markers:
        flag, source_env, target_env = "--ignore-env-markers", request.source_env.name, request.target_env.name
        check_marker(source, request.source_prefix.encode(), source_env, "source", flag, legacy=request.legacy_source)
        target_prefix, legacy = request.target_prefix.encode(), request.legacy_target
        check_marker(target, target_prefix, target_env, "target", flag, legacy=legacy, unmarked="--unmarked-target")
    return source, target


def _discover(source: redis.Redis, request: CopyRequest) -> list[bytes]:
    keys = discover(source, KeySpace(request.source_prefix.encode(), request.patterns, request.user_id))
    if not keys and not uncovered(source, request.source_prefix.encode(), request.user_id, set()):
        raise InputError(
            f"no memory for user {request.user_id} under {request.source_prefix!r} in the source",
            hint="check --user-id (the number from the bot's /start log) and --source-prefix",
        )
    return keys


def _snapshot_header(ctx: Context, request: CopyRequest) -> dict[str, Any]:
    server = label(ctx.secret("SOURCE_REDIS_URL"))
    return dict(user_id=request.user_id, env=request.source_env.name, prefix=request.source_prefix, server=server)


def copy_user(ctx: Context, request: CopyRequest) -> Outcome:
    source, target = _sides(ctx, request)
    source_prefix, target_prefix = request.source_prefix.encode(), request.target_prefix.encode()
    started = time.perf_counter()
    keys = _discover(source, request)
    discovered = time.perf_counter()
    audit = uncovered(source, source_prefix, request.user_id, set(keys))
    audited = time.perf_counter()
    if audit and request.apply and request.uncovered is Uncovered.REFUSE:
        names = ", ".join(k.decode(errors="replace") for k in audit[:5]) + (" …" if len(audit) > 5 else "")
        raise InputError(
            f"{len(audit)} key(s) of user {request.user_id} match no memory pattern and would stay behind: {names}",
            hint="pass --include-uncovered to copy them too, or --ignore-uncovered to leave them "
            "(or add their pattern to memory_patterns)",
        )
    if request.uncovered is Uncovered.INCLUDE:
        keys = sorted({*keys, *audit})
    label_ = f"user{request.user_id}-{request.source_env.name}-to-{request.target_env.name}"
    job = MemoryJob(
        target, lambda key: target_prefix + key[len(source_prefix) :], request, label_, ctx.snapshot_fernet()
    )
    # The move record as it is before this copy (a bot's own key by its name refused here, before any
    # write): the backup keeps it, so an undo leaves the target exactly as it was.
    recorded = moved.raw(target, request.target_prefix, request.user_id) if request.apply else None
    outcome = job.run(
        read_records(source, keys),
        snapshot_header=_snapshot_header(ctx, request),
        backup_header={**request.backup_header(ctx, request.user_id), "moved_before": recorded},
    )
    if outcome.applied:  # written now, not only planned
        _keep_move(ctx, target, request, outcome)
    outcome.timings = {"discover": discovered - started, "audit": audited - discovered, **outcome.timings}
    outcome.uncovered = [] if request.uncovered is Uncovered.INCLUDE else audit
    outcome.uncovered_policy = request.uncovered
    return outcome


def _keep_move(ctx: Context, target: redis.Redis, request: CopyRequest, outcome: Outcome) -> None:
    """The move record (``memory/moved.py``): each source key the target now holds, by its guard in
    the snapshot this write wrote from (as read, in this run or a ``--stage plan`` one), so it records
    what was written, not what is there now."""
    left = {*outcome.changed, *outcome.expired}  # changed meanwhile, or gone: the target does not hold them
    held = {
        item.source_key
        for item in outcome.plan
        if item.action in (Action.CREATE, Action.REPLACE, Action.IDENTICAL)
        and not {item.source_key, item.target_key} & left
    }
    assert outcome.snapshot is not None
    snapshot = RecordFile(outcome.snapshot, ctx.snapshot_fernet()).records()
    guards = {r.key: fingerprint(r.dump) for r in snapshot if r.key in held and r.dump is not None}
    try:
        moved.keep(target, request.target_prefix, request.user_id, server_id(ctx.secret("SOURCE_REDIS_URL")), guards)
    except CONNECTION_ERRORS as exc:
        outcome.warnings.append(
            f"⚠ the copy is written and verified, but its record on the target was not kept ({type(exc).__name__}): "
            "a later send-back cannot tell what the user tells the old bot from now on; run the same copy again"
        )


def export_user(ctx: Context, request: CopyRequest) -> tuple[Path, int]:
    env = None if request.ignore_markers else request.source_env
    source = open_side(
        ctx, "source", "the Redis to export from", env, request.source_prefix, legacy=request.legacy_source
    )
    keys = _discover(source, request)
    path = request.out_dir / f"user{request.user_id}-{request.source_env.name}-export-{stamp()}.jsonl"
    with RecordWriter(path, {"kind": "snapshot", **_snapshot_header(ctx, request)}, ctx.snapshot_fernet()) as writer:
        for record in read_records(source, keys):
            writer.write(record)
    return path, writer.count


def restore_snapshot(ctx: Context, snapshot: Path, writing: Writing) -> Outcome:
    """One user's copy snapshot (``memory copy`` wrote it) back into ``writing``'s target."""
    file = RecordFile(snapshot, ctx.snapshot_fernet())
    file.check()  # a cut-off or corrupt file is refused before anything is written
    source_prefix, prefix = str(file.header.get("prefix", "")).encode(), writing.target_prefix.encode()
    target = writing.open_target(ctx, "the Redis to restore into")

    def rewrite(key: bytes) -> bytes:
        return prefix + key[len(source_prefix) :] if key.startswith(source_prefix) else key

    job = MemoryJob(target, rewrite, writing, f"restore-{writing.target_env.name}", ctx.snapshot_fernet())
    backup_header = writing.backup_header(ctx, file.header.get("user_id"))
    header = {**file.header, "kind": "snapshot", "restored_from": snapshot.name}
    return job.run(file.records(), snapshot_header=header, backup_header=backup_header)


# -- Seed: a profile the user pasted becomes their initial memory, through the same careful job.


def parse_profile(path: Path) -> tuple[dict[str, str], list[str]]:
    """A pasted profile: JSON ({"first_name":…, "facts":[…]}) or plain text, one fact a line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path} does not exist", hint="pass the file holding the pasted profile") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    fields: dict[str, str] = {}
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        facts = data.get("facts", [])
        if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
            raise InputError(f'{path.name}: "facts" must be a list of strings')
        fields = {k: str(v) for k, v in data.items() if k != "facts" and isinstance(v, str | int)}
    else:
        facts = [line.strip().lstrip("-*•").strip() for line in text.splitlines()]
    facts = [f for f in facts if f]
    if not facts and not fields:
        raise InputError(f"{path.name} holds no facts", hint="one fact a line, or JSON with a facts list")
    if any(len(f) > 4000 for f in facts):
        raise InputError(f"{path.name} has a fact longer than 4000 characters; split it")
    return fields, facts


def seed_records(prefix: str, user_id: int, fields: dict[str, str], facts: list[str]) -> list[Record]:
    now = now_ms()
    # No timestamp: seeding the same profile twice is a no-op, like a second copy.
    profile = [(k.encode(), v.encode()) for k, v in sorted({"source": "seed", **fields}.items())]
    records = [Record(f"{prefix}user:{user_id}:profile".encode(), "hash", None, now, profile)]
    if facts:
        records.append(Record(f"{prefix}memory:{user_id}".encode(), "list", None, now, [f.encode() for f in facts]))
    return records


def seed_user(ctx: Context, user_id: int, profile: Path, writing: Writing) -> Outcome:
    """The pasted profile as ``user_id``'s first memory, written as ``writing`` says."""
    fields, facts = parse_profile(profile)
    target = writing.open_target(ctx, "the Redis to seed")
    label_ = f"user{user_id}-seed-{writing.target_env.name}"
    job = MemoryJob(target, lambda key: key, writing, label_, ctx.snapshot_fernet())
    header = writing.backup_header(ctx, user_id)
    return job.run(
        seed_records(writing.target_prefix, user_id, fields, facts),
        snapshot_header={**header, "seeded_from": profile.name},
        backup_header=header,
    )


# -- Undo: a backup put back, only over keys that still hold what the write left.


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
        present = {r.key: (r, fingerprint(r.dump)) for r in read_records(target, keys)}
        with RecordWriter(path, {"kind": "backup", **header, "undoes": backup.name}, fernet) as writer:
            for record, _ in present.values():
                writer.write(record)
        writer_ = Writer(target)
        left = _put_back(writer_, file.records(), present, file.after())
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
    left: list[bytes] = []
    for batch in batches(records):
        # A cancel a finalizer swallowed stops here (ci_tools/cancel.py): what is put back is put
        # back for good, and the same undo run again puts back the rest.
        cancel.checkpoint()
        # A write cut between building a value under its temporary name and renaming it over the key
        # (the cross-version path) left that name behind: only a write makes it, so it goes unguarded.
        writer.client.delete(*(r.key + PARTIAL for r in batch))
        changed = {r.key for r in batch if _changed_since_write(r, present[r.key][0], after.get(r.key))}
        left += [r.key for r in batch if r.key in changed]
        batch = [r for r in batch if r.key not in changed]
        writer.write_batch([(r.key, r, present[r.key][1]) for r in batch if r.exists])
        writer.delete([(r.key, present[r.key][1]) for r in batch if not r.exists and present[r.key][0].exists])
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
