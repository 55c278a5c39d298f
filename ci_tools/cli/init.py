"""``ci-tools init``: the owner's setup from a handful of values; safe to run again.

Asks (in prompts, or from the environment) for the Render API key, the new production bot's
token and the daily user's Telegram id; discovers the rest; writes
``[tool.ci_tools]``, ``render.yaml`` and a ``.env`` (mode 0600) that ``github setup`` reads.
Staging's Render power is asked apart (a key scoped to staging, or its deploy hook): the
account-wide key is production's alone, because staging runs unreviewed branches.
"""

from __future__ import annotations

import argparse

from ci_tools.cli._common import ask
from ci_tools.context import Context
from ci_tools.errors import ConfigError
from ci_tools.memory.keys import parse_user_id
from ci_tools.needs import Needs
from ci_tools.output import Report, report, say
from ci_tools.pipeline.init import InitRequest, init

NEEDS = Needs(
    optional=(
        "RENDER_API_KEY",  # Account Settings → API Keys: production's alone
        "PRODUCTION_TELEGRAM_BOT_TOKEN",  # the new bot's, from @BotFather
        "STAGING_TELEGRAM_BOT_TOKEN",  # default: the one the staging service runs with
        "STAGING_RENDER_API_KEY",  # a key scoped to staging's resources (default: none)
        "STAGING_RENDER_DEPLOY_HOOK_URL",  # staging's deploy hook (Render's API does not tell it)
        "DAILY_USER_ID",  # the daily user's Telegram id (not a secret, but asked with the rest)
    )
)
ASKED = {
    "RENDER_API_KEY": ("Render API key (Account Settings → API Keys)", True),
    "PRODUCTION_TELEGRAM_BOT_TOKEN": ("the new production bot's token (@BotFather → /mybots → API Token)", True),
    "DAILY_USER_ID": ("the daily user's Telegram id (they send /start to @userinfobot to see it)", False),
}
OPTIONAL_ASKED = {
    "STAGING_RENDER_API_KEY": "a Render API key scoped to staging's service and Key Value only "
    "(Enter: none, staging deploys by its hook)",
    "STAGING_RENDER_DEPLOY_HOOK_URL": "staging's deploy hook URL (its service → Settings → Deploy Hook; Enter: none)",
}
# Every prompt init may show, in order: the docs state their count (tests/repo/test_docs_match_tree.py).
PROMPTS = (*ASKED, *OPTIONAL_ASKED)
STAGING_RENDER = (
    "staging never gets RENDER_API_KEY (the account-wide key is production's alone): it gets "
    "STAGING_RENDER_API_KEY, a key scoped to staging's resources, or else STAGING_RENDER_DEPLOY_HOOK_URL "
    "alone (deploys develop's head, no rollback by API)"
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "init",
        description="Asks RENDER_API_KEY, PRODUCTION_TELEGRAM_BOT_TOKEN and DAILY_USER_ID, discovers the rest "
        "and writes pyproject.toml, render.yaml and .env. Each environment gets its own MEMORY_SNAPSHOT_KEY; "
        + STAGING_RENDER
        + ".",
    )
    parser.add_argument("--staging-service", help="the Render service the daily user's bot runs on (default: config)")
    parser.add_argument("--production-service", help="the Render service of the production bot (default: config)")
    parser.add_argument(
        "--staging-prefix",
        help="after the move only: staging's own key prefix, e.g. 'dev:' (until then the legacy unprefixed keys)",
    )
    parser.add_argument(
        "--tester-ids", default="", help="after the move: Telegram ids that still get the staging bot (yours)"
    )
    parser.add_argument("--repo", default="", help="OWNER/NAME on GitHub, kept in .env for github setup")
    parser.add_argument(
        "--owner-chat-id",
        default="",
        help="your own Telegram id: each environment's bot tells you of releases, rollbacks, failed watches "
        "and restores (OWNER_CHAT_ID; press Start in both bots once)",
    )
    parser.set_defaults(func=run, needs=NEEDS)


def _value(ctx: Context, name: str) -> str:
    given = ctx.optional(name)
    if given:
        return given
    prompt, secret = ASKED[name]
    answer = ask(prompt, secret=secret)
    if answer is None:
        raise ConfigError(f"{name} is not set", hint=f"export {name} ({prompt}), or run ci-tools init in a terminal")
    return answer


def _optional_value(ctx: Context, name: str) -> str:
    """Asked in a terminal, Enter for none; without one, only from the environment."""
    given = ctx.optional(name)
    return given or ask(OPTIONAL_ASKED[name], secret=True) or ""


def run(ctx: Context, args: argparse.Namespace) -> int:
    services = {
        env.name: name
        for env, name in (
            (ctx.config.role("testers_only"), args.staging_service),
            (ctx.config.role("cutover_target"), args.production_service),
        )
        if name
    }
    request = InitRequest(
        api_key=_value(ctx, "RENDER_API_KEY"),
        production_token=_value(ctx, "PRODUCTION_TELEGRAM_BOT_TOKEN"),
        daily_user_id=parse_user_id(_value(ctx, "DAILY_USER_ID")),
        staging_token=ctx.optional("STAGING_TELEGRAM_BOT_TOKEN") or "",
        staging_api_key=_optional_value(ctx, "STAGING_RENDER_API_KEY"),
        staging_deploy_hook=_optional_value(ctx, "STAGING_RENDER_DEPLOY_HOOK_URL"),
        services=services,
        staging_prefix=args.staging_prefix,
        tester_ids=args.tester_ids,
        repository=args.repo,
        owner_chat_id=args.owner_chat_id.strip(),
    )
    result = init(ctx, request)
    rows = [
        [f.name, f.render_service, f"@{f.bot_username}", f.base_url, f.key_prefix or "(none: legacy keys)", f.key_value]
        for f in result.facts.values()
    ]
    notes = [
        f"written: {', '.join(result.written)}" if result.written else "nothing to change: the files already say this",
        f"generated once and kept in .env: {', '.join(result.generated)}" if result.generated else "",
        f"set on Render: {', '.join(result.set_on_render)}" if result.set_on_render else "",
        f"mindmate-prod runs @{result.old_production_bot} until the cutover" if result.old_production_bot else "",
        result.staging_render,
        f".env holds {len(result.stored)} values (names only here; never printed)",
        "next: commit pyproject.toml and render.yaml, then `ci-tools github setup --apply`",
    ]
    document = {
        "environments": {f.name: f.__dict__ for f in result.facts.values()},
        "written": result.written,
        "generated": result.generated,
        "stored": result.stored,
    }
    report(
        ctx.runner,
        Report(
            "ci-tools init",
            ["env", "service", "bot", "address", "key prefix", "Key Value"],
            rows,
            document,
            [n for n in notes if n],
        ),
    )
    say("✓ config check: pyproject.toml and render.yaml agree")
    return 0
