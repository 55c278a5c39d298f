"""``ci-tools deploy|probe|rollback``: ship a commit, prove the bot works, undo a bad release."""

from __future__ import annotations

import argparse
import time

from ci_tools import github
from ci_tools.config import load_config
from ci_tools.deploy import deploy, parse_commit
from ci_tools.errors import InputError, VerificationError
from ci_tools.needs import Needs
from ci_tools.output import emit_json, say, table
from ci_tools.probe import Probe, run_probe, summary_rows
from ci_tools.rollback import rollback

# What each command reads (tests/test_workflows.py checks every workflow step provides them).
RENDER_OPTIONAL = ("RENDER_API_KEY", "RENDER_SERVICE_ID")
DEPLOY_NEEDS = Needs(optional=("RENDER_DEPLOY_HOOK_URL", *RENDER_OPTIONAL))
PROBE_NEEDS = Needs(required=("TELEGRAM_BOT_TOKEN",))
RELEASE_NEEDS = Needs(required=("TELEGRAM_BOT_TOKEN",), optional=DEPLOY_NEEDS.optional)
ROLLBACK_NEEDS = Needs(required=("RENDER_API_KEY", "RENDER_SERVICE_ID", "TELEGRAM_BOT_TOKEN"))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    d = subparsers.add_parser("deploy", help="deploy a commit and wait until it is live")
    d.add_argument("environment", help="staging or production")
    d.add_argument("--commit", required=True, help="the full commit SHA")
    d.add_argument(
        "--timeout", type=float, default=900, help="seconds to wait for live (default 900)"
    )
    d.add_argument(
        "--allow-other-branch",
        action="store_true",
        help="staging only: a commit from a feature branch",
    )
    d.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=deploy_command, needs=DEPLOY_NEEDS)

    rel = subparsers.add_parser(
        "release",
        help="deploy, probe, and in production roll back when the probe fails (exit non-zero)",
    )
    rel.add_argument("environment")
    rel.add_argument("--commit", required=True)
    rel.add_argument("--timeout", type=float, default=900)
    rel.add_argument("--deadline", type=float, default=90, help="probe deadline")
    rel.add_argument("--allow-other-branch", action="store_true", help="staging only")
    rel.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    rel.set_defaults(func=release_command, needs=RELEASE_NEEDS)

    p = subparsers.add_parser("probe", help="smoke-test the deployed bot (read-only)")
    p.add_argument("environment")
    p.add_argument("--commit", required=True, help="the commit the service must run")
    p.add_argument(
        "--deadline", type=float, default=90, help="seconds to keep retrying failing checks"
    )
    p.add_argument(
        "--since",
        type=float,
        help="epoch seconds the deploy started (older webhook errors are ignored)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=probe_command, needs=PROBE_NEEDS)

    r = subparsers.add_parser("rollback", help="roll back to an earlier deploy, then probe")
    r.add_argument("environment")
    target = r.add_mutually_exclusive_group()
    target.add_argument("--to", dest="deploy_id", help="the deploy id to go back to (dep-…)")
    target.add_argument(
        "--previous", action="store_true", help="the deploy live before the current one (default)"
    )
    r.add_argument("--timeout", type=float, default=900)
    r.add_argument("--deadline", type=float, default=90, help="probe deadline")
    r.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=rollback_command, needs=ROLLBACK_NEEDS)


def deploy_command(args: argparse.Namespace) -> int:
    env = load_config().env(args.environment)
    commit = parse_commit(args.commit)
    started_at = time.time()
    log = (lambda line: None) if args.json else (lambda line: say(f"  {line}"))
    if not args.json:
        say(f"deploying {commit[:12]} to {env.name} ({env.render_service})")
    result = deploy(
        env,
        commit,
        timeout=args.timeout,
        allow_other_branch=args.allow_other_branch,
        poll=args.poll,
        on_status=log,
    )
    github.set_output("deploy_id", result.deploy_id or "")
    github.set_output("previous_deploy_id", result.previous_deploy_id or "")
    github.set_output("started_at", str(int(started_at)))
    github.add_summary(
        f"### Deploy to {env.name}\n\n✓ `{commit[:12]}` is live ({result.followed}, {result.waited_s:.0f}s)"
        f"; deploy `{result.deploy_id or '?'}`, replaced `{result.previous_deploy_id or 'unknown'}`"
    )
    if args.json:
        emit_json({**result.__dict__, "started_at": int(started_at)})
    else:
        say(f"✓ {commit[:12]} is live on {env.name} after {result.waited_s:.0f}s")
    return 0


