"""``ci-tools check-bot [PATH] [--service NAME]``: which level of the bot contract your bot reaches.

Builds and starts the bot of PATH with its own render.yaml commands against a local Telegram
stand-in and a private Redis (sandbox/, as ``ci-tools rehearse`` uses them), then prints each
contract item ✓/✗ with its fix and the level reached (docs/CHECK-BOT.md). Exit 0 when the bot
meets at least the base level. Nothing outside this machine is touched, and everything it
started is stopped before it returns, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ci_tools.cli._common import printer
from ci_tools.context import Context
from ci_tools.errors import ConfigError, InputError, VerificationError
from ci_tools.output import Report, report, say
from ci_tools.pipeline.check_bot import CheckRequest, Outcome, StandIns, check_bot
from ci_tools.settings import load_config

if TYPE_CHECKING:
    from sandbox.redis import RedisServer

HEADERS = ["", "level", "item", "seen", "fix"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    check = subparsers.add_parser("check-bot")
    check.add_argument("path", nargs="?", type=Path, default=Path("."), help="the bot's repository (default: here)")
    check.add_argument("--service", help="the render.yaml web service to run (needed when it has several)")
    check.add_argument("--health-path", help="the health check path to look at (default: the service's, else /healthz)")
    check.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for each step (start, webhook, a reply)"
    )
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(func=run)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from sandbox.redis import RedisServer  # optional: the stand-ins ship with a checkout, not the wheel
    from sandbox.telegram import FakeTelegram  # optional: the stand-ins ship with a checkout, not the wheel

    path: Path = args.path
    if not path.is_dir():
        raise InputError(f"{path} is not a folder", hint="give the bot's repository: ci-tools check-bot PATH")
    request = CheckRequest(path.resolve(), args.service or staging_service(path), args.health_path, args.timeout)
    with (
        FakeTelegram() as telegram,
        RedisServer() as redis_server,
        tempfile.TemporaryDirectory(prefix="ci-tools-check-bot-") as work,
    ):
        fake = telegram.add_bot("check_bot_stand_in_bot")
        prefix = f"/bot{fake.token}/"

        def deliver(user_id: int, text: str) -> int | None:
            answered = telegram.send_user_message(fake, user_id, text)
            return answered.status_code if answered is not None else None

        stand_ins = StandIns(
            telegram_url=telegram.url,
            token=fake.token,
            calls=lambda: [p.removeprefix(prefix) for _, p in list(telegram.requests) if p.startswith(prefix)],
            webhook=lambda: (fake.webhook_url, fake.webhook_secret),
            deliver=deliver,
            replies=lambda user_id: telegram.replies_to(fake, user_id),
            redis_url=redis_server.url,
            stop_redis=redis_server.stop,
            start_redis=lambda: _restart(redis_server),
        )
        if not args.json:  # with --json, stdout is the one JSON document
            say(f"checking the bot of {request.tree} against local stand-ins (nothing outside this machine is touched)")
        outcome = check_bot(request, stand_ins, ctx.child, Path(work), on_status=printer(args.json))
    show(ctx, outcome, as_json=args.json)
    if outcome.level is None:
        unmet = next((c for c in outcome.checks if c.ok is not True and not c.info), None)
        said = f"{unmet.name}: {unmet.detail}" if unmet else "no item was met"
        raise VerificationError(f"the bot does not reach the base level ({said})", hint=unmet.fix if unmet else None)
    return 0


def _restart(server: RedisServer) -> None:
    server.start()  # on the port it had: the bot reconnects to the same URL


def show(ctx: Context, outcome: Outcome, *, as_json: bool) -> None:
    rows = [[c.mark, c.level, c.name, c.detail, "" if c.ok is True else c.fix] for c in outcome.checks]
    notes = [f"level reached: {outcome.level or 'none'} (service {outcome.service})"]
    if outcome.level is None and outcome.log_tail:
        notes.append("the bot's last lines:\n" + "\n".join(f"  {line}" for line in outcome.log_tail[-10:]))
    document = {
        "level": outcome.level,
        "service": outcome.service,
        "checks": [c.__dict__ for c in outcome.checks],
    }
    report(ctx.runner, Report("check-bot", HEADERS, rows, document, notes), as_json=as_json)


def staging_service(path: Path) -> str | None:
    """An adopted repository's render.yaml has two web services that build and start alike
    (``config check`` holds them to it): check the staging one, the one that runs first. None
    where the tree has no pipeline configuration (its single web service is taken, or asked for)."""
    pyproject = path / "pyproject.toml"
    if not pyproject.is_file():
        return None
    try:
        environments = load_config(pyproject).environments
    except ConfigError:
        return None  # not (yet) a valid pipeline configuration: the render.yaml alone decides
    staging = environments.get("staging") or next(iter(environments.values()), None)
    return staging.render_service if staging else None
