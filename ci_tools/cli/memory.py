"""``ci-tools memory …``: copy, export, diff, restore, undo and seed a user's memory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ci_tools.cli._common import add_write_flags, report_outcome, resume_command, undo_command, wants_apply
from ci_tools.context import Context
from ci_tools.errors import InputError
from ci_tools.memory import ops, restore_points
from ci_tools.memory.files import RecordFile
from ci_tools.memory.keys import parse_user_id
from ci_tools.memory.model import Action, Conflict, Uncovered
from ci_tools.memory.servers import label, open_side, server_id
from ci_tools.needs import Needs
from ci_tools.output import Report, emit_json, report, say
from ci_tools.pipeline.levels import Level, discover
from ci_tools.settings import Environment, pattern_problem

SNAPSHOT_KEY = ("MEMORY_SNAPSHOT_KEY",)
BOTH = Needs(required=("SOURCE_REDIS_URL", "TARGET_REDIS_URL"), optional=SNAPSHOT_KEY)
SOURCE = Needs(required=("SOURCE_REDIS_URL",), optional=SNAPSHOT_KEY)
# The snapshot also reads the other environment's URL, where the run holds it, to tell a markerless
# Redis pasted into the wrong secret (_writes_no_marker).
SNAPSHOT = Needs(required=("SOURCE_REDIS_URL",), optional=(*SNAPSHOT_KEY, "STAGING_REDIS_URL"))
TARGET = Needs(required=("TARGET_REDIS_URL",), optional=SNAPSHOT_KEY)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("memory")
    sub = parser.add_subparsers(dest="memory_command", required=True, metavar="ACTION")

    def common(
        p: argparse.ArgumentParser, *, source: bool, target: bool, user: bool = True, kinds: bool = True
    ) -> None:
        """``kinds``: the target may be unmarked (copy, diff); restore and seed check their own way."""
        flag = p.add_argument
        if user:
            flag("--user-id", required=True, help="the Telegram user id (an integer)")
        if source:
            prefix = "default: the source environment's key prefix; '' for a bot whose keys carry none"
            legacy = "the source is a legacy bot's Redis that never wrote a meta:env marker"
            kind = "as a workflow input: legacy = --legacy-source with no key prefix"
            flag("--from", dest="source", required=True, metavar="ENV", help="source environment")
            flag("--source-prefix", help=prefix)
            flag("--legacy-source", action="store_true", help=legacy)
            flag("--source-kind", choices=("configured", "legacy"), default="configured", help=kind)
        if target:
            unmarked = "the target's bot writes no meta:env marker (the base level): accept a target without "
            unmarked += "one (a marker naming another environment is still refused)"
            kind = "as a workflow input: unmarked = --unmarked-target"
            flag("--to", dest="target", required=True, metavar="ENV", help="target environment")
            flag("--target-prefix", help="default: the target environment's key prefix")
            if kinds:  # restore and seed never read them: a flag that does nothing is not offered
                flag("--unmarked-target", action="store_true", help=unmarked)
                flag("--target-kind", choices=("marked", "unmarked"), default="marked", help=kind)
        flag("--out", type=Path, default=Path("memory-out"), help="where snapshots and backups go")
        flag("--ignore-env-markers", action="store_true", help="skip the <prefix>meta:env checks")
        flag("--json", action="store_true", help="one JSON document on stdout")

    def writes(p: argparse.ArgumentParser) -> None:
        stage = "with --apply: plan = read, plan and write the snapshot and backup only (nothing written); write = "
        add_write_flags(p, stage + "write from the plan a --stage plan run left in --out; all = both")
        conflict = {"type": Conflict, "choices": list(Conflict), "default": Conflict.FAIL}
        p.add_argument("--on-conflict", **conflict, help="when a target key holds other data")  # type: ignore[arg-type]

    def pattern(p: argparse.ArgumentParser, help: str | None = None) -> None:
        p.add_argument("--pattern", action="append", dest="patterns", metavar="PATTERN", help=help)

    copy = sub.add_parser("copy", help="copy one user's keys (dry run unless --apply)")
    common(copy, source=True, target=True)
    writes(copy)
    pattern(copy, help="key pattern under the prefix, with {user_id} (repeatable; default: configured)")
    audit = copy.add_mutually_exclusive_group().add_argument
    also = "also copy the user's keys that no pattern covers (an --apply refuses while any exist)"
    audit("--include-uncovered", dest="uncovered", action="store_const", const=Uncovered.INCLUDE, help=also)
    leave = "leave them where they are, and say so"
    audit("--ignore-uncovered", dest="uncovered", action="store_const", const=Uncovered.IGNORE, help=leave)
    audit("--uncovered", type=Uncovered, choices=list(Uncovered), help="the same, as a workflow input")
    copy.set_defaults(uncovered=Uncovered.REFUSE, func=memory_copy, needs=BOTH)

    export = sub.add_parser("export", help="write a snapshot of one user's keys")
    common(export, source=True, target=False)
    pattern(export)
    export.set_defaults(func=memory_export, needs=SOURCE)

    diff = sub.add_parser("diff", help="compare one user's keys in two environments (exit 1 if they differ)")
    common(diff, source=True, target=True)
    pattern(diff)
    diff.set_defaults(func=memory_copy, needs=BOTH)

    what = "write a snapshot into an environment (dry run unless --apply); an environment snapshot (memory snapshot) "
    restore = sub.add_parser("restore", help=what + "for everyone, or --user-id / --pattern")
    restore.add_argument("snapshot", type=Path, help="the snapshot, or the folder a workflow downloaded it to")
    common(restore, source=False, target=True, user=False, kinds=False)
    writes(restore)
    only = "environment snapshots: restore this user's keys only ('' = every user)"
    restore.add_argument("--user-id", default="", help=only)
    only = "environment snapshots: only keys matching this glob, without the prefix (e.g. 'memory:*'; "
    only += "repeatable; '' = all)"
    restore.add_argument("--pattern", action="append", dest="patterns", default=[], metavar="GLOB", help=only)
    restore.set_defaults(func=memory_restore, needs=TARGET)

    snapshot = sub.add_parser("snapshot", help="snapshot every key of an environment (its restore point), encrypted")
    snapshot.add_argument("env", metavar="ENV", help="the environment whose Redis SOURCE_REDIS_URL is")
    snapshot.add_argument("--out", type=Path, default=Path("memory-out"))
    snapshot.add_argument("--commit", default="", help="the release this snapshot comes before")
    snapshot.add_argument("--ignore-env-marker", action="store_true", help="skip the <prefix>meta:env check")
    snapshot.add_argument("--json", action="store_true")
    snapshot.set_defaults(func=memory_snapshot, needs=SNAPSHOT)

    undo = sub.add_parser("undo", help="put the target back as a backup recorded it")
    undo.add_argument("backup", type=Path)
    undo.add_argument("--out", type=Path, default=Path("memory-out"))
    undo.add_argument("--allow-other-server", action="store_true", help="undo on a server other than the recorded one")
    add_write_flags(undo)
    undo.add_argument("--json", action="store_true")
    undo.set_defaults(func=memory_undo, needs=TARGET)

    seed = sub.add_parser("seed", help="make a pasted profile the user's initial memory (dry run unless --apply)")
    common(seed, source=False, target=True, kinds=False)
    seed.add_argument("--profile-file", required=True, type=Path)
    writes(seed)
    seed.set_defaults(func=memory_seed, needs=TARGET)


def _applying(ctx: Context, args: argparse.Namespace) -> bool:
    """--apply or --mode apply (a workflow input); in Actions only with MEMORY_SNAPSHOT_KEY."""
    if applying := wants_apply(args):
        why = "a write needs MEMORY_SNAPSHOT_KEY, so the snapshot and backup are kept (encrypted) as this run's "
        ctx.require_snapshot_key(why + "artifact for undo")
    return applying


def _options(ctx: Context, args: argparse.Namespace, workflow: str = "migrate-memory") -> dict[str, Any]:
    """What every write takes from the flags: whether, from which stage, where to, how to resume or undo it."""
    apply, undoing = _applying(ctx, args), undo_command(ctx, workflow)
    return dict(apply=apply, out_dir=args.out, stage=args.stage, resume_command=resume_command(), undo_command=undoing)


def _request(ctx: Context, args: argparse.Namespace, *, to: bool, writes: bool) -> ops.CopyRequest:
    """copy, diff and export: one user's keys in the source environment, and where they go (the
    prefixes default to each environment's; --source-kind legacy is --legacy-source with none)."""
    user_id, legacy = parse_user_id(args.user_id), args.source_kind == "legacy"
    given: dict[str, Any] = {"out_dir": args.out, "ignore_markers": args.ignore_env_markers}
    given["legacy_source"] = args.legacy_source or legacy
    if args.patterns:
        given["patterns"] = tuple(args.patterns)
    if args.source_prefix is not None or legacy:
        given["source_prefix"] = args.source_prefix or ""
    if to and args.target_prefix is not None:
        given["target_prefix"] = args.target_prefix
    if writes:
        given |= _options(ctx, args) | {"policy": args.on_conflict, "uncovered": args.uncovered}
    legacy_target = to and (args.unmarked_target or args.target_kind == "unmarked")
    target = args.target if to else args.source
    request = ops.between(ctx.config, user_id, args.source, target, legacy_target=legacy_target, **given)
    for pattern in request.patterns:
        if problem := pattern_problem(pattern):
            raise InputError(f"--pattern {pattern!r} {problem}", hint="e.g. --pattern 'user:{user_id}:*'")
    return request


