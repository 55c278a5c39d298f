"""Restore points: a whole environment's memory snapshotted, and put back for all users or one.

A release rolls back in a second, but the memory it damaged does not: Render's Key Value persists
the damage. So production's memory is snapshotted (encrypted) before every release and every night,
and ``restore_point`` puts it back through the same ``MemoryJob`` as the copy: backup first (a
restore is undoable), TTLs kept, read back and compared. Keys the snapshot does not hold are left
alone: the user may have said new things since.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from cryptography.fernet import Fernet

from ci_tools.errors import InputError, VerificationError
from ci_tools.memory.files import RecordFile, RecordWriter
from ci_tools.memory.job import JobOptions, MemoryJob
from ci_tools.memory.keys import escape_glob, scan, user_segment
from ci_tools.memory.model import Conflict, Outcome, stamp, target_header
from ci_tools.memory.records import Record, read_records
from ci_tools.memory.servers import check_marker, marker
from ci_tools.settings import Environment

MB = 1024 * 1024


@dataclass(frozen=True)
class Taken:
    """What a snapshot holds, for the run's summary."""

    path: Path
    keys: int
    scope: str  # "environment", or "protected users" when memory was over the bound
    used_mb: float
    warning: str = ""
    unmarked: str = ""  # the one ⚠ line when the Redis carries no marker and its bot writes none


def take_snapshot(
    client: redis.Redis,
    env: Environment,
    out: Path,
    *,
    server: str,
    max_mb: int,
    protected: tuple[int, ...],
    commit: str = "",
    ignore_marker: bool = False,
    fernet: Fernet | None = None,  # MEMORY_SNAPSHOT_KEY's: required in Actions (the command checks)
    writes_no_marker: Callable[[], str | None] | None = None,
    server_id: str = "",  # servers.server_id of the URL read: what a restore of an unmarked snapshot matches
) -> Taken:
    """Snapshot every key under ``env``'s prefix; over ``max_mb``, only the protected users'.

    A Redis without a marker is snapshotted only when ``writes_no_marker`` says why its bot writes
    none (the base level); the snapshot records ``marker: null``. A marker naming another
    environment is always refused: that Redis is provably not this one."""
    prefix = env.key_prefix.encode()
    keys = sorted(set(scan(client, escape_glob(prefix) + b"*")))
    found = marker(client, prefix)
    unmarked = ""
    if not ignore_marker and found != env.name and (keys or found is not None):
        # An empty Redis (before the first release) has nothing to keep and no marker yet.
        why = writes_no_marker() if found is None and writes_no_marker is not None else None
        if why is None:
            said = "has none" if found is None else f"says {found!r}"
            raise VerificationError(
                f"the Redis to snapshot is not {env.name}'s: its {env.key_prefix}meta:env marker {said}",
                hint=f"check that REDIS_URL is {env.name}'s Key Value (its bot writes the marker at "
                "start; a bot at the base level writes none and is snapshotted without it), "
                "or pass --ignore-env-marker if you are sure",
            )
        unmarked = (  # what stands in for the marker's proof
            f"⚠ {env.name}'s Redis has no {env.key_prefix}meta:env marker ({why}): nothing in it proves "
            f"it is {env.name}'s, so this snapshot records the server it was read from ({server}) and a "
            "restore writes it back into that server only"
        )
    used = int(client.info("memory").get("used_memory", 0)) / MB
    scope, warning, over = "environment", "", used > max_mb
    if over:
        if not protected:
            raise VerificationError(
                f"{env.name}'s Redis uses {used:.0f} MB, over the snapshot bound of {max_mb} MB, "
                "and no protected users are configured",
                hint="list the users whose memory must always be kept in [tool.ci_tools.memory_backup] "
                "protected_users, or raise max_mb",
            )
        owned = [user_segment(u) for u in protected]
        keys = [k for k in keys if any(p.search(k[len(prefix) :]) for p in owned)]
        scope = "protected users"
        warning = (
            f"{env.name}'s Redis uses {used:.0f} MB, over the bound of {max_mb} MB: only the "
            f"{len(protected)} protected user(s)' {len(keys)} key(s) were snapshotted"
        )
    path = out / f"{env.name}-memory-{stamp()}.jsonl"
    header: dict[str, Any] = dict(kind="snapshot", scope=scope, env=env.name, prefix=env.key_prefix, server=server)
    header |= dict(commit=commit, taken_at=datetime.now(UTC).isoformat(timespec="seconds"))
    # marker None: no marker proved the Redis, so only its own server (server_id) takes it back
    header |= dict(users=list(protected) if over else None, marker=found, server_id=server_id)
    with RecordWriter(path, header, fernet) as writer:
        for record in read_records(client, keys):
            writer.write(record)
    return Taken(path, len(keys), scope, used, warning, unmarked)


def find_snapshot(given: Path) -> Path:
    """``given`` itself, or the one environment snapshot in the folder a workflow downloaded."""
    if given.is_file():
        return given
    if not given.is_dir():
        raise InputError(f"{given} does not exist", hint="pass the snapshot file or the folder it was downloaded to")
    found = sorted(p for p in given.rglob("*-memory-*.jsonl"))
    if not found:
        raise InputError(
            f"{given} holds no memory snapshot",
            hint="that run kept none: pick the run of production.yml (memory-before-<sha>) or of "
            "backup.yml (memory-nightly-<date>) whose id the rollback summary names",
        )
    if len(found) > 1:
        raise InputError(f"{given} holds {len(found)} snapshots", hint="pass the one to restore")
    return found[0]