def _probe(
    env_name: str,
    commit: str,
    token: str,
    deadline: float,
    since: float | None,
    as_json: bool,
    title: str,
) -> None:
    config = load_config()
    env = config.env(env_name)
    checks = run_probe(Probe(env, commit, config, token, since=since, deadline=deadline))
    rows = summary_rows(checks)
    github.add_summary(
        f"### {title}\n\n"
        + github.markdown_table(["", "check", "seen", "likely cause", "time"], rows)
    )
    if as_json:
        emit_json(
            {"environment": env.name, "commit": commit, "checks": [c.__dict__ for c in checks]}
        )
    else:
        table(title, ["", "check", "seen", "likely cause", "time"], rows)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise VerificationError(
            f"{len(failed)} of {len(checks)} probe checks failed on {env.name}: "
            + "; ".join(f"{c.name}: {c.cause or c.detail}" for c in failed)
        )


def probe_command(args: argparse.Namespace) -> int:
    commit = parse_commit(args.commit)
    _probe(
        args.environment,
        commit,
        args.secrets["TELEGRAM_BOT_TOKEN"],
        args.deadline,
        args.since,
        args.json,
        f"Probe of {args.environment} at {commit[:12]}",
    )
    return 0


def rollback_command(args: argparse.Namespace) -> int:
    env = load_config().env(args.environment)
    if args.deploy_id is not None and not args.deploy_id.strip().startswith("dep-"):
        raise InputError(
            f"--to {args.deploy_id!r} is not a deploy id", hint="deploy ids look like dep-…"
        )
    log = (lambda line: None) if args.json else (lambda line: say(f"  {line}"))
    target, final = rollback(
        env,
        to=(args.deploy_id or "").strip() or None,
        timeout=args.timeout,
        poll=args.poll,
        on_status=log,
    )
    github.add_summary(
        f"### Rollback of {env.name}\n\nback to `{target.id}` (`{str(target.commit)[:12]}`), now live as `{final.id}`"
    )
    if not args.json:
        say(f"✓ {env.name} is back on {str(target.commit)[:12]} ({final.id}); probing")
    _probe(
        env.name,
        str(target.commit),
        args.secrets["TELEGRAM_BOT_TOKEN"],
        args.deadline,
        time.time(),
        args.json,
        f"Probe of {env.name} after rollback",
    )
    return 0


def release_command(args: argparse.Namespace) -> int:
    """The whole of deploy.yml in one tested command."""
    env = load_config().env(args.environment)
    commit = parse_commit(args.commit)
    started_at = time.time()
    say(f"releasing {commit[:12]} to {env.name}")
    result = deploy(
        env, commit, timeout=args.timeout, allow_other_branch=args.allow_other_branch, poll=args.poll,
        on_status=lambda line: say(f"  {line}"),
    )  # fmt: skip
    github.set_output("deploy_id", result.deploy_id or "")
    github.set_output("previous_deploy_id", result.previous_deploy_id or "")
    say(f"✓ live after {result.waited_s:.0f}s; probing")
    try:
        _probe(
            env.name,
            commit,
            args.secrets["TELEGRAM_BOT_TOKEN"],
            args.deadline,
            started_at,
            False,
            f"Probe of {env.name} at {commit[:12]}",
        )
    except VerificationError as failure:
        if env.name != "production":
            raise
        if not result.previous_deploy_id:
            raise VerificationError(
                f"{failure.message}; no earlier deploy was recorded, so nothing was rolled back",
                hint="roll back by hand from the dashboard, or set RENDER_API_KEY so deploys are recorded",
            ) from None
        say(f"✗ the probe failed; rolling back to {result.previous_deploy_id}")
        github.annotate("error", failure.message, title=f"{env.name} probe failed: rolling back")
        target, final = rollback(
            env, to=result.previous_deploy_id, timeout=args.timeout, poll=args.poll,
            on_status=lambda line: say(f"  {line}"),
        )  # fmt: skip
        try:
            _probe(
                env.name,
                str(target.commit),
                args.secrets["TELEGRAM_BOT_TOKEN"],
                args.deadline,
                time.time(),
                False,
                f"Probe of {env.name} after rollback",
            )
            after = "the rollback probe passed"
        except VerificationError as second:
            after = f"the probe after rollback failed too: {second.message}"
        raise VerificationError(
            f"{commit[:12]} failed its probe on {env.name} and was rolled back to {str(target.commit)[:12]} "
            f"({final.id}); {after}",
            hint="fix forward on develop; a person must look at this release",
        ) from None
    return 0
