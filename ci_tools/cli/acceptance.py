"""``ci-tools acceptance --user-id ID``: the plan's acceptance checklist, checked for real."""

from __future__ import annotations

import argparse
from pathlib import Path

from ci_tools.checklist import report
from ci_tools.context import Context
from ci_tools.memory.keys import parse_user_id
from ci_tools.needs import Needs
from ci_tools.pipeline.acceptance import acceptance


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    acc = subparsers.add_parser("acceptance")
    acc.add_argument("--user-id", required=True)
    acc.add_argument("--snapshot", type=Path, help="the snapshot the memory copy wrote")
    acc.add_argument("--since", type=float, help="epoch seconds of the cutover (default: the snapshot's time)")
    acc.add_argument("--json", action="store_true")
    acc.set_defaults(
        func=run,
        needs=Needs(
            optional=(
                "TELEGRAM_BOT_TOKEN",
                "TELEGRAM_WEBHOOK_SECRET",
                "REDIS_URL",
                "RENDER_API_KEY",
                "RENDER_SERVICE_ID",
                "GITHUB_TOKEN",
                "GH_TOKEN",
                "MEMORY_SNAPSHOT_KEY",  # opens an encrypted --snapshot
            )
        ),
    )


def run(ctx: Context, args: argparse.Namespace) -> int:
    items = acceptance(ctx, parse_user_id(args.user_id), args.snapshot, args.since)
    report(ctx.runner, "Acceptance", items, as_json=args.json)
    return 0
