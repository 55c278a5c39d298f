"""What several commands share: reporting a probe, Needs every Render command reads, asking the owner."""

from __future__ import annotations

import argparse
import getpass
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from ci_tools.actions import Runner
from ci_tools.context import Context
from ci_tools.errors import InputError
from ci_tools.memory.model import Outcome, Stage, Uncovered
from ci_tools.needs import Needs
from ci_tools.output import Report, report, say
from ci_tools.pipeline.notify import notify
from ci_tools.pipeline.probe import Check, summary_rows
from ci_tools.settings import Environment

RENDER = ("RENDER_DEPLOY_HOOK_URL", "RENDER_API_KEY", "RENDER_SERVICE_ID")
DEPLOY_NEEDS = Needs(optional=RENDER)
TOKEN = ("TELEGRAM_BOT_TOKEN",)
WEBHOOK_SECRET = ("TELEGRAM_WEBHOOK_SECRET",)  # signs the probe's conversation
PROBE_HEADERS = ["", "check", "seen", "likely cause", "time"]


def add_probe_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--deadline", type=float, default=90, help="seconds to keep retrying failing checks")
    parser.add_argument(
        "--no-conversation",
        dest="conversation",
        action="store_false",
        help="skip the conversation with the probe user (a bot without one is probed at its own level anyway)",
    )


def report_probe(runner: Runner, title: str, checks: list[Check], *, as_json: bool = False, commit: str = "") -> None:
    document = {"title": title, "commit": commit, "checks": [c.__dict__ for c in checks]}
    report(runner, Report(title, PROBE_HEADERS, summary_rows(checks), document), as_json=as_json)


def printer(as_json: bool) -> Callable[[str], None]:
    """Progress lines for humans; nothing with --json (stdout is one JSON document then)."""
    return (lambda line: None) if as_json else (lambda line: say(f"  {line}"))


def tell_owner(ctx: Context, env: Environment, text: str) -> None:
    """The owner hears it in Telegram; a failure to tell is a warning, never the run's failure."""
    if not ctx.optional("OWNER_CHAT_ID"):
        return  # not set up: nothing to say on every run
    warning = notify(ctx, env, text)
    if warning:
        say(f"⚠ {warning}")
        ctx.runner.annotate("warning", warning, title="owner not told")
    else:
        say(f"  the owner was told in Telegram by @{env.bot_username}")


def ask(prompt: str, *, secret: bool = False, default: str = "") -> str | None:
    """The owner's answer in a terminal (a secret without echo; Enter takes ``default``), or None
    when nobody can answer (no terminal: a workflow, a pipe; or its input ended, Ctrl-D): the
    caller names what to set instead."""
    if not sys.stdin.isatty():
        return None
    shown = f"{prompt} [{default}]: " if default else f"{prompt}: "
    try:
        answer = (getpass.getpass(shown) if secret else input(shown)).strip()
    except EOFError:
        print(file=sys.stderr)  # the line the prompt left open
        return None
    return answer or default


# -- what the memory commands (memory copy/restore/seed, send-back) report --------------------------


def add_write_flags(parser: argparse.ArgumentParser, stage_help: str = "") -> None:
    """``--apply`` and ``--mode`` (the same, as a workflow input), and ``--stage`` when it has a help."""
    parser.add_argument("--apply", action="store_true", help="write (the default is a dry run)")
    parser.add_argument("--mode", choices=("dry-run", "apply"), help="the same, as a workflow input")
    if stage_help:
        parser.add_argument("--stage", type=Stage, choices=list(Stage), default=Stage.ALL, help=stage_help)


def wants_apply(args: argparse.Namespace) -> bool:
    """--apply or --mode apply; both of them contradicting each other is refused."""
    if args.apply and args.mode == "dry-run":
        raise InputError("--apply contradicts --mode dry-run", hint="pass one of them")
    return bool(args.apply or args.mode == "apply")


def resume_command() -> str:
    return "ci-tools " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "the same command"


UNDO_COMMANDS = {"send-back": "ci-tools send-back --undo {backup} --apply"}  # else memory undo


def undo_hint(ctx: Context, backup: Path | None, workflow: str = "migrate-memory") -> str:
    """How to undo: in Actions, the dispatch that finds this run's artifact; else the file."""
    if ctx.runner.active:
        run_id = ctx.runner.run_id or "?"
        first = "dry-run" if workflow == "restore-memory" else "undo-dry-run"
        return f"Actions → {workflow} → Run workflow: mode undo (after {first}), run_id {run_id}"
    return UNDO_COMMANDS.get(workflow, "ci-tools memory undo {backup} --apply").format(backup=backup)