@dataclass(kw_only=True)
class RestoreRequest(JobOptions):
    """A restore point (``snapshot``) back into ``env``: it replaces what differs, backed up first."""

    snapshot: Path
    env: Environment
    policy: Conflict = Conflict.REPLACE
    user_id: int | None = None
    patterns: tuple[str, ...] = ()  # globs on the key without its prefix, e.g. "memory:*"
    ignore_marker: bool = False


def _selected(request: RestoreRequest, file: RecordFile) -> Iterator[Record]:
    prefix = str(file.header.get("prefix", "")).encode()
    owned = user_segment(request.user_id) if request.user_id is not None else None
    for record in file.records():
        rest = record.key[len(prefix) :]
        matches = (fnmatch.fnmatchcase(rest.decode(errors="replace"), p) for p in request.patterns)
        if (owned is None or owned.search(rest)) and (not request.patterns or any(matches)):
            yield record


def check_restorable(request: RestoreRequest, file: RecordFile) -> None:
    """Refused before anything is read from the target: the wrong kind, environment or user."""
    header, name, env = file.header, request.snapshot.name, request.env
    if header.get("kind") != "snapshot" or "scope" not in header:
        raise InputError(
            f"{name} is not an environment snapshot (it is a {header.get('kind', '?')})",
            hint="restore from memory-before-<sha> or memory-nightly-<date>; undo a copy with `memory undo`",
        )
    if header.get("env") != env.name:
        raise InputError(
            f"{name} is a snapshot of {header.get('env')!r}, not of {env.name!r}",
            hint=f"restore it into {header.get('env')}, or pick a snapshot of {env.name}",
        )
    if str(header.get("prefix")) != env.key_prefix:
        raise InputError(
            f"{name} holds keys under {header.get('prefix')!r}, but {env.name}'s prefix is {env.key_prefix!r}",
            hint="the key prefix changed since: restore with the prefix it was taken under",
        )
    user = request.user_id
    if (user is None and not request.patterns) or any(True for _ in _selected(request, file)):
        return
    if user is not None and not request.patterns:
        raise InputError(
            f"user {user} is absent from {name}",
            hint="check the user id (the number from the bot's /start log), or restore another point",
        )
    raise InputError(
        f"no key of {name} matches {', '.join(request.patterns)}" + (f" for user {user}" if user is not None else ""),
        hint="patterns are globs on the key without its prefix, e.g. 'memory:*'",
    )


def restore_point(
    request: RestoreRequest, target: redis.Redis, server: str, fernet: Fernet | None, target_id: str = ""
) -> Outcome:
    """Dry run: each selected key's fate. Apply: back up, write (replacing), read back, compare."""
    file = RecordFile(request.snapshot, fernet)
    check_restorable(request, file)
    warnings = [] if request.ignore_marker else check_restore_target(request, file, target, server, target_id)
    job = MemoryJob(target, lambda key: key, request, f"restore-{request.env.name}", fernet)
    scope = {"user_id": request.user_id, "patterns": list(request.patterns), "from": request.snapshot.name}
    outcome = job.run(
        _selected(request, file),
        snapshot_header={**file.header, "kind": "snapshot", "restore": scope},
        backup_header=target_header(request.user_id, request.env.name, request.env.key_prefix, server, target_id),
    )
    outcome.warnings += warnings
    return outcome


def check_restore_target(
    request: RestoreRequest, file: RecordFile, target: redis.Redis, server: str, target_id: str
) -> list[str]:
    """The target must be the snapshot's environment: its marker says so, or, for a snapshot read
    from a Redis without one (the base level), it is that very server again (the snapshot recorded
    its ``server_id``), so it cannot carry one environment's memory into another. Any other server
    is refused, marked for this environment or not: its marker proves the target, not the snapshot."""
    env, prefix, header = request.env, request.env.key_prefix.encode(), file.header
    read_unmarked, claimed = header.get("marker", "") is None, marker(target, prefix)
    if not read_unmarked or claimed is not None:
        check_marker(target, prefix, env.name, "target", "--ignore-env-markers")
    if not read_unmarked:
        return []
    # Nothing proved the snapshot's Redis was env's: only the server it was read from takes it back.
    read_from = str(header.get("server", "?"))
    if not target_id or header.get("server_id") != target_id:
        name, where = request.snapshot.name, f"{env.key_prefix}meta:env"
        said = f"{env.name}'s Redis has no {where} marker, and"
        if claimed is not None:
            said = f"{where} marks this Redis {claimed}, but {name} was read from one without a marker, and"
        raise VerificationError(
            f"{said} TARGET_REDIS_URL ({server}) is not the Key Value {name} was read from ({read_from})",
            hint="point TARGET_REDIS_URL at the Redis the snapshot was read from: without a marker, "
            "nothing else proves that snapshot is that environment's",
        )
    if claimed is not None:
        return []
    return [
        f"⚠ {env.name}'s Redis has no {env.key_prefix}meta:env marker (its bot writes none): restoring "
        f"because it is {read_from}, the server the snapshot was read from"
    ]


def safety_net(env_name: str, commit: str, run_id: str | None) -> str:
    """A rollback summary's memory line: where the snapshot from before the release is, and the
    dispatch that restores it. Nothing by itself: the user may have said new things since."""
    artifact = f"memory-before-{commit}" if commit else "memory-before-<sha>"
    where = f"run {run_id}" if run_id else "the production run of that release"
    dispatch = (
        f"Actions → restore-memory → Run workflow with run_id {run_id or '<that run id>'}, "
        "mode dry-run (then apply); user_id for one user"
    )
    return (
        f"Memory: the code is rolled back, the memory it changed is not. The snapshot taken before "
        f"{commit[:12] or 'the release'} went out is the artifact {artifact} of {where}, kept for the "
        f"rollback window. Nothing was restored automatically (the user may have written since). "
        f"To restore: {dispatch}."
    )
