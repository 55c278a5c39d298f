"""The memory commands' logic: which servers, which keys, which checks, then a MemoryJob."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import redis

from ci_tools.config import Environment, request_timeout, require_secret
from ci_tools.errors import ConfigError, InputError, RemoteError, VerificationError
from ci_tools.memory.compare import difference
from ci_tools.memory.copy import CONNECTION_ERRORS, MemoryJob, Outcome, group_parts, stamp
from ci_tools.memory.files import RecordFile, RecordWriter, fernet_from_env
from ci_tools.memory.keys import KeySpace, discover, uncovered
from ci_tools.memory.records import BATCH, Record, now_ms, read_records
from ci_tools.memory.writer import Writer

Uncovered = Literal["refuse", "include", "ignore"]


def connect(url: str, role: str) -> redis.Redis:
    """A client that never decodes (binary values survive) and fails fast when unreachable."""
    try:
        client = redis.Redis.from_url(
            url,
            decode_responses=False,
            socket_connect_timeout=request_timeout(10),
            socket_timeout=request_timeout(60),
        )
        client.ping()
    except ValueError:
        raise ConfigError(
            f"the {role} Redis URL is malformed",
            hint="expected redis://[user:password@]host:port[/db]",
        ) from None
    except redis.AuthenticationError:
        raise ConfigError(
            f"the {role} Redis refused the password", hint=f"check {role.upper()}_REDIS_URL"
        ) from None
    except CONNECTION_ERRORS as exc:
        raise RemoteError(
            f"cannot reach the {role} Redis at {label(url)} ({type(exc).__name__})"
        ) from None
    return client


def label(url: str) -> str:
    """host:port/db — what a person may see of a Redis URL."""
    kwargs = redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def identity(client: redis.Redis) -> tuple[str, int]:
    run_id = client.info("server").get("run_id", "")
    db = int(client.connection_pool.connection_kwargs.get("db", 0) or 0)
    return (run_id.decode() if isinstance(run_id, bytes) else str(run_id)), db


def refuse_same_server(source: redis.Redis, target: redis.Redis, same_prefix: bool) -> None:
    if identity(source) == identity(target) and same_prefix:
        raise InputError(
            "the target is the source (same server, same database, same key prefix)",
            hint="set TARGET_REDIS_URL to the other environment's Redis",
        )


def marker(client: redis.Redis, prefix: bytes) -> str | None:
    value = client.get(prefix + b"meta:env")
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def check_marker(
    client: redis.Redis, prefix: bytes, env_name: str, role: str, flag: str, *, legacy: bool = False
) -> None:
    """The side's ``<prefix>meta:env`` must name its environment.

    A legacy source — a bot that never wrote a marker — is accepted only when told
    (``--legacy-source``), and only when there is no marker at all: one that names
    another environment is refused still.
    """
    found = marker(client, prefix)
    if found is None and role == "source" and not legacy:
        raise VerificationError(
            f"the source Redis has no {prefix.decode()}meta:env marker, so nothing says it is {env_name}'s",
            hint="if it is a legacy bot's Redis that never wrote one, pass --legacy-source "
            "(and --source-prefix '' if its keys carry no prefix); else check SOURCE_REDIS_URL",
        )
    if found is None and legacy:
        return
    if found != env_name:
        where = f"{prefix.decode()}meta:env"
        what = "is not set" if found is None else f"says {found!r}"
        raise VerificationError(
            f"the {role} Redis marker {where} {what}, but --{role_flag(role)} is {env_name!r}",
            hint=f"check {role.upper()}_REDIS_URL points at the {env_name} Redis "
            f"(its bot writes the marker at start), or pass {flag} if you are sure",
        )


def role_flag(role: str) -> str:
    return "from" if role == "source" else "to"


def open_side(
    role: str,
    env: Environment,
    prefix: str,
    *,
    ignore_markers: bool,
    purpose: str,
    legacy: bool = False,
) -> redis.Redis:
    """Connect to the source or target Redis (from SOURCE_/TARGET_REDIS_URL) and check its marker."""
    client = connect(require_secret(f"{role.upper()}_REDIS_URL", purpose=purpose), role)
    if not ignore_markers:
        check_marker(client, prefix.encode(), env.name, role, "--ignore-env-markers", legacy=legacy)
    return client


@dataclass
class CopyRequest:
    user_id: int
    source_env: Environment
    target_env: Environment
    source_prefix: str
    target_prefix: str
    patterns: tuple[str, ...]
    apply: bool
    policy: str
    out_dir: Path
    ignore_markers: bool = False
    legacy_source: bool = False  # the source bot never wrote a marker (accepted when told)
    uncovered: Uncovered = "refuse"  # keys naming the user that no pattern covers
    resume_command: str = ""
    on_event: Callable[[str, int], None] | None = None
    progress: Callable[[str, int], Any] | None = None


def _sides(request: CopyRequest) -> tuple[redis.Redis, redis.Redis]:
    """Both servers; "the target is the source" is refused before any marker is read."""
    source = connect(require_secret("SOURCE_REDIS_URL", purpose="the Redis to copy from"), "source")
    target = connect(require_secret("TARGET_REDIS_URL", purpose="the Redis to copy to"), "target")
    refuse_same_server(source, target, request.source_prefix == request.target_prefix)
    if not request.ignore_markers:
        check_marker(
            source,
            request.source_prefix.encode(),
            request.source_env.name,
            "source",
            "--ignore-env-markers",
            legacy=request.legacy_source,
        )
        check_marker(
            target,
            request.target_prefix.encode(),
            request.target_env.name,
            "target",
            "--ignore-env-markers",
        )
    return source, target


def _space(request: CopyRequest) -> KeySpace:
    return KeySpace(request.source_prefix.encode(), request.patterns, request.user_id)


def _discover(source: redis.Redis, request: CopyRequest) -> list[bytes]:
    keys = discover(source, _space(request))
    if not keys and not uncovered(source, request.source_prefix.encode(), request.user_id, set()):
        raise InputError(
            f"no memory for user {request.user_id} under {request.source_prefix!r} in the source",
            hint="check --user-id (the number from the bot's /start log) and --source-prefix",
        )
    return keys


def copy_user(request: CopyRequest) -> Outcome:
    source, target = _sides(request)
    space = _space(request)
    target_prefix = request.target_prefix.encode()
    started = time.perf_counter()
    keys = _discover(source, request)
    discovered = time.perf_counter() - started
    started = time.perf_counter()
    audit = uncovered(source, space.prefix, request.user_id, set(keys))
    audited = time.perf_counter() - started
    if audit and request.apply and request.uncovered == "refuse":
        names = ", ".join(k.decode(errors="replace") for k in audit[:5]) + (
            " …" if len(audit) > 5 else ""
        )
        raise InputError(
            f"{len(audit)} key(s) of user {request.user_id} match no memory pattern and would stay behind: {names}",
            hint="pass --include-uncovered to copy them too, or --ignore-uncovered to leave them "
            "(or add their pattern to memory_patterns)",
        )
    if request.uncovered == "include":
        keys = sorted({*keys, *audit})
    label_ = f"user{request.user_id}-{request.source_env.name}-to-{request.target_env.name}"
    job = MemoryJob(
        target,
        lambda key: space.rewrite(key, target_prefix),
        policy=request.policy,
        apply=request.apply,
        out_dir=request.out_dir,
        label=label_,
        undo_command=lambda path: f"ci-tools memory undo {path}",
        resume_command=request.resume_command,
        on_event=request.on_event,
        progress=request.progress,
    )
    records = read_records(source, keys, with_dump=True)
    outcome = job.run(
        records,
        snapshot_header={
            "user_id": request.user_id,
            "env": request.source_env.name,
            "prefix": request.source_prefix,
            "server": _url_label("SOURCE_REDIS_URL"),
        },
        backup_header={
            "user_id": request.user_id,
            "env": request.target_env.name,
            "prefix": request.target_prefix,
            "server": _url_label("TARGET_REDIS_URL"),
        },
    )
    outcome.timings = {"discover": discovered, "audit": audited, **outcome.timings}
    outcome.uncovered = [] if request.uncovered == "include" else audit
    outcome.uncovered_policy = request.uncovered
    return outcome


def _url_label(variable: str) -> str:
    return label(require_secret(variable))


def export_user(request: CopyRequest) -> tuple[Path, int]:
    source = open_side("source", request.source_env, request.source_prefix,
                       ignore_markers=request.ignore_markers, purpose="the Redis to export from",
                       legacy=request.legacy_source)  # fmt: skip
    keys = _discover(source, request)
    path = (
        request.out_dir / f"user{request.user_id}-{request.source_env.name}-export-{stamp()}.jsonl"
    )
    header = {"kind": "snapshot", "user_id": request.user_id, "env": request.source_env.name,
              "prefix": request.source_prefix, "server": _url_label("SOURCE_REDIS_URL")}  # fmt: skip
    with RecordWriter(path, header, fernet_from_env()) as writer:
        for record in read_records(source, keys, with_dump=True):
            writer.write(record)
    return path, writer.count


def diff_user(request: CopyRequest) -> Outcome:
    """The plan of a dry run, under the 'fail' policy: what differs between the two sides."""
    request.apply, request.policy = False, "fail"
    return copy_user(request)


def restore_snapshot(
    snapshot: Path, target_env: Environment, target_prefix: str, policy: str, apply: bool,
    out_dir: Path, ignore_markers: bool, resume_command: str,
) -> Outcome:  # fmt: skip
    file = RecordFile(snapshot)
    _validate(file)
    source_prefix = str(file.header.get("prefix", "")).encode()
    target = open_side("target", target_env, target_prefix, ignore_markers=ignore_markers,
                       purpose="the Redis to restore into")  # fmt: skip
    prefix = target_prefix.encode()
    job = MemoryJob(
        target,
        lambda key: prefix + key[len(source_prefix) :] if key.startswith(source_prefix) else key,
        policy=policy,
        apply=apply,
        out_dir=out_dir,
        label=f"restore-{target_env.name}",
        resume_command=resume_command,
    )
    return job.run(
        file.records(),
        snapshot_header=None,
        backup_header={
            "user_id": file.header.get("user_id"),
            "env": target_env.name,
            "prefix": target_prefix,
            "server": _url_label("TARGET_REDIS_URL"),
        },
        snapshot_file=snapshot,
    )


def _validate(file: RecordFile) -> int:
    """Read the whole file once: a truncated or corrupt file is refused before anything is written."""
    return sum(1 for _ in file.records())


def undo_backup(
    backup: Path, out_dir: Path, *, allow_other_server: bool = False, apply: bool = True
) -> tuple[Path | None, int]:
    """Put every key of a backup back as it was (absent keys deleted), after backing up the present.

    Without ``apply``, a dry run: the file and the server are checked, nothing is written.
    """
    file = RecordFile(backup)
    if file.header.get("kind") != "backup":
        raise InputError(
            f"{backup.name} is a {file.header.get('kind')}, not a backup",
            hint="undo takes the backup path a copy printed",
        )
    count = _validate(file)
    url = require_secret("TARGET_REDIS_URL", purpose="the Redis to undo on")
    if not allow_other_server and file.header.get("server") != label(url):
        raise InputError(
            f"this backup was taken on {file.header.get('server')}, but TARGET_REDIS_URL is {label(url)}",
            hint="point TARGET_REDIS_URL at the server the copy wrote to, or pass --allow-other-server",
        )
    target = connect(url, "target")
    if not apply:
        return None, count
    keys = [r.key for r in file.records() if r.part == 0]
    fernet = fernet_from_env()
    path = out_dir / f"undo-backup-{stamp()}.jsonl"
    header = {
        k: v for k, v in file.header.items() if k not in ("format", "version", "encrypted", "kind")
    }
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


def parse_profile(path: Path) -> tuple[dict[str, str], list[str]]:
    """A pasted profile: JSON ({"first_name":…, "facts":[…]}) or plain text, one fact a line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(
            f"{path} does not exist", hint="pass the file holding the pasted profile"
        ) from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    fields: dict[str, str] = {}
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno}"
            ) from None
        facts = data.get("facts", [])
        if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
            raise InputError(f'{path.name}: "facts" must be a list of strings')
        fields = {k: str(v) for k, v in data.items() if k != "facts" and isinstance(v, str | int)}
    else:
        facts = [line.strip().lstrip("-*•").strip() for line in text.splitlines()]
    facts = [f for f in facts if f]
    if not facts and not fields:
        raise InputError(
            f"{path.name} holds no facts", hint="one fact a line, or JSON with a facts list"
        )
    if any(len(f) > 4000 for f in facts):
        raise InputError(f"{path.name} has a fact longer than 4000 characters; split it")
    return fields, facts


