"""``ci-tools init``: ask for a handful of values, discover the rest, write the owner's files.

The owner gives the Render API key, the new production bot's token and the daily user's
Telegram id. Everything else is found: each service and Key Value by name through
Render's API (ids, addresses, plans, the external connection strings), the bots'
usernames by ``getMe``, the staging bot's token and each webhook secret from the
services that already run with them. What exists nowhere yet (each environment's memory
snapshot key, a missing webhook secret) is generated once and kept in ``.env``; a second
run reuses it, so it changes nothing.

Staging's GitHub environment admits ``develop`` and ``feature/*`` with no reviewer, so
nothing init gives staging may equal a production secret or reach production: staging
gets its own snapshot key (it can neither open production's snapshots nor forge one that
production's restore accepts), no production Redis URL, and for Render either a key the
owner scoped to staging's resources or staging's deploy hook alone, never the
account-wide key.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from ci_tools.clients.render import RenderAPI, monotonic_deadline, service_id_from_hook
from ci_tools.clients.telegram import TelegramError
from ci_tools.context import Context
from ci_tools.errors import ConfigError, FatalError, InputError, RemoteError
from ci_tools.repo import owner_files
from ci_tools.repo.blueprint import check_blueprint
from ci_tools.repo.owner_files import EnvironmentFacts
from ci_tools.settings import Config, Environment, load_config

WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # Telegram's rule for secret_token
BUDGET = 60.0  # discovery: a dozen small reads
DOTENV = ".env"


@dataclass(frozen=True)
class InitRequest:
    api_key: str
    production_token: str  # the new bot's, from @BotFather
    daily_user_id: int
    staging_token: str = ""  # default: the one the staging service runs with
    services: Mapping[str, str] = field(default_factory=dict)  # environment → Render service name
    staging_prefix: str | None = None  # None: as the config says (legacy "" until the move)
    tester_ids: str = ""  # after the move: who still gets the staging bot
    repository: str = ""  # OWNER/NAME, for github setup
    owner_chat_id: str = ""  # the owner's Telegram id: OWNER_CHAT_ID in each environment
    staging_api_key: str = ""  # a key scoped to staging's resources; none: staging gets no API key
    staging_deploy_hook: str = ""  # staging's deploy hook URL (Render's API does not tell it)


@dataclass
class InitResult:
    facts: dict[str, EnvironmentFacts]
    old_production_bot: str  # what mindmate-prod runs now (before the cutover: the old bot)
    written: list[str]  # files changed
    generated: list[str]  # secrets made by this run
    stored: list[str]  # the names in .env (never the values)
    set_on_render: list[str] = field(default_factory=list)
    staging_render: str = ""  # what staging may do on Render, said in one line


def _username(ctx: Context, token: str, what: str) -> str:
    try:
        return ctx.bot_info(token, budget=BUDGET).username
    except TelegramError as exc:
        raise ConfigError(
            f"{what}: getMe answered {exc.code} {exc.description}",
            hint="copy the token again from @BotFather (/mybots → API Token)",
        ) from None


def _webhook_secret(found: str | None, kept: str | None) -> tuple[str, bool]:
    """The service's own secret (the bot runs with it), else the one .env kept, else a new one."""
    for value in (found, kept):
        if value and WEBHOOK_SECRET.match(value):
            return value, False
    return secrets.token_urlsafe(32), True


def _prefix(request: InitRequest, env: Environment) -> str:
    if env.testers_only and request.staging_prefix is not None:
        prefix = request.staging_prefix
        if prefix and not prefix.endswith(":"):
            raise ConfigError(
                f"--staging-prefix {prefix!r} must end with ':' (e.g. 'dev:'), or be '' for unprefixed keys"
            )
        return prefix
    return env.key_prefix