def _writing(ctx: Context, args: argparse.Namespace, env: Environment) -> ops.Writing:
    """Where and how restore and seed write: the target environment, as the flags say."""
    options = _options(ctx, args) | dict(policy=args.on_conflict, ignore_markers=args.ignore_env_markers)
    return ops.Writing(target_env=env, target_prefix=args.target_prefix or env.key_prefix, **options)


RESTORE_WORDS: dict[str, str] = {Action.CREATE: "recreate", Action.REPLACE: "change", Action.IDENTICAL: "leave alone"}


def memory_copy(ctx: Context, args: argparse.Namespace) -> int:
    """copy, and diff (its dry run under the fail policy: exit 1 when any key differs)."""
    diff = args.memory_command == "diff"
    request = _request(ctx, args, to=True, writes=not diff)
    outcome = ops.copy_user(ctx, request)
    between = f"{request.source_env.name} {'vs' if diff else '→'} {request.target_env.name}"
    report_outcome(ctx, outcome, args.json, f"memory {args.memory_command} of user {request.user_id}: {between}")
    return 1 if diff and any(i.action is not Action.IDENTICAL for i in outcome.plan) else 0


def memory_export(ctx: Context, args: argparse.Namespace) -> int:
    ctx.require_snapshot_key("an export needs MEMORY_SNAPSHOT_KEY: it holds the user's memory, kept as an artifact")
    request = _request(ctx, args, to=False, writes=False)
    path, count = ops.export_user(ctx, request)
    if args.json:
        emit_json({"snapshot": str(path), "records": count})
    else:
        say(f"exported {count} record(s) of user {request.user_id} to {path}")
    return 0


