"""``ci-tools flow check|name|backmerge``: the branch flow as a required status check."""

from __future__ import annotations

import argparse

from ci_tools.context import Context
from ci_tools.errors import InputError, VerificationError
from ci_tools.needs import Needs


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("flow", help="enforce feature/* → develop → main")
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


def flow_check(ctx: Context, args: argparse.Namespace) -> int:
    from ci_tools.output import say
    from ci_tools.repo.flow import check_pair

    config = ctx.config
    verdict = check_pair(config.flow, args.base.strip(), args.head.strip(), head_repo=args.head_repo, repo=args.repo)
    if not verdict.allowed:
        ctx.runner.add_summary(f"### Branch flow: refused\n\n{verdict.message}")
        raise VerificationError(verdict.message)
    say(f"✓ {verdict.message}")
    ctx.runner.add_summary(f"### Branch flow\n\n✓ {verdict.message}")
    return 0


def flow_name(ctx: Context, args: argparse.Namespace) -> int:
    from ci_tools.output import say
    from ci_tools.repo.flow import check_name

    if not args.branch.strip():
        raise InputError("the branch name is empty", hint="pass a name such as feature/short-name")
    verdict = check_name(args.branch.strip())
    if not verdict.allowed:
        raise VerificationError(verdict.message)
    say(f"✓ {verdict.message}")
    return 0


def flow_backmerge(ctx: Context, args: argparse.Namespace) -> int:
    from ci_tools.output import say
    from ci_tools.repo.back_merge import backmerge

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
