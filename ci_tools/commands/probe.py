"""``ci-tools probe ENV --commit SHA``: read-only smoke checks of the deployed bot, all at once."""

from __future__ import annotations

import argparse
import time

from ci_tools.commands._common import TOKEN, report_probe
from ci_tools.config import load_config
from ci_tools.deploy import parse_commit
from ci_tools.needs import Needs
from ci_tools.release import ReleaseRequest, probe_or_fail


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("probe", help="smoke-test the deployed bot (read-only)")
    p.add_argument("environment")
    p.add_argument("--commit", required=True, help="the commit the service must run")
    p.add_argument(
        "--deadline", type=float, default=90, help="seconds to keep retrying failing checks"
    )
    p.add_argument("--since", type=float,
                   help="epoch seconds the deploy started (older webhook errors are ignored)")  # fmt: skip
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run, needs=Needs(required=TOKEN))


def run(args: argparse.Namespace) -> int:
    config = load_config()
    commit = parse_commit(args.commit)
    request = ReleaseRequest(config.env(args.environment), commit, args.secrets["TELEGRAM_BOT_TOKEN"],
                             deadline=args.deadline)  # fmt: skip
    since = args.since if args.since is not None else _ten_minutes_ago()
    probe_or_fail(request, config, commit, since, f"Probe of {request.env.name} at {commit[:12]}",
                  lambda title, checks: report_probe(title, checks, as_json=args.json, commit=commit))  # fmt: skip
    return 0


def _ten_minutes_ago() -> float:
    """Without --since, webhook errors older than ten minutes are history, not this deploy's."""
    return time.time() - 600
