"""Phase 2: point the production service at the new bot's token, deploy main, probe; undo on failure.

The token goes through Render's single-key endpoint: a PUT of the whole env-var
list would replace every other variable. If the deploy or the probe fails, the old
value goes back, the service is redeployed, and the command fails saying so.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from ci_tools import redact
from ci_tools.clients.health import NotTheContract, read_health
from ci_tools.clients.render import RenderAPI, monotonic_deadline
from ci_tools.clients.telegram import TelegramError, bot_info
from ci_tools.config import Config, require_secret
from ci_tools.deploy import deploy
from ci_tools.errors import ConfigError, FatalError, VerificationError
from ci_tools.probe import Probe, run_probe

TOKEN_VAR = "TELEGRAM_BOT_TOKEN"  # noqa: S105 - a variable name


def cutover(
    config: Config, commit: str, *, timeout: float, deadline: float, poll: float = 2.0,
    on_status: Callable[[str], None] = lambda line: None,
) -> str:  # fmt: skip
    env = config.env("production")
    new_token = require_secret("NEW_TELEGRAM_BOT_TOKEN", purpose="the new production bot's token")
    api_key = require_secret(
        "RENDER_API_KEY", purpose="cutover sets the service's token through the API"
    )
    service_id = require_secret("RENDER_SERVICE_ID", purpose="the production service")
    try:
        me = bot_info(new_token)
    except TelegramError as exc:
        raise ConfigError(
            f"NEW_TELEGRAM_BOT_TOKEN does not answer getMe ({exc.code})",
            hint="copy it again from @BotFather",
        ) from None
    if not me.is_named(env.bot_username):
        raise ConfigError(
            f"NEW_TELEGRAM_BOT_TOKEN is @{me.username}'s, but production expects @{env.bot_username}",
            hint="use the new production bot's token, or fix bot_username in pyproject.toml",
        )
    with RenderAPI(api_key, service_id, deadline=monotonic_deadline(60)) as api:
        old_token = api.env_var(TOKEN_VAR)
        redact.add_secret(old_token)
        if old_token == new_token:
            on_status("the service already has the new token")
        api.set_env_var(TOKEN_VAR, new_token)
    on_status(f"{TOKEN_VAR} on {env.render_service} set to @{me.username}'s token")
    started = time.time()
    try:
        deploy(env, commit, timeout=timeout, poll=poll, on_status=on_status)
        checks = run_probe(
            Probe(env, commit, config, since=started, deadline=deadline, token=new_token)
        )
        failed = [c for c in checks if not c.ok]
        if failed:
            raise VerificationError(
                "probe failed: " + "; ".join(f"{c.name}: {c.cause or c.detail}" for c in failed)
            )
    except FatalError as failure:
        reverted = _revert(env, commit, old_token, api_key, service_id, timeout, poll, on_status)
        raise VerificationError(
            f"cutover failed ({failure.message}); {reverted}",
            hint="nothing else changed; fix the cause and run cutover again",
        ) from None
    return me.username


def _revert(env, commit, old_token, api_key, service_id, timeout, poll, on_status) -> str:
    """Put the old token back and redeploy; say what state the service is in."""
    if old_token is None:
        return f"the service had no {TOKEN_VAR} before, so there was nothing to put back"
    try:
        with RenderAPI(api_key, service_id, deadline=monotonic_deadline(60)) as api:
            api.set_env_var(TOKEN_VAR, old_token)
        on_status(f"{TOKEN_VAR} put back; redeploying")
        deploy(env, commit, timeout=timeout, poll=poll, on_status=on_status)
        old = bot_info(old_token)
        with httpx.Client(timeout=10) as client:
            health = read_health(client, env.health_url) if env.health_url else None
    except (FatalError, httpx.HTTPError, NotTheContract) as exc:
        return f"putting the old token back failed too ({exc}): look at the service now"
    if health is not None and health.bot_id == old.id:
        return f"the old token was put back and the service answers as @{old.username} again"
    return (
        "the old token was put back, but the service does not answer as the old bot yet: look at it"
    )