def seed_records(
    prefix: str, user_id: int, fields: dict[str, str], facts: list[str]
) -> list[Record]:
    now = now_ms()
    # No timestamp: seeding the same profile twice is a no-op, like a second copy.
    profile = sorted({"source": "seed", **fields}.items())
    records = [
        Record(f"{prefix}user:{user_id}:profile".encode(), "hash", None, now,
               [(k.encode(), v.encode()) for k, v in profile]),
    ]  # fmt: skip
    if facts:
        records.append(
            Record(
                f"{prefix}memory:{user_id}".encode(), "list", None, now, [f.encode() for f in facts]
            )
        )
    return records


def seed_user(
    user_id: int, profile: Path, target_env: Environment, target_prefix: str, policy: str,
    apply: bool, out_dir: Path, ignore_markers: bool, resume_command: str,
) -> Outcome:  # fmt: skip
    fields, facts = parse_profile(profile)
    target = open_side("target", target_env, target_prefix, ignore_markers=ignore_markers,
                       purpose="the Redis to seed")  # fmt: skip
    job = MemoryJob(
        target, lambda key: key, policy=policy, apply=apply, out_dir=out_dir,
        label=f"user{user_id}-seed-{target_env.name}", resume_command=resume_command,
    )  # fmt: skip
    header = {"user_id": user_id, "env": target_env.name, "prefix": target_prefix,
              "server": _url_label("TARGET_REDIS_URL")}  # fmt: skip
    return job.run(
        seed_records(target_prefix, user_id, fields, facts),
        snapshot_header={**header, "seeded_from": profile.name},
        backup_header=header,
    )
