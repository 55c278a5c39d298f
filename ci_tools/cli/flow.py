"""``ci-tools flow check|name|backmerge``: the branch flow as a required status check."""

from __future__ import annotations

import argparse

from ci_tools.context import Context
from ci_tools.errors import ConfigError, FatalError, InputError, VerificationError
from ci_tools.needs import Needs
from ci_tools.output import say
from ci_tools.repo.back_merge import backmerge
from ci_tools.repo.flow import arrival_checked, arrived_problem, check_name, check_pair


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("flow")
    sub = parser.add_subparsers(dest="flow_command", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="may a PR from HEAD merge into BASE?")
    check.add_argument("--base", required=True, help="the PR's base branch")
    check.add_argument("--head", required=True, help="the PR's head branch")
    check.add_argument("--head-repo", help="owner/name of the head's repository (forks differ)")
    check.add_argument("--repo", help="owner/name of this repository")
    check.set_defaults(func=flow_check)
    name = sub.add_parser("name", help="is BRANCH a valid branch name?")
    name.add_argument("branch")
    name.set_defaults(func=flow_name)
    back = sub.add_parser("backmerge", help="open the main → develop PR when develop lacks main")
    back.add_argument("--repo", help="owner/name (default: $GITHUB_REPOSITORY)")
    back.add_argument("--source", default="origin/main")
    back.add_argument("--target", default="origin/develop")
    back.set_defaults(func=flow_backmerge, needs=Needs(optional=("GITHUB_TOKEN",)))
    arrived = sub.add_parser(
        "arrived",
        help="did COMMIT reach BASE through the flow (a merged PR from an admitted head)? "
        "production.yml asks before every release; it checks where GitHub's plan has no rulesets",
    )
    arrived.add_argument("--commit", required=True)
    arrived.add_argument("--base", default="main")
    arrived.add_argument("--repo", help="owner/name (default: $GITHUB_REPOSITORY)")
    arrived.add_argument(
        "--mode",
        default="",
        help="the repository variable CI_TOOLS_GITHUB_MODE (github setup records it); unset or unknown: refused",
    )
    arrived.set_defaults(func=flow_arrived, needs=Needs(optional=("GITHUB_TOKEN",)))


def flow_check(ctx: Context, args: argparse.Namespace) -> int:
    config = ctx.config
    verdict = check_pair(config.flow, args.base.strip(), args.head.strip(), head_repo=args.head_repo, repo=args.repo)
    if not verdict.allowed:
        ctx.runner.add_summary(f"### Branch flow: refused\n\n{verdict.message}")
        raise VerificationError(verdict.message)
    say(f"✓ {verdict.message}")
    ctx.runner.add_summary(f"### Branch flow\n\n✓ {verdict.message}")
    return 0


def flow_name(ctx: Context, args: argparse.Namespace) -> int:
    if not args.branch.strip():
        raise InputError("the branch name is empty", hint="pass a name such as feature/short-name")
    verdict = check_name(args.branch.strip())
    if not verdict.allowed:
        raise VerificationError(verdict.message)
    say(f"✓ {verdict.message}")
    return 0


def flow_backmerge(ctx: Context, args: argparse.Namespace) -> int:
    result = backmerge(
        ctx,
        args.repo or ctx.runner.repository,
        ctx.optional("GITHUB_TOKEN"),
        source=args.source,
        target=args.target,
    )
    say(("✓ " if not result.needed else "→ ") + result.message)
    ctx.runner.add_summary(f"### Back-merge\n\n{result.message}")
    if result.needed and result.pr_url is None:
        ctx.runner.annotate("warning", result.message, title="develop lacks main")
    return 0


def flow_arrived(ctx: Context, args: argparse.Namespace) -> int:
    if not arrival_checked(args.mode):
        say(f"✓ rulesets guard {args.base} on this plan ({args.mode}): GitHub held the flow before this push")
        return 0
    token, repo = ctx.optional("GITHUB_TOKEN"), args.repo or ctx.runner.repository
    if not token or not repo:
        raise ConfigError(
            "GitHub cannot tell which PR brought this commit: no GITHUB_TOKEN or repository",
            hint="pass GITHUB_TOKEN: ${{ github.token }} with permissions pull-requests: read",
        )
    try:
        with ctx.github(token, repo) as api:
            pulls = api.pulls_of_commit(args.commit)
    except FatalError as exc:
        raise VerificationError(
            f"GitHub could not tell which PR brought {args.commit[:7]}, so it does not deploy: {exc.message}",
            hint="give the job permissions pull-requests: read, or rerun when GitHub answers",
        ) from None
    problem = arrived_problem(ctx.config.flow, args.base, args.commit, pulls)
    if problem:
        ctx.runner.add_summary(f"### Branch flow at deploy time: refused\n\n{problem}")
        raise VerificationError(problem, hint="release through a PR from develop (or hotfix/*) into main")
    say(f"✓ {args.commit[:7]} arrived on {args.base} through a merged PR the flow admits")
    return 0
