"""Runbook step 4: confirm which service, token and Redis belong together, before anything changes.

It sees both environments at once, so it reads each one's secrets under a prefixed
name: ``STAGING_TELEGRAM_BOT_TOKEN``, ``PRODUCTION_REDIS_URL``,
``STAGING_RENDER_SERVICE_ID``… (``RENDER_API_KEY`` is the account's; ``<ENV>_RENDER_API_KEY``, where
set, is that environment's own, and staging's must not reach production).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis

from ci_tools.checklist import BUDGET, TELEGRAM_DOWN, Item, unanswered
from ci_tools.clients.render import monotonic_deadline
from ci_tools.clients.telegram import BotInfo, TelegramError
from ci_tools.context import Context
from ci_tools.errors import FatalError, RemoteError
from ci_tools.memory.servers import identity, label
from ci_tools.pipeline import blueprint_sync
from ci_tools.pipeline import safety_net as net
from ci_tools.repo.github import check_if_possible
from ci_tools.settings import Environment

DEV_WORDS = re.compile(r"dev|test|staging", re.I)


def _bot(ctx: Context, env: Environment, items: list[Item]) -> BotInfo | None:
    name = f"{env.name}: token is @{env.bot_username}"
    token = ctx.env_secret(env, "TELEGRAM_BOT_TOKEN")
    variable = f"{env.name.upper()}_TELEGRAM_BOT_TOKEN"
    if not token:
        items.append(Item(name, None, f"{variable} not set", f"export {variable} (from @BotFather)"))
        return None
    try:
        me = ctx.bot_info(token, budget=BUDGET)
    except TelegramError as exc:
        items.append(
            Item(
                name,
                False,
                f"getMe: {exc.code} {exc.description}",
                f"{variable} is wrong or revoked: copy it again from @BotFather",
            )
        )
        return None
    except RemoteError as exc:
        items.append(unanswered(name, exc, TELEGRAM_DOWN))
        return None
    if not me.is_named(env.bot_username):
        items.append(
            Item(
                name,
                False,
                f"the token is @{me.username}'s",
                f"put @{env.bot_username}'s token in {variable}, or fix bot_username in pyproject.toml",
            )
        )
        return me
    items.append(Item(name, True, f"@{me.username} (id {me.id})"))
    return me


def _redis(ctx: Context, env: Environment, items: list[Item]) -> redis.Redis | None:
    name = f"{env.name}: Redis belongs to {env.name}"
    variable = f"{env.name.upper()}_REDIS_URL"
    url = ctx.env_secret(env, "REDIS_URL")
    if not url:
        items.append(
            Item(
                name,
                None,
                f"{variable} not set",
                f"export {variable} (the Key Value's connection string)",
            )
        )
        return None
    try:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=min(ctx.request_timeout(5), BUDGET),
            socket_timeout=min(ctx.request_timeout(10), BUDGET),
        )
        marker = client.get(f"{env.key_prefix}meta:env")
    except (redis.RedisError, OSError, ValueError) as exc:
        items.append(
            Item(
                name,
                False,
                f"{label(url) if '://' in url else '?'}: {type(exc).__name__}",
                f"Redis did not answer: check {variable} and the instance's allow list",
                remote=isinstance(exc, redis.ConnectionError | redis.TimeoutError | OSError),
            )
        )
        return None
    found = (marker.decode() if isinstance(marker, bytes) else str(marker)) if marker else None
    if found not in (None, env.name):
        items.append(
            Item(
                name,
                False,
                f"{env.key_prefix}meta:env is {found!r}",
                f"{variable} points at the {found} Redis: use the {env.name} one",
            )
        )
    else:
        items.append(
            Item(
                name,
                True,
                f"{label(url)}, marker {found or 'not yet written (the bot writes it at first start)'}",
            )
        )
    return client


def _service(ctx: Context, env: Environment, items: list[Item]) -> None:
    name = f"{env.name}: Render service {env.render_service}"
    variable = f"{env.name.upper()}_RENDER_SERVICE_ID"
    api_key = ctx.env_secret(env, "RENDER_API_KEY") or ctx.optional("RENDER_API_KEY")
    service_id = ctx.env_secret(env, "RENDER_SERVICE_ID")
    if not api_key or not service_id:
        items.append(
            Item(
                name,
                None,
                "RENDER_API_KEY or " + variable + " not set",
                f"export RENDER_API_KEY and {variable} to check the service",
            )
        )
        return
    try:
        with ctx.render(api_key, service_id, deadline=monotonic_deadline(BUDGET), timeout=BUDGET) as api:
            service = api.service()
            testers = api.env_var("TESTER_IDS") if env.testers_only else None
            syncing, sync_line = blueprint_sync.describe(api, env.branch)
    except FatalError as exc:
        items.append(
            Item(
                name,
                False,
                exc.message,
                exc.hint or f"check {variable}",
                remote=isinstance(exc, RemoteError),
            )
        )
        return
    problems, fixes = [], []
    if service.get("name") != env.render_service:
        problems.append(f"it is {service.get('name')!r}")
        fixes.append(f"{variable} belongs to another service")
    if service.get("branch") != env.branch:
        problems.append(f"deploys {service.get('branch')!r}")
        fixes.append(f"set its branch to {env.branch} (Settings → Build & Deploy)")
    if service.get("autoDeploy") not in ("no", False) and service.get("autoDeployTrigger") != "off":
        problems.append("auto-deploy is on")
        fixes.append("turn auto-deploy off: the pipeline is the only deployer")
    if problems:
        items.append(Item(name, False, ", ".join(problems), "; ".join(fixes)))
    else:
        items.append(Item(name, True, f"{service_id}, branch {env.branch}, auto-deploy off"))
    items.append(Item(f"{env.name}: Blueprint auto-sync", syncing is not None, sync_line, "", warning=bool(syncing)))
    if env.testers_only:
        allowlisted = bool((testers or "").strip())
        items.append(
            Item(
                "staging: only testers get the staging bot",
                True,
                "TESTER_IDS is set" if allowlisted else "no TESTER_IDS: anyone who writes to the old bot gets staging",
                "" if allowlisted else "set TESTER_IDS (your Telegram id) and PRODUCTION_BOT on the staging service",
                warning=not allowlisted,
            )
        )


def _not_yet(ctx: Context, env: Environment, items: list[Item]) -> None:
    """Before @BotFather: the new bot does not exist, so nothing can say its token is its own."""
    items.append(
        Item(
            f"{env.name}: token is @{env.bot_username}",
            True,
            "not checked before the new bot exists",
            f"create @{env.bot_username} in @BotFather, then run preflight again without --before-new-bot",
            warning=True,  # passes: step 4 before step 1 asks only what exists; the run after BotFather asks this
        )
    )


def _staging_key_reach(ctx: Context, staging: Environment, production: Environment) -> Item:
    """Staging's workflows run code from feature branches: the Render key they hold must not be
    able to change production. A key scoped to staging's resources cannot see production's
    service (render.com/docs/api-keys); a classic key, or one key for both, can."""
    name = f"staging's Render key cannot change {production.render_service}"
    fix = (
        f"create a Render API key scoped to {staging.render_service} and {staging.key_value} "
        "(Account Settings → API Keys) and give it to staging as STAGING_RENDER_API_KEY"
    )
    staging_key = ctx.env_secret(staging, "RENDER_API_KEY")
    production_key = ctx.env_secret(production, "RENDER_API_KEY") or ctx.optional("RENDER_API_KEY")
    service_id = ctx.env_secret(production, "RENDER_SERVICE_ID")
    if not staging_key:  # what init gives staging without a scoped key: its deploy hook alone
        return Item(name, True, "staging holds no Render API key (its deploy hook alone)")
    if staging_key == production_key:
        detail = "one Render key for both environments"
        return Item(name, False, f"{detail}: feature branches on staging hold the power to change production", fix)
    if not service_id:
        return Item(name, None, "PRODUCTION_RENDER_SERVICE_ID not set", "export it to check the key's reach")
    try:
        with ctx.render(staging_key, service_id, deadline=monotonic_deadline(BUDGET), timeout=BUDGET) as api:
            api.service()
    except FatalError as exc:
        if isinstance(exc, RemoteError):
            return Item(name, False, exc.message, "run again when Render answers", remote=True)
    else:
        return Item(name, False, f"it reads {production.render_service}: it may change it too", fix)
    return _staging_key_value_reach(ctx, name, fix, staging_key, production_key, production)


def _staging_key_value_reach(
    ctx: Context, name: str, fix: str, staging_key: str, production_key: str | None, production: Environment
) -> Item:
    """The same key against production's Key Value: its detail (whose allow list the key may open)
    and its connection info (the Redis URL with its password). Its id is found with production's key."""
    if not production_key:
        return Item(name, None, "PRODUCTION_RENDER_API_KEY not set", "export it to check the key's reach")
    try:
        with ctx.render(production_key, deadline=monotonic_deadline(BUDGET), timeout=BUDGET) as api:
            kv_id = str(api.find_key_value(production.key_value)["id"])
        with ctx.render(staging_key, deadline=monotonic_deadline(BUDGET), timeout=BUDGET) as api:
            reaches = api.sees_key_value(kv_id)
    except FatalError as exc:
        remote = isinstance(exc, RemoteError)
        return Item(
            name, False, exc.message, "run again when Render answers" if remote else exc.hint or "", remote=remote
        )
    if reaches:
        return Item(name, False, f"it reads {production.key_value}: production's Redis URL, and its allow list", fix)
    return Item(name, True, f"{production.render_service} and {production.key_value} are invisible to it")


