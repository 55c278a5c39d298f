"""``ci-tools github setup|check|dispatch``: the environments, secrets, rulesets and settings, as
code; and the scheduler's dispatch of ``main``'s scheduled workflows."""

from __future__ import annotations

import argparse
from pathlib import Path

from ci_tools.checklist import report as report_checklist
from ci_tools.clients.github_rest import GitHubAPI
from ci_tools.context import Context
from ci_tools.errors import ConfigError
from ci_tools.needs import Needs
from ci_tools.output import Report, report, say
from ci_tools.redact import redact
from ci_tools.repo.github import check, plan, secret_values
from ci_tools.repo.owner_files import read_dotenv
from ci_tools.repo.scheduler import dispatch_ref, due

NEEDS = Needs(optional=("GITHUB_TOKEN", "GH_TOKEN"))
# setup also reads STAGING_<NAME> / PRODUCTION_<NAME> for every secret the workflows use
SETUP_NEEDS = Needs(optional=NEEDS.optional, prefixed=True)
DISPATCH_NEEDS = Needs(required=("GITHUB_TOKEN",))  # scheduler.yml's: github.token with actions: write


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("github")
    sub = parser.add_subparsers(dest="github_command", required=True, metavar="ACTION")
    setup = sub.add_parser("setup", help="create or fix everything (a dry run that lists the changes unless --apply)")
    setup.add_argument("--repo", help="OWNER/NAME (default: $GITHUB_REPOSITORY)")
    setup.add_argument(
        "--secrets-file",
        type=Path,
        help="dotenv file with STAGING_<NAME>=… / PRODUCTION_<NAME>=… (default: the .env `ci-tools init` wrote, "
        "and the environment)",
    )
    setup.add_argument("--update-secrets", action="store_true", help="also rewrite secrets that exist")
    setup.add_argument(
        "--production-secrets-in-repository",
        action="store_true",
        help="private repository on GitHub Free only (no environments): store production's secrets as repository "
        "secrets too, accepting that every pushed branch's workflow can read them (default: withheld; release "
        "production from your machine)",
    )
    setup.add_argument("--apply", action="store_true")
    setup.add_argument("--json", action="store_true")
    setup.set_defaults(func=run_setup, needs=SETUP_NEEDS)
    checking = sub.add_parser("check", help="read it all back and judge it, ✓/✗ with the fix")
    checking.add_argument("--repo", help="OWNER/NAME (default: $GITHUB_REPOSITORY)")
    checking.add_argument("--json", action="store_true")
    checking.set_defaults(func=run_check, needs=NEEDS)
    dispatch = sub.add_parser(
        "dispatch",
        help="start workflows on main (scheduler.yml: scheduled production work runs main's code, not develop's)",
    )
    which = dispatch.add_mutually_exclusive_group(required=True)
    which.add_argument("--schedule", help="the cron that fired (github.event.schedule): its workflows")
    which.add_argument("--workflow", action="append", help="a workflow file to start, e.g. backup.yml (repeatable)")
    dispatch.add_argument("--ref", help="the ref they run on (default: the production branch, main)")
    dispatch.add_argument("--repo", help="OWNER/NAME (default: $GITHUB_REPOSITORY)")
    dispatch.set_defaults(func=run_dispatch, needs=DISPATCH_NEEDS)


WITHHELD = (
    "production's secrets are withheld: this plan has no environments, and every pushed branch's workflow "
    "reads every repository secret — release production from your machine, make the repository public or "
    "upgrade, or pass --production-secrets-in-repository to accept it"
)


def _kept(ctx: Context) -> dict[str, str]:
    """What `ci-tools init` kept in .env beside pyproject.toml (nothing when there is none)."""
    return read_dotenv(ctx.config.path.parent / ".env")


def _secrets_file(ctx: Context, args: argparse.Namespace) -> Path | None:
    if args.secrets_file is not None:
        return Path(args.secrets_file)
    default = ctx.config.path.parent / ".env"
    return default if default.is_file() else None


def _api(ctx: Context, args: argparse.Namespace) -> GitHubAPI:
    token = ctx.github_token()
    if not token:
        raise ConfigError(
            "missing secret GITHUB_TOKEN (or GH_TOKEN)",
            hint="export a token with admin rights on the repository",
        )
    repo = args.repo or ctx.runner.repository or _kept(ctx).get("GITHUB_REPOSITORY", "")
    if not repo:
        raise ConfigError("which repository? pass --repo OWNER/NAME", hint="or set GITHUB_REPOSITORY")
    return ctx.github(token, repo)


def run_setup(ctx: Context, args: argparse.Namespace) -> int:
    config = ctx.config
    root = config.path.parent
    secrets_file = _secrets_file(ctx, args)
    with _api(ctx, args) as api:
        changes = plan(
            api,
            config,
            root,
            secret_values(config, secrets_file, ctx.secrets),
            update_secrets=args.update_secrets,
            production_in_repository=args.production_secrets_in_repository,
            complete=secrets_file is not None,  # init's .env: all staging may hold
        )
        withheld = not args.production_secrets_in_repository and not api.capabilities().environments
        if args.apply:
            for change in changes:
                change.apply(api)
    state = "applied" if args.apply else "dry run: rerun with --apply"
    rows = [["✓" if args.apply else "→", c.what] for c in changes]
    notes = [f"{len(changes)} change(s), {state}" if changes else "nothing to change: GitHub is as the repository says"]
    if withheld:
        notes.append(WITHHELD)
    report(
        ctx.runner,
        Report(
            f"GitHub setup of {api.repo}",
            ["", "change"],
            rows,
            {"applied": args.apply, "changes": [c.what for c in changes]},
            notes,
        ),
        as_json=args.json,
    )
    return 0


def run_check(ctx: Context, args: argparse.Namespace) -> int:
    config = ctx.config
    with _api(ctx, args) as api:
        items = check(api, config, config.path.parent)
    report_checklist(ctx.runner, f"GitHub check of {api.repo}", items, as_json=args.json)
    if not args.json:  # with --json, stdout is one JSON document
        say("✓ GitHub is set up as the repository says")
    return 0


def run_dispatch(ctx: Context, args: argparse.Namespace) -> int:
    """Each workflow due, dispatched on ``main``: its run uses main's workflow file and code."""
    config = ctx.config
    workflows = list(args.workflow) if args.workflow else due(config, args.schedule)
    ref = args.ref or dispatch_ref(config)
    repo = args.repo or ctx.runner.repository
    if not repo:
        raise ConfigError("which repository? pass --repo OWNER/NAME", hint="or set GITHUB_REPOSITORY")
    with ctx.github(ctx.secret("GITHUB_TOKEN"), repo) as api:
        for workflow in workflows:
            api.dispatch_workflow(workflow, ref)
            print(redact(f"✓ dispatched {workflow} on {ref}"), flush=True)  # output's say, without rich
    ctx.runner.add_summary(
        "### Scheduled work\n\n" + "\n".join(f"- {workflow} dispatched on `{ref}`" for workflow in workflows)
    )
    return 0
