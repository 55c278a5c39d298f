"""``ci-tools cutover [--back | --finish] [--env ENV]``: runbook step 5 — production (or staging) gets
the new bot's token — its undo within the rollback window, and closing the window after it."""

from __future__ import annotations

import argparse

from ci_tools.cli._common import printer
from ci_tools.context import Context
from ci_tools.errors import ConfigError, InputError
from ci_tools.needs import Needs
from ci_tools.output import Report, report
from ci_tools.pipeline.cutover import PREVIOUS_TOKEN_VAR, CutoverRequest, CutoverResult, back, finish, forward, target
from ci_tools.pipeline.deploy import parse_commit

NEEDS = Needs(
    required=("RENDER_API_KEY", "RENDER_SERVICE_ID"),
    # forward needs the new token; back may take the previous one (default: the one cutover kept)
    optional=(
        "NEW_TELEGRAM_BOT_TOKEN",
        "PREVIOUS_TELEGRAM_BOT_TOKEN",
        "TELEGRAM_WEBHOOK_SECRET",
        "RENDER_DEPLOY_HOOK_URL",
    ),
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    cut = subparsers.add_parser("cutover")
    cut.add_argument(
        "--env",
        dest="env_name",
        default="",
        metavar="ENV",
        help="whose bot (default: the cutover target, production; staging for its new bot)",
    )
    cut.add_argument("--commit", help="the commit of the environment's branch to deploy (not for --finish)")
    cut.add_argument(
        "--finish", action="store_true", help="after the rollback window: forget the previous bot on the service"
    )
    cut.add_argument("--now", action="store_true", help="--finish before the window ends (with --yes)")
    cut.add_argument("--yes", action="store_true", help="confirm --now")
    cut.add_argument(
        "--back", action="store_true", help="put the previous bot's token back (within the rollback window)"
    )
    cut.add_argument("--after-window", action="store_true", help="--back even after the rollback window")
    cut.add_argument("--timeout", type=float, default=900)
    cut.add_argument("--deadline", type=float, default=90, help="probe deadline")
    cut.add_argument("--poll", type=float, help=argparse.SUPPRESS)
    cut.set_defaults(func=run, needs=NEEDS)


def run(ctx: Context, args: argparse.Namespace) -> int:
    secrets = ctx.secrets
    if args.now and not args.yes:
        raise InputError(
            "--now closes the rollback window early: the old bot can no longer come back",
            hint="add --yes if that is what you want",
        )
    if not args.finish and not args.commit:
        raise InputError("--commit is needed to deploy", hint="pass the commit of the environment's branch")
    request = CutoverRequest(
        commit=parse_commit(args.commit) if args.commit else "",
        api_key=secrets["RENDER_API_KEY"],
        service_id=secrets["RENDER_SERVICE_ID"],
        webhook_secret=secrets.get("TELEGRAM_WEBHOOK_SECRET"),
        env_name=args.env_name,
        timeout=args.timeout,
        deadline=args.deadline,
        poll=ctx.poll_seconds(2.0) if args.poll is None else args.poll,
    )
    if args.finish:
        return _finished(ctx, request, now=args.now)
    if args.back:
        result = back(
            ctx, request, secrets.get(PREVIOUS_TOKEN_VAR), after_window=args.after_window, on_status=printer(False)
        )
        return _report(ctx, result, "Cutover undone", "answers as the previous bot again", request)
    if "NEW_TELEGRAM_BOT_TOKEN" not in secrets:
        raise ConfigError(
            "missing secret NEW_TELEGRAM_BOT_TOKEN (the new bot's token)",
            hint="set it in the environment's secrets, or pass --back to undo a cutover",
        )
    result = forward(ctx, request, secrets["NEW_TELEGRAM_BOT_TOKEN"], on_status=printer(False))
    return _report(ctx, result, "Cutover", "answers as the new bot", request)


def _finished(ctx: Context, request: CutoverRequest, *, now: bool) -> int:
    env = target(ctx, request)
    forgotten, ends = finish(ctx, request, now=now)
    when = f"the window ended {ends:%Y-%m-%d}" if ends else "no window was recorded"
    rows = [
        [
            "✓",
            f"{env.name} forgot the previous bot",
            f"{forgotten} ({when}{', closed early' if now else ''})",
        ]
    ]
    report(
        ctx.runner,
        Report(
            f"Rollback window of {env.name} closed",
            ["", "", ""],
            rows,
            notes=[
                f"✓ rollback window closed: {forgotten} can no longer come back with cutover --back; "
                "the bot itself was left alone"
            ],
        ),
    )
    return 0


def _report(ctx: Context, result: CutoverResult, title: str, what: str, request: CutoverRequest) -> int:
    env = target(ctx, request)
    rows = [["✓", f"{env.name} answers as", f"@{result.now.username} (id {result.now.id})"]]
    ctx.runner.set_output("bot", result.now.username)
    if result.replaced:
        ctx.runner.set_output("previous_bot", result.replaced.username)
        rows.append(
            [
                "",
                "it replaced",
                f"@{result.replaced.username} (id {result.replaced.id}); "
                f"its token is kept on the {env.name} service as {PREVIOUS_TOKEN_VAR}",
            ]
        )
    notes = [f"✓ {env.name} {what}: @{result.now.username}"]
    if result.window_ends:
        ctx.runner.set_output("window_ends", result.window_ends.isoformat())
        notes.append(f"old bot kept until {result.window_ends:%Y-%m-%d}; `ci-tools cutover --back` available")
    report(ctx.runner, Report(title, ["", "", ""], rows, notes=notes))
    return 0