def memory_restore(ctx: Context, args: argparse.Namespace) -> int:
    """A snapshot (or the folder holding it) into an environment; for an environment's snapshot,
    optionally one user's keys or those matching globs ('' entries, a workflow's empty input, dropped)."""
    env = ctx.config.env(args.target)
    user_id, patterns = args.user_id.strip(), tuple(p for p in args.patterns if p.strip())
    snapshot = restore_points.find_snapshot(args.snapshot)
    if "scope" in RecordFile(snapshot, ctx.snapshot_fernet()).header:  # an environment's restore point
        options = _options(ctx, args, "restore-memory")
        options |= dict(user_id=parse_user_id(user_id) if user_id else None, ignore_marker=args.ignore_env_markers)
        request = restore_points.RestoreRequest(snapshot=snapshot, env=env, patterns=patterns, **options)
        target, url = open_side(ctx, "target", "the Redis to restore into"), ctx.secret("TARGET_REDIS_URL")
        outcome = restore_points.restore_point(request, target, label(url), ctx.snapshot_fernet(), server_id(url))
        who = f"user {request.user_id}" if request.user_id else "every user"
        title = f"memory restore of {env.name} ({who}) from {snapshot.name}"
        report_outcome(ctx, outcome, args.json, title, words=RESTORE_WORDS, workflow="restore-memory")
        return 0
    if user_id or patterns:
        raise InputError(
            f"{snapshot.name} is one user's copy snapshot: --user-id and --pattern apply to environment snapshots only",
            hint="drop them to restore the whole file",
        )
    outcome = ops.restore_snapshot(ctx, snapshot, _writing(ctx, args, env))
    report_outcome(ctx, outcome, args.json, f"memory restore of {snapshot.name} into {env.name}")
    return 0


def memory_undo(ctx: Context, args: argparse.Namespace) -> int:
    """A backup put back on TARGET_REDIS_URL."""
    apply, name, other = _applying(ctx, args), args.backup.name, args.allow_other_server
    path, count, left = ops.undo_backup(ctx, args.backup, args.out, allow_other_server=other, apply=apply)
    if apply:
        rows = [["✓", f"put back {count - len(left)} key(s) from {name}", f"the state before this undo is in {path}"]]
        kept = "both states are kept: the backup undone and the one this undo wrote"
        newer = "changed since the write: left as the user's newer memory"
        rows += [["⚠", f"{key.decode(errors='replace')} {newer}", kept] for key in left]
    else:
        rows = [["→", f"dry run: {count} key(s) of {name} would be put back", "rerun with --apply"]]
    document: dict[str, Any] = {"applied": apply, "records": count, "backup_of_previous_state": path and str(path)}
    document["left_alone_changed"] = [key.decode(errors="replace") for key in left]
    shown = Report("memory undo", ["", "what", "note"], rows, document, shown=1 + len(left))
    report(ctx.runner, shown, as_json=args.json)
    return 0