def discover(ctx: Context, request: InitRequest, kept: Mapping[str, str]) -> tuple[InitResult, dict[str, str]]:
    """Read each environment's service, Key Value and bot; compose the .env values."""
    config = ctx.config
    facts: dict[str, EnvironmentFacts] = {}
    values: dict[str, str] = {}
    generated: list[str] = []
    set_on_render: list[str] = []
    external: dict[str, str] = {}
    key_values: dict[str, str] = {}  # environment → its Key Value's id
    old_production_bot = ""
    with ctx.render(request.api_key, deadline=monotonic_deadline(BUDGET)) as api:
        for env in config.environments.values():
            upper = env.name.upper()
            name = request.services.get(env.name) or env.render_service
            service = api.find_service(name)
            details: dict[str, Any] = service.get("serviceDetails") or {}
            kv_name = env.key_value if name == env.render_service else f"{name}-redis"
            kv = api.find_key_value(kv_name)
            key_values[env.name] = str(kv["id"])
            external[env.name] = str(api.connection_info(str(kv["id"]))["externalConnectionString"])
            running = api.env_var_of(str(service["id"]), "TELEGRAM_BOT_TOKEN")
            if env.cutover_target:
                token = request.production_token
                if running and running != token:
                    old_production_bot = _username(ctx, running, f"the bot {name} runs now")
            else:
                token = request.staging_token or running or ""
                if not token:
                    raise ConfigError(
                        f"{name} has no TELEGRAM_BOT_TOKEN to read and STAGING_TELEGRAM_BOT_TOKEN is not set",
                        hint="export STAGING_TELEGRAM_BOT_TOKEN (the daily user's bot, from @BotFather)",
                    )
            secret, made = _webhook_secret(
                api.env_var_of(str(service["id"]), "TELEGRAM_WEBHOOK_SECRET"),
                kept.get(f"{upper}_TELEGRAM_WEBHOOK_SECRET"),
            )
            if made:
                generated.append(f"{upper}_TELEGRAM_WEBHOOK_SECRET")
                _set_on(api, str(service["id"]), "TELEGRAM_WEBHOOK_SECRET", secret)
                set_on_render.append(f"{name}: TELEGRAM_WEBHOOK_SECRET")
            facts[env.name] = EnvironmentFacts(
                name=env.name,
                render_service=name,
                bot_username=_username(ctx, token, f"{upper}_TELEGRAM_BOT_TOKEN"),
                base_url=str(details.get("url") or env.base_url).rstrip("/"),
                key_prefix=_prefix(request, env),
                key_value=kv_name,
                region=str(details.get("region") or kv.get("region") or "frankfurt"),
                service_plan=str(details.get("plan") or "starter"),
                key_value_plan=str(kv.get("plan") or "starter"),
                reviewers=_reviewers(request, env),
            )
            values |= {
                f"{upper}_TELEGRAM_BOT_TOKEN": token,
                f"{upper}_TELEGRAM_WEBHOOK_SECRET": secret,
                f"{upper}_RENDER_SERVICE_ID": str(service["id"]),
                f"{upper}_REDIS_URL": external[env.name],
            }
            if env.cutover_target:
                values[f"{upper}_RENDER_API_KEY"] = request.api_key
        staging, production = config.role("testers_only"), config.role("cutover_target")
        staging_render = _staging_render(ctx, request, kept, values, staging, production, key_values[production.name])
        values |= staging_render.values
        generated += _snapshot_keys(config, kept, values)
        # The memory copy's source, in production's job only: staging never holds production's Redis
        # (migrate-memory.yml refuses production → staging; a copy that reads production runs there).
        # Only until the move is finished (staging has its own prefix: finish-move ran): after it
        # nothing needs production to reach the old bot's Redis, and .env stops naming it.
        if not facts[staging.name].key_prefix:
            values[f"{production.name.upper()}_SOURCE_REDIS_URL"] = external[staging.name]
        # preflight.yml sees staging's bot, service and key (where it has one) from production's environment.
        for name in ("TELEGRAM_BOT_TOKEN", "RENDER_SERVICE_ID", "RENDER_API_KEY"):
            if f"{staging.name.upper()}_{name}" in values:
                copied = f"{production.name.upper()}_{staging.name.upper()}_{name}"
                values[copied] = values[f"{staging.name.upper()}_{name}"]
        owner = request.owner_chat_id or next((kept[k] for k in sorted(kept) if k.endswith("_OWNER_CHAT_ID")), "")
        if owner:
            if not owner.isdigit():
                raise InputError(f"--owner-chat-id {owner!r} is not a Telegram user id", hint="digits, e.g. 123456789")
            for env in config.environments.values():
                values[f"{env.name.upper()}_OWNER_CHAT_ID"] = owner
        if request.repository or kept.get("GITHUB_REPOSITORY"):
            values["GITHUB_REPOSITORY"] = request.repository or kept["GITHUB_REPOSITORY"]
        if request.tester_ids:
            set_on_render += _testers(api, config, facts, request, values)
    result = InitResult(facts, old_production_bot, [], generated, sorted(values), set_on_render)
    result.staging_render = staging_render.said
    return result, values


@dataclass(frozen=True)
class StagingRender:
    values: dict[str, str]
    said: str


