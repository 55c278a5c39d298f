"""``ci-tools preflight|cutover|announce|acceptance|rehearse``: the migration plan as commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from ci_tools import github
from ci_tools.acceptance import acceptance
from ci_tools.announce import announce
from ci_tools.checklist import report
from ci_tools.config import load_config
from ci_tools.cutover import cutover
from ci_tools.deploy import parse_commit
from ci_tools.errors import VerificationError
from ci_tools.memory.ids import parse_user_id
from ci_tools.needs import Needs
from ci_tools.output import say, table
from ci_tools.preflight import preflight
from ci_tools.rehearse import rehearse

PER_ENV = ("TELEGRAM_BOT_TOKEN", "REDIS_URL", "RENDER_SERVICE_ID")
PREFLIGHT_NEEDS = Needs(
    optional=(
        *(f"{env}_{name}" for env in ("STAGING", "PRODUCTION") for name in PER_ENV),
        "RENDER_API_KEY",
    )
)
CUTOVER_NEEDS = Needs(
    required=(
        "NEW_TELEGRAM_BOT_TOKEN",
        "RENDER_API_KEY",
        "RENDER_SERVICE_ID",
        "RENDER_DEPLOY_HOOK_URL",
    )
)
ANNOUNCE_NEEDS = Needs(required=("TELEGRAM_BOT_TOKEN",))
ACCEPTANCE_NEEDS = Needs(optional=("TELEGRAM_BOT_TOKEN", "REDIS_URL"))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    pre = subparsers.add_parser(
        "preflight", help="phase 0: check which service, token and Redis belong together"
    )
    pre.add_argument("--json", action="store_true")
    pre.set_defaults(func=preflight_command, needs=PREFLIGHT_NEEDS)

    cut = subparsers.add_parser(
        "cutover", help="phase 2: give production the new bot's token, deploy main, probe"
    )
    cut.add_argument("--commit", required=True, help="the main commit to deploy")
    cut.add_argument("--timeout", type=float, default=900)
    cut.add_argument("--deadline", type=float, default=90, help="probe deadline")
    cut.set_defaults(func=cutover_command, needs=CUTOVER_NEEDS)

    ann = subparsers.add_parser(
        "announce", help="phase 4: the old bot tells the user where the new bot is"
    )
    ann.add_argument("--chat-id", required=True, help="the user's Telegram id")
    ann.add_argument("--text", help="default: 'Official bot moved here: https://t.me/<new bot>'")
    ann.set_defaults(func=announce_command, needs=ANNOUNCE_NEEDS)

    acc = subparsers.add_parser(
        "acceptance", help="the plan's acceptance checklist, checked for real"
    )
    acc.add_argument("--user-id", required=True)
    acc.add_argument("--snapshot", type=Path, help="the snapshot the memory copy wrote")
    acc.add_argument(
        "--since", type=float, help="epoch seconds of the cutover (default: the snapshot's time)"
    )
    acc.add_argument("--json", action="store_true")
    acc.set_defaults(func=acceptance_command, needs=ACCEPTANCE_NEEDS)

    reh = subparsers.add_parser(
        "rehearse", help="run the whole plan locally against stand-ins (under a minute)"
    )
    reh.add_argument(
        "--keep", type=Path, help="keep the sandbox's files (logs, snapshots) in this folder"
    )
    reh.add_argument(
        "--threads", action="store_true", help="run bots in threads instead of processes (faster)"
    )
    reh.set_defaults(func=rehearse_command)


def preflight_command(args: argparse.Namespace) -> int:
    report("Preflight", preflight(load_config()), as_json=args.json)
    return 0


def cutover_command(args: argparse.Namespace) -> int:
    username = cutover(load_config(), parse_commit(args.commit), timeout=args.timeout, deadline=args.deadline,
                       on_status=lambda line: say(f"  {line}"))  # fmt: skip
    say(f"✓ production now runs @{username}")
    github.add_summary(f"### Cutover\n\n✓ production runs @{username}")
    return 0


def announce_command(args: argparse.Namespace) -> int:
    sent = announce(
        load_config(), args.secrets["TELEGRAM_BOT_TOKEN"], parse_user_id(args.chat_id), args.text
    )
    say(f"✓ sent: {sent}")
    return 0


def acceptance_command(args: argparse.Namespace) -> int:
    items = acceptance(load_config(), parse_user_id(args.user_id), args.snapshot, args.since)
    report("Acceptance", items, as_json=args.json)
    return 0


def rehearse_command(args: argparse.Namespace) -> int:
    say(
        "rehearsing the migration plan against local stand-ins (nothing outside this machine is touched)"
    )
    phases = rehearse(process=not args.threads, keep=args.keep)
    rows = [
        [{True: "✓", False: "✗", None: "·"}[p.ok], p.name, f"{p.seconds:.1f}s", p.detail]
        for p in phases
    ]
    table("Rehearsal", ["", "phase", "time", "what happened"], rows)
    github.add_summary(
        "### Rehearsal\n\n" + github.markdown_table(["", "phase", "time", "what happened"], rows)
    )
    failed = [p for p in phases if p.ok is not True]
    if failed:
        raise VerificationError(f"the rehearsal stopped at: {failed[0].name}: {failed[0].detail}")
    say(f"✓ all {len(phases)} phases passed in {sum(p.seconds for p in phases):.0f}s")
    return 0
