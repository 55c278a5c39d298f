"""The memory commands' use cases: copy, export, diff, restore and seed one user's memory."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from ci_tools.context import Context
from ci_tools.errors import InputError
from ci_tools.memory import moved
from ci_tools.memory.files import RecordFile, RecordWriter
from ci_tools.memory.job import JobOptions, MemoryJob
from ci_tools.memory.keys import KeySpace, discover, uncovered
from ci_tools.memory.model import CONNECTION_ERRORS, Action, Conflict, Outcome, Stage, Uncovered, stamp
from ci_tools.memory.records import Record, now_ms, read_records
from ci_tools.memory.servers import check_marker, connect, label, open_side, refuse_same_server, server_id
from ci_tools.memory.writer import fingerprint
from ci_tools.settings import Config, Environment


@dataclass(kw_only=True)
class Writing:
    """A write into one environment's Redis: where, under which policy, and whether for real."""

    target_env: Environment
    target_prefix: str
    policy: Conflict = Conflict.FAIL
    apply: bool = False
    out_dir: Path
    ignore_markers: bool = False
    resume_command: str = ""
    stage: Stage = Stage.ALL
    on_event: Callable[[str, int], None] | None = None

    def options(self, ctx: Context, label: str) -> JobOptions:
        return JobOptions(
            policy=self.policy,
            apply=self.apply,
            out_dir=self.out_dir,
            label=label,
            resume_command=self.resume_command,
            fernet=ctx.snapshot_fernet(),
            stage=self.stage,
            on_event=self.on_event,
        )

    def backup_header(self, ctx: Context, user_id: Any) -> dict[str, Any]:
        """Where the backup was taken: what an undo matches before it writes anything."""
        url = ctx.secret("TARGET_REDIS_URL")
        return {
            "user_id": user_id,
            "env": self.target_env.name,
            "prefix": self.target_prefix,
            "server": label(url),
            "server_id": server_id(url),
        }


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
    fields: dict[str, Any] = {
        "user_id": user_id,
        "source_env": source_env,
        "target_env": target_env,
        "source_prefix": source_env.key_prefix,
        "target_prefix": target_env.key_prefix,
        "patterns": source_env.memory_patterns,
        "out_dir": out_dir,
    }
    return CopyRequest(**{**fields, **changes})


def side(ctx: Context, role: str, purpose: str) -> redis.Redis:
    """The source or target Redis (SOURCE_/TARGET_REDIS_URL), its marker not yet read."""
    return connect(ctx.secret(f"{role.upper()}_REDIS_URL", purpose=purpose), role, timeout=ctx.timeout)


def url_label(ctx: Context, variable: str) -> str:
    return label(ctx.secret(variable))


def url_server_id(ctx: Context, variable: str) -> str:
    return server_id(ctx.secret(variable))


def _sides(ctx: Context, request: CopyRequest) -> tuple[redis.Redis, redis.Redis]:
    """Both servers; "the target is the source" is refused before any marker is read."""
    source, target = side(ctx, "source", "the Redis to copy from"), side(ctx, "target", "the Redis to copy to")
    refuse_same_server(source, target, request.source_prefix == request.target_prefix)
    if not request.ignore_markers:
        flag = "--ignore-env-markers"
        check_marker(
            source,
            request.source_prefix.encode(),
            request.source_env.name,
            "source",
            flag,
            legacy=request.legacy_source,
        )
        check_marker(
            target,
            request.target_prefix.encode(),
            request.target_env.name,
            "target",
            flag,
            legacy=request.legacy_target,
            unmarked_flag="--unmarked-target",
        )
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
    return {
        "user_id": request.user_id,
        "env": request.source_env.name,
        "prefix": request.source_prefix,
        "server": url_label(ctx, "SOURCE_REDIS_URL"),
    }


def copy_user(ctx: Context, request: CopyRequest) -> Outcome:
    source, target = _sides(ctx, request)
    source_prefix, target_prefix = request.source_prefix.encode(), request.target_prefix.encode()
    started = time.perf_counter()
    keys = _discover(source, request)
    discovered = time.perf_counter() - started
    started = time.perf_counter()
    audit = uncovered(source, source_prefix, request.user_id, set(keys))
    audited = time.perf_counter() - started
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
    job = MemoryJob(target, lambda key: target_prefix + key[len(source_prefix) :], request.options(ctx, label_))
    writes = request.apply and request.stage is not Stage.PLAN
    # The move record as it is before this copy (a bot's own key by its name refused here, before any
    # write): the backup keeps it, so an undo leaves the target exactly as it was.
    recorded = moved.raw(target, request.target_prefix, request.user_id) if request.apply else None
    read_guards: dict[bytes, str] = {}  # each source key's guard as read (an ALL-stage copy: no second read)
    outcome = job.run(
        _guarded(read_records(source, keys, with_dump=True), read_guards),
        snapshot_header=_snapshot_header(ctx, request),
        backup_header={**request.backup_header(ctx, request.user_id), "moved_before": recorded},
    )
    if writes and outcome.applied:
        _keep_move(ctx, target, request, outcome, read_guards)
    outcome.timings = {"discover": discovered, "audit": audited, **outcome.timings}
    outcome.uncovered = [] if request.uncovered is Uncovered.INCLUDE else audit
    outcome.uncovered_policy = request.uncovered
    return outcome