def _staging_render(
    ctx: Context,
    request: InitRequest,
    kept: Mapping[str, str],
    values: Mapping[str, str],
    staging: Environment,
    production: Environment,
    production_key_value: str,
) -> StagingRender:
    """Staging's Render power: a key the owner scoped to staging's resources (Render's scoped API
    keys, render.com/docs/api-keys: one workspace, fine-grained permissions), else its deploy hook
    alone. Never the account-wide key: staging's jobs run unreviewed feature-branch code."""
    upper = staging.name.upper()
    staging_service = request.services.get(staging.name) or staging.render_service
    production_service = request.services.get(production.name) or production.render_service
    key = request.staging_api_key or kept.get(f"{upper}_RENDER_API_KEY", "")
    hook = request.staging_deploy_hook or kept.get(f"{upper}_RENDER_DEPLOY_HOOK_URL", "")
    if key == request.api_key:
        if request.staging_api_key:
            raise ConfigError(
                "STAGING_RENDER_API_KEY is the account-wide key given as RENDER_API_KEY",
                hint=f"create a key scoped to {staging_service} (Account Settings → API Keys), "
                "or leave it unset: staging then deploys by its hook alone",
            )
        key = ""  # what an older init gave staging: withdrawn
    found: dict[str, str] = {}
    if key:
        if not _reads(ctx, key, values[f"{upper}_RENDER_SERVICE_ID"]):
            raise ConfigError(
                f"STAGING_RENDER_API_KEY cannot read {staging_service}",
                hint="copy the key again, or give it staging's service and Key Value (render.com/docs/api-keys)",
            )
        if _reads(ctx, key, values[f"{production.name.upper()}_RENDER_SERVICE_ID"]):
            raise ConfigError(
                f"STAGING_RENDER_API_KEY reads {production_service}, so staging's feature branches could change it",
                hint="scope the key to staging's service and Key Value only (render.com/docs/api-keys)",
            )
        if _reaches_key_value(ctx, key, production_key_value):
            raise ConfigError(
                "STAGING_RENDER_API_KEY reaches production's Key Value, so staging's feature branches could read "
                "its Redis URL or open its allow list",
                hint="scope the key to staging's service and Key Value only (render.com/docs/api-keys)",
            )
        found[f"{upper}_RENDER_API_KEY"] = key
    if hook:
        if service_id_from_hook(hook) != values[f"{upper}_RENDER_SERVICE_ID"]:
            raise ConfigError(
                f"STAGING_RENDER_DEPLOY_HOOK_URL is not {staging_service}'s deploy hook",
                hint=f"copy it from {staging_service} → Settings → Deploy Hook",
            )
        found[f"{upper}_RENDER_DEPLOY_HOOK_URL"] = hook
    if key:
        said = "staging's Render power: its own scoped key (deploys any commit, rolls back by API)"
    elif hook:
        said = (
            f"staging's Render power: its deploy hook alone (deploys {staging.branch}'s head and waits for "
            "/healthz to report it; no feature branch, no rollback by API)"
        )
    else:
        said = (
            "staging has no Render power yet: set STAGING_RENDER_DEPLOY_HOOK_URL "
            f"({staging_service} → Settings → Deploy Hook) or a STAGING_RENDER_API_KEY scoped to it, "
            "then run init again"
        )
    return StagingRender(found, said)


def _reads(ctx: Context, key: str, service_id: str) -> bool:
    """Can ``key`` read this service? Render hides what a scoped key may not see (404); a key that
    can read a service may change it too. A Render that does not answer stops init (RemoteError)."""
    try:
        with ctx.render(key, service_id, deadline=monotonic_deadline(BUDGET)) as api:
            api.service()
    except RemoteError:
        raise
    except FatalError:
        return False
    return True


def _reaches_key_value(ctx: Context, key: str, kv_id: str) -> bool:
    """Can ``key`` read this Key Value or its connection info? A Render that does not answer stops
    init (RemoteError)."""
    try:
        with ctx.render(key, deadline=monotonic_deadline(BUDGET)) as api:
            return api.sees_key_value(kv_id)
    except RemoteError:
        raise
    except FatalError:
        return False


def _snapshot_keys(config: Config, kept: Mapping[str, str], values: dict[str, str]) -> list[str]:
    """Each environment its own ``MEMORY_SNAPSHOT_KEY``, kept once made. A key that another
    environment holds too (what an older init wrote) is replaced; the cutover target keeps its own,
    so production's existing snapshots stay readable."""
    generated = []
    taken: set[str] = set()
    for env in sorted(config.environments.values(), key=lambda env: not env.cutover_target):
        name = f"{env.name.upper()}_MEMORY_SNAPSHOT_KEY"
        key = kept.get(name, "")
        if not key or key in taken:
            key = Fernet.generate_key().decode()
            generated.append(name)
        taken.add(key)
        values[name] = key
    return generated


# What an older init wrote that an environment admitting unreviewed code may no longer hold.
WITHDRAWN = ("STAGING_SOURCE_REDIS_URL",)