def undo_command(ctx: Context, workflow: str = "migrate-memory") -> str:
    """``undo_hint`` before the backup is named: what a write that fails part-way prints (JobOptions)."""
    return undo_hint(ctx, Path("{backup}"), workflow)


def report_outcome(
    ctx: Context,
    outcome: Outcome,
    as_json: bool,
    title: str,
    *,
    words: dict[str, str] | None = None,
    workflow: str = "migrate-memory",
) -> None:
    words = words or {}
    counts = {words.get(a, a): n for a, n in outcome.counts().items()}
    left = [k.decode(errors="replace") for k in outcome.uncovered]
    document = {
        "applied": outcome.applied,
        "stage": str(outcome.stage),
        "plan": [item.as_dict() for item in outcome.plan],
        "counts": counts,
        "uncovered": left,
        "uncovered_policy": outcome.uncovered_policy,
        "snapshot": str(outcome.snapshot) if outcome.snapshot else None,
        "backup": str(outcome.backup) if outcome.backup else None,
        "undo": undo_hint(ctx, outcome.backup, workflow) if outcome.applied else None,
        "written": len(outcome.written),
        "expired_during_copy": [k.decode(errors="replace") for k in outcome.expired],
        "left_alone_changed": [k.decode(errors="replace") for k in outcome.changed],
        "verified": outcome.verified,
        "fallback_typed_writes": outcome.fallback,
        "timings_s": {k: round(v, 4) for k, v in outcome.timings.items()},
        "warnings": outcome.warnings,
    }
    rows = [
        [
            words.get(i.action, i.action),
            i.target_key.decode(errors="replace"),
            i.type,
            str(i.size),
            _ttl(i.ttl_ms),
            i.reason,
        ]
        for i in outcome.plan
    ]
    why = "left behind (--ignore-uncovered)" if outcome.uncovered_policy is Uncovered.IGNORE else "matches no pattern"
    rows += [["uncovered", key, "", "", "", why] for key in left]
    planned = outcome.stage is Stage.PLAN
    mode = (
        "applied"
        if outcome.applied
        else "planned and backed up — nothing written yet"
        if planned
        else "dry run — nothing written"
    )
    notes = [", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "nothing to copy"]
    for warning in outcome.warnings:
        notes.insert(0, warning)
        ctx.runner.annotate("warning", warning.removeprefix("⚠ "), title=title)
    if left and outcome.uncovered_policy is Uncovered.REFUSE:
        notes.append(
            f"{len(left)} key(s) of this user match no pattern: --apply refuses until you pass "
            "--include-uncovered (copy them too) or --ignore-uncovered (leave them)"
        )
    elif left:
        notes.append(f"{len(left)} key(s) of this user were left in the source, as asked (--ignore-uncovered)")
    if outcome.applied:
        notes += [
            f"snapshot: {outcome.snapshot}",
            f"backup:   {outcome.backup}",
            f"undo:     {undo_hint(ctx, outcome.backup, workflow)}",
            f"written {len(outcome.written)}, verified {outcome.verified}"
            + (", typed writes (target refused DUMP payloads)" if outcome.fallback else ""),
        ]
        if outcome.expired:
            notes.append(f"{len(outcome.expired)} key(s) expired during the copy and were not written")
        for key in outcome.changed[:20]:
            notes.append(
                f"{key.decode(errors='replace')} changed during the write: left as the user's newer memory; "
                "run again to write it"
            )
        if len(outcome.changed) > 20:
            notes.append(f"… and {len(outcome.changed) - 20} more key(s) left alone for the same reason")
    elif planned:
        notes += [
            f"snapshot: {outcome.snapshot}",
            f"backup:   {outcome.backup} (with the plan and every key's guard)",
            f"undo:     {undo_hint(ctx, outcome.backup, workflow)} — it exists before anything is written",
            "write with the same command and --stage write, once the backup is kept off this machine",
        ]
    else:
        notes.append("dry run: rerun with --apply to write")
    headers = ["action", "target key", "type", "size", "TTL", "note"]
    report(ctx.runner, Report(f"{title} ({mode})", headers, rows, document, notes), as_json=as_json)


def _ttl(ms: int | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.0f}s"