def memory_snapshot(ctx: Context, args: argparse.Namespace) -> int:
    """Every key of an environment's Redis, its restore point."""
    config, env = ctx.config, ctx.config.env(args.env)
    ctx.require_snapshot_key(
        "a memory snapshot needs MEMORY_SNAPSHOT_KEY: it holds every user's memory and is kept as an artifact"
    )
    backup = config.memory_backup
    taken = restore_points.take_snapshot(
        open_side(ctx, "source", "the Redis to snapshot"),
        env,
        args.out,
        server=label(ctx.secret("SOURCE_REDIS_URL")),
        max_mb=backup.max_mb,
        protected=backup.protected_users,
        commit=args.commit,
        ignore_marker=args.ignore_env_marker,
        fernet=ctx.snapshot_fernet(),
        writes_no_marker=lambda: _writes_no_marker(ctx, env),
        server_id=server_id(ctx.secret("SOURCE_REDIS_URL")),
    )
    if taken.unmarked:
        say(taken.unmarked, err=True)
        ctx.runner.annotate("warning", taken.unmarked.removeprefix("⚠ "), title="memory snapshot: no marker")
        ctx.runner.add_summary(taken.unmarked)
    if taken.warning:
        say(f"! {taken.warning}", err=True)
        ctx.runner.annotate("warning", taken.warning, title="memory snapshot")
    outputs = {"path": taken.path, "keys": taken.keys, "before_release_days": config.before_release_days}
    for name, value in {**outputs, "nightly_days": backup.nightly_days}.items():
        ctx.runner.set_output(name, str(value))
    line = (
        f"memory snapshot of {env.name}: {taken.keys} key(s) ({taken.scope}, Redis at "
        f"{taken.used_mb:.1f} MB) in {taken.path.name}, encrypted: {'MEMORY_SNAPSHOT_KEY' in ctx.secrets}"
    )
    ctx.runner.add_summary(line)
    if args.json:
        found = {"path": str(taken.path), "keys": taken.keys, "scope": taken.scope, "used_mb": taken.used_mb}
        emit_json({**found, "warning": taken.warning or None, "unmarked": taken.unmarked or None})
    else:
        say(f"✓ {line}")
    return 0


def _writes_no_marker(ctx: Context, env: Environment) -> str | None:
    """Why the live bot of ``env`` writes no ``meta:env`` marker, or None when it should have one.

    Asked only of a Redis with keys and no marker, which cannot say whose it is; another environment's
    URL the run holds can (production.yml hands the old bot's Redis to the snapshot as STAGING_REDIS_URL):
    the same Key Value (``server_id``) behind both is a secret pasted into the wrong place, refused before
    reading. At the base level (no health answer, or its own 4xx on that path) the bot writes none, so
    its absence proves nothing wrong; a bot that answers the health JSON claims its Redis, and one that
    did not answer cannot say: both stay refused."""
    here = server_id(ctx.secret("SOURCE_REDIS_URL"))
    for other in ctx.config.environments.values():
        variable = f"{other.name.upper()}_REDIS_URL"
        # Only a URL the snapshot declares: staging's run never holds production's, and asks for none.
        held = variable in SNAPSHOT.names and ctx.optional(variable)
        if other.name != env.name and held and server_id(ctx.secret(variable)) == here:
            raise InputError(
                f"the Redis to snapshot as {env.name}'s is the same Key Value as {variable} ({other.name}'s), "
                "and holds no meta:env marker to say otherwise",
                hint=f"set {env.name}'s REDIS_URL secret to the URL of {env.name}'s own Key Value",
            )
    seen = discover(env, ctx.timeout or 10)
    # Only a 4xx is the bot saying it has no such path: a redirect points at an answer elsewhere.
    its_own_4xx = seen.http_status is None or 400 <= seen.http_status < 500
    base = seen.level is Level.BASE and seen.definite and its_own_4xx
    return f"its bot is at the base level and writes none — {seen.why}" if base else None


def memory_seed(ctx: Context, args: argparse.Namespace) -> int:
    """A pasted profile as one user's first memory in an environment."""
    env, user_id = ctx.config.env(args.target), parse_user_id(args.user_id)
    outcome = ops.seed_user(ctx, user_id, args.profile_file, _writing(ctx, args, env))
    report_outcome(ctx, outcome, args.json, f"memory seed of user {user_id} into {env.name}")
    return 0