def _guarded(records: Iterator[Record], guards: dict[bytes, str]) -> Iterator[Record]:
    for record in records:
        if record.dump is not None:
            guards[record.key] = fingerprint(record.dump)
        yield record


def _keep_move(
    ctx: Context, target: redis.Redis, request: CopyRequest, outcome: Outcome, read_guards: dict[bytes, str]
) -> None:
    """The move record (``memory/moved.py``): each source key the target now holds, by its guard as
    read — in this run, or (a two-stage write, which read nothing) in the plan's snapshot, so it
    records what was written, not what is there now."""
    left = {*outcome.changed, *outcome.expired}  # changed meanwhile, or gone: the target does not hold them
    held = {
        item.source_key
        for item in outcome.plan
        if item.action in (Action.CREATE, Action.REPLACE, Action.IDENTICAL)
        and not {item.source_key, item.target_key} & left
    }
    if request.stage is Stage.WRITE and outcome.snapshot is not None:
        snapshot = RecordFile(outcome.snapshot, ctx.snapshot_fernet()).records()
        read_guards = {r.key: fingerprint(r.dump) for r in snapshot if r.key in held and r.dump is not None}
    guards = {key: guard for key, guard in read_guards.items() if key in held}
    try:
        moved.keep(target, request.target_prefix, request.user_id, url_server_id(ctx, "SOURCE_REDIS_URL"), guards)
    except CONNECTION_ERRORS as exc:
        outcome.warnings.append(
            f"⚠ the copy is written and verified, but its record on the target was not kept ({type(exc).__name__}): "
            "a later send-back cannot tell what the user tells the old bot from now on; run the same copy again"
        )


def export_user(ctx: Context, request: CopyRequest) -> tuple[Path, int]:
    source = open_side(
        ctx,
        "source",
        request.source_env,
        request.source_prefix,
        ignore_markers=request.ignore_markers,
        purpose="the Redis to export from",
        legacy=request.legacy_source,
    )
    keys = _discover(source, request)
    path = request.out_dir / f"user{request.user_id}-{request.source_env.name}-export-{stamp()}.jsonl"
    with RecordWriter(path, {"kind": "snapshot", **_snapshot_header(ctx, request)}, ctx.snapshot_fernet()) as writer:
        for record in read_records(source, keys, with_dump=True):
            writer.write(record)
    return path, writer.count


def diff_user(ctx: Context, request: CopyRequest) -> Outcome:
    """The plan of a dry run, under the 'fail' policy: what differs between the two sides."""
    request.apply, request.policy = False, Conflict.FAIL
    return copy_user(ctx, request)


def _open_target(ctx: Context, writing: Writing, purpose: str) -> redis.Redis:
    env, prefix = writing.target_env, writing.target_prefix
    return open_side(ctx, "target", env, prefix, ignore_markers=writing.ignore_markers, purpose=purpose)


def restore_snapshot(ctx: Context, snapshot: Path, writing: Writing) -> Outcome:
    """One user's copy snapshot (``memory copy`` wrote it) back into ``writing``'s target."""
    file = RecordFile(snapshot, ctx.snapshot_fernet())
    file.check()  # a cut-off or corrupt file is refused before anything is written
    source_prefix = str(file.header.get("prefix", "")).encode()
    target = _open_target(ctx, writing, "the Redis to restore into")
    prefix = writing.target_prefix.encode()
    job = MemoryJob(
        target,
        lambda key: prefix + key[len(source_prefix) :] if key.startswith(source_prefix) else key,
        writing.options(ctx, f"restore-{writing.target_env.name}"),
    )
    backup_header = writing.backup_header(ctx, file.header.get("user_id"))
    return job.run(file.records(), snapshot_header=None, backup_header=backup_header, snapshot_file=snapshot)


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
    target = _open_target(ctx, writing, "the Redis to seed")
    job = MemoryJob(target, lambda key: key, writing.options(ctx, f"user{user_id}-seed-{writing.target_env.name}"))
    header = writing.backup_header(ctx, user_id)
    return job.run(
        seed_records(writing.target_prefix, user_id, fields, facts),
        snapshot_header={**header, "seeded_from": profile.name},
        backup_header=header,
    )