def preflight(ctx: Context, *, before_new_bot: bool = False) -> list[Item]:
    """Every check at once, each on a short budget (a service that is down is said in seconds);
    the items in a fixed order: bots, Redis, services, then what compares them.

    ``before_new_bot``: runbook step 4 run before step 1, as the plan starts, with only what exists then (the daily
    user's bot, both services, both Redis); the production bot's token is checked after BotFather.
    """
    config = ctx.config
    staging, production = config.role("testers_only"), config.role("cutover_target")
    envs = (staging, production)
    checks: dict[str, Callable[[Context, Environment, list[Item]], Any]] = {
        "bot": _bot,
        "redis": _redis,
        "service": _service,
    }

    def run(check: Callable[[Context, Environment, list[Item]], Any], env: Environment) -> tuple[Any, list[Item]]:
        found: list[Item] = []
        if before_new_bot and check is _bot and env is production:
            check = _not_yet
        return check(ctx, env, found), found

    with ThreadPoolExecutor(max_workers=len(checks) * len(envs) + 2) as pool:
        jobs = {(key, env.name): pool.submit(run, check, env) for key, check in checks.items() for env in envs}
        github_job = pool.submit(check_if_possible, ctx, config.path.parent, budget=BUDGET)
        durability_job = pool.submit(net.durability, ctx, budget=BUDGET)
        snapshot_job = pool.submit(net.last_snapshot, ctx, budget=BUDGET)
        done = {key: job.result() for key, job in jobs.items()}
        github_items, net_items = (
            github_job.result(),
            [durability_job.result(), snapshot_job.result()],
        )
    items = [i for key in checks for env in envs for i in done[(key, env.name)][1]]
    bots = {env.name: done[("bot", env.name)][0] for env in envs}
    clients = {env.name: done[("redis", env.name)][0] for env in envs}
    staging_bot, production_bot = bots[staging.name], bots[production.name]
    if staging_bot and production_bot:
        same = staging_bot.id == production_bot.id
        items.append(
            Item(
                "staging and production are different bots",
                not same,
                f"both are @{staging_bot.username}" if same else "two bots",
                "create a new production bot in @BotFather (usernames never change)" if same else "",
            )
        )
    else:
        unanswered_bots = [i for i in items if i.remote and "token is @" in i.name]
        items.append(
            Item(
                "staging and production are different bots",
                None,
                TELEGRAM_DOWN,
                "run again when it answers",
                remote=True,
            )
            if unanswered_bots
            else Item(
                "staging and production are different bots",
                True,
                "not checked before the new bot exists",
                "checked by the preflight after @BotFather",
                warning=True,
            )
            if before_new_bot
            else Item(
                "staging and production are different bots",
                None,
                "needs both tokens",
                "set both tokens",
            )
        )
    dev_like = DEV_WORDS.search(production.bot_username)
    items.append(
        Item(
            "production username looks like production",
            not dev_like,
            f"@{production.bot_username}",
            "choose a production username without dev, test or staging" if dev_like else "",
        )
    )
    staging_redis, production_redis = clients[staging.name], clients[production.name]
    if staging_redis is not None and production_redis is not None:
        try:
            same = identity(staging_redis) == identity(production_redis)
        except redis.RedisError:
            same = False
        items.append(
            Item(
                "staging and production use different Redis",
                not same,
                "one server" if same else "two servers",
                "give production its own Key Value instance (render.yaml)" if same else "",
            )
        )
    else:
        items.append(
            Item(
                "staging and production use different Redis",
                None,
                "needs both URLs",
                "set both Redis URLs",
            )
        )
    items.append(_staging_key_reach(ctx, staging, production))
    items += github_items  # GitHub's side of the flow
    items += net_items  # the memory safety net
    return items