def _withdrawn(kept: Mapping[str, str], values: Mapping[str, str], request: InitRequest) -> dict[str, str]:
    """.env without the production power an older init gave staging: its source Redis URL (which
    was production's), the account-wide key as staging's and as the copy preflight reads; and,
    once the move is finished (``values`` name no copy source), production's copy source."""
    return {
        name: value
        for name, value in kept.items()
        if name not in WITHDRAWN
        and not (name.endswith("_SOURCE_REDIS_URL") and name not in values)
        and not (name.endswith("STAGING_RENDER_API_KEY") and value == request.api_key and name not in values)
    }


def _reviewers(request: InitRequest, env: Environment) -> tuple[str, ...]:
    """Production's approver: the repository's owner, in place of the shipped placeholder."""
    if not env.reviewers or not request.repository or "/" not in request.repository:
        return ()
    return (request.repository.split("/")[0],)


def _set_on(api: RenderAPI, service_id: str, key: str, value: str) -> None:
    api.service_id = service_id
    api.set_env_var(key, value)


def _testers(
    api: RenderAPI, config: Any, facts: Mapping[str, EnvironmentFacts], request: InitRequest, values: Mapping[str, str]
) -> list[str]:
    """After the move only: the staging bot keeps its testers and sends everyone else on."""
    staging, production = config.role("testers_only"), config.role("cutover_target")
    if not facts[staging.name].key_prefix:
        raise ConfigError(
            "--tester-ids before the move would send the daily user away from the bot that holds their memory",
            hint="move their memory first (runbook), then run init --staging-prefix dev: --tester-ids …",
        )
    if not re.fullmatch(r"\d+(,\d+)*", request.tester_ids.replace(" ", "")):
        raise ConfigError(f"--tester-ids {request.tester_ids!r} is not Telegram user ids separated by commas")
    service_id = values[f"{staging.name.upper()}_RENDER_SERVICE_ID"]
    changed = []
    for key, value in (
        ("TESTER_IDS", request.tester_ids.replace(" ", "")),
        ("PRODUCTION_BOT", facts[production.name].bot_username),
        ("KEY_PREFIX", facts[staging.name].key_prefix),
    ):
        api.service_id = service_id
        if api.env_var(key) != value:
            api.set_env_var(key, value)
            changed.append(f"{facts[staging.name].render_service}: {key}")
    return changed


def init(ctx: Context, request: InitRequest) -> InitResult:
    """Discover, then write pyproject.toml, render.yaml and .env; check the result as config check does."""
    config = ctx.config
    root = config.path.parent
    dotenv = dotenv_path(config.path)
    kept = owner_files.read_dotenv(dotenv)
    _refuse_shared(
        {env.name: request.services.get(env.name) or env.render_service for env in config.environments.values()},
        "Render service",
    )
    result, values = discover(ctx, request, kept)
    _refuse_shared({name: facts.render_service for name, facts in result.facts.items()}, "Render service")
    _refuse_shared({name: facts.key_value for name, facts in result.facts.items()}, "Key Value")
    for name in ("RENDER_SERVICE_ID", "REDIS_URL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET"):
        found = {env: values.get(f"{env.upper()}_{name}", "") for env in config.environments}
        _refuse_shared(found, name, say_value=False, hint=f"give each environment its own {name}, then run init again")
    previous = {name: (env.render_service, env.key_value) for name, env in config.environments.items()}
    blueprint = root / "render.yaml"
    if owner_files.edit_config(config.path, result.facts, request.daily_user_id):
        result.written.append(config.path.name)
    if owner_files.edit_blueprint(blueprint, result.facts, previous):
        result.written.append(blueprint.name)
    if owner_files.write_dotenv(dotenv, {**_withdrawn(kept, values, request), **values}):
        result.written.append(".env")
    if owner_files.ensure_ignored(root):
        result.written.append(".gitignore")
    check_blueprint(load_config(config.path), blueprint)  # what `ci-tools config check` says, at once
    return result


def _refuse_shared(
    found: Mapping[str, str],
    what: str,
    *,
    say_value: bool = True,
    hint: str = "name each environment's own service (--staging-service / --production-service)",
) -> None:
    """Each environment its own service, Key Value, Redis and bot: one shared (a typo naming
    production's service as staging's) would give staging, which runs unreviewed code, production's
    power. Checked before any file is written; a secret is named, never shown."""
    seen: dict[str, str] = {}
    for env, value in found.items():
        if not value:
            continue
        if value in seen:
            shown = f" ({value})" if say_value else ""
            raise ConfigError(
                f"{seen[value]} and {env} share one {what}{shown}: nothing was written",
                hint=hint,
            )
        seen[value] = env


def dotenv_path(config_path: Path) -> Path:
    """Where init keeps the secrets and `github setup` finds them: beside pyproject.toml."""
    return config_path.parent / DOTENV
