"""``ci-tools init``: ask for a handful of values, discover the rest, write the owner's files.

The owner gives the Render API key, the new production bot's token and the daily user's
Telegram id. Everything else is found: each service and Key Value by name through
Render's API (ids, addresses, plans, the external connection strings), the bots'
usernames by ``getMe``, the staging bot's token and each webhook secret from the
services that already run with them. What exists nowhere yet (the memory snapshot
key, a missing webhook secret) is generated once and kept in ``.env``; a second run
reuses it, so it changes nothing.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_tools.clients.render import RenderAPI, monotonic_deadline
from ci_tools.clients.telegram import TelegramError
from ci_tools.context import Context
from ci_tools.errors import ConfigError, InputError
from ci_tools.repo import owner_files
from ci_tools.repo.blueprint import check_blueprint
from ci_tools.repo.owner_files import EnvironmentFacts
from ci_tools.settings import Environment, load_config

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
    staging_api_key: str = ""  # a key scoped to staging's resources (default: api_key; preflight flags that)


@dataclass
class InitResult:
    facts: dict[str, EnvironmentFacts]
    old_production_bot: str  # what mindmate-prod runs now (before the cutover: the old bot)
    written: list[str]  # files changed
    generated: list[str]  # secrets made by this run
    stored: list[str]  # the names in .env (never the values)
    set_on_render: list[str] = field(default_factory=list)


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
    old_production_bot = ""
    with ctx.render(request.api_key, deadline=monotonic_deadline(BUDGET)) as api:
        for env in config.environments.values():
            upper = env.name.upper()
            name = request.services.get(env.name) or env.render_service
            service = api.find_service(name)
            details: dict[str, Any] = service.get("serviceDetails") or {}
            kv_name = env.key_value if name == env.render_service else f"{name}-redis"
            kv = api.find_key_value(kv_name)
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
                f"{upper}_RENDER_API_KEY": (request.staging_api_key or request.api_key)
                if env.testers_only
                else request.api_key,
                f"{upper}_RENDER_SERVICE_ID": str(service["id"]),
                f"{upper}_REDIS_URL": external[env.name],
            }
        snapshot_key = next((kept[k] for k in sorted(kept) if k.endswith("_MEMORY_SNAPSHOT_KEY")), "")
        if not snapshot_key:
            from cryptography.fernet import Fernet

            snapshot_key = Fernet.generate_key().decode()
            generated.append("MEMORY_SNAPSHOT_KEY")
        for env in config.environments.values():
            upper = env.name.upper()
            others = [e for e in config.environments if e != env.name]
            values[f"{upper}_MEMORY_SNAPSHOT_KEY"] = snapshot_key
            if others:  # the memory copy's source is the other environment's Key Value
                values[f"{upper}_SOURCE_REDIS_URL"] = external[others[0]]
            if env.cutover_target:  # preflight.yml sees staging's bot and service from production's environment
                staging = config.role("testers_only").name.upper()
                for name in ("TELEGRAM_BOT_TOKEN", "RENDER_SERVICE_ID", "RENDER_API_KEY"):
                    values[f"{upper}_{staging}_{name}"] = values[f"{staging}_{name}"]
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
    return InitResult(facts, old_production_bot, [], generated, sorted(values), set_on_render), values


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
    result, values = discover(ctx, request, kept)
    previous = {name: (env.render_service, env.key_value) for name, env in config.environments.items()}
    blueprint = root / "render.yaml"
    if owner_files.edit_config(config.path, result.facts, request.daily_user_id):
        result.written.append(config.path.name)
    if owner_files.edit_blueprint(blueprint, result.facts, previous):
        result.written.append(blueprint.name)
    if owner_files.write_dotenv(dotenv, {**kept, **values}):
        result.written.append(".env")
    if owner_files.ensure_ignored(root):
        result.written.append(".gitignore")
    check_blueprint(load_config(config.path), blueprint)  # what `ci-tools config check` says, at once
    return result


def dotenv_path(config_path: Path) -> Path:
    """Where init keeps the secrets and `github setup` finds them: beside pyproject.toml."""
    return config_path.parent / DOTENV
