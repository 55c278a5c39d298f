"""Runbook step 5 and its undo: an environment's bot token (production's, or staging's new bot), swapped
and probed.

Forward: production gets the new bot's token (through Render's single-key endpoint:
a PUT of the whole list would replace every other variable), ``main`` is deployed
and probed as the new bot; on failure the old token goes back and is redeployed.
What it replaced is recorded — before anything changes, so a run cancelled mid-swap
still leaves the way back — for the rollback window on the production service
itself, beside the token it keeps (Render's environment is where that service's
secrets already live): ``PREVIOUS_TELEGRAM_BOT_TOKEN`` (the old token, never
printed), ``PREVIOUS_BOT`` (its ``@username`` and id) and ``CUTOVER_AT``.

Back (``--back``): within ``rollback_window_days`` of ``CUTOVER_AT``, the previous
token — refused before any change unless it still is the recorded previous bot —
goes back the same way, ``main`` is deployed and probed as the *old* bot, and the
two tokens swap places so the cutover can be redone. Then the new bot's webhook, which still
names production's URL, is deleted: the instance there now refuses the new bot's updates
(its secret is bound to the old bot), and Telegram would retry each for a day while its users
got no answer. Without a webhook Telegram keeps them pending until the cutover is redone and
the new instance sets its webhook again.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ci_tools import redact
from ci_tools.clients.health import NotTheContract, Unreachable, health_of
from ci_tools.clients.render import RenderAPI, monotonic_deadline
from ci_tools.clients.telegram import BotInfo, TelegramError
from ci_tools.context import Context
from ci_tools.errors import ConfigError, FatalError, InputError, VerificationError
from ci_tools.pipeline.deploy import deploy
from ci_tools.pipeline.release import ReleaseRequest, probe_serving
from ci_tools.settings import Config, Environment

TOKEN_VAR = "TELEGRAM_BOT_TOKEN"  # noqa: S105 - variable names, not values
PREVIOUS_TOKEN_VAR = "PREVIOUS_TELEGRAM_BOT_TOKEN"  # noqa: S105
PREVIOUS_BOT_VAR = "PREVIOUS_BOT"
CUTOVER_AT_VAR = "CUTOVER_AT"
FINISHED_VAR = "CUTOVER_FINISHED"  # "<when> <@old bot>": the window was closed (cutover --finish)
Status = Callable[[str], None]


@dataclass(frozen=True)
class CutoverRequest:
    commit: str
    api_key: str
    service_id: str
    webhook_secret: str | None
    env_name: str = ""  # "" = the environment with cutover_target (production)
    timeout: float = 900
    deadline: float = 90
    poll: float = 2.0


@dataclass(frozen=True)
class CutoverResult:
    now: BotInfo  # the bot the environment answers as
    replaced: BotInfo | None  # the bot it answered as before
    window_ends: datetime | None  # until when ``--back`` is available


def whose(ctx: Context, token: str, variable: str) -> BotInfo:
    try:
        return ctx.bot_info(token)
    except TelegramError as exc:
        raise ConfigError(
            f"{variable} does not answer getMe ({exc.code} {exc.description})",
            hint="copy it again from @BotFather",
        ) from None


def window_end(config: Config, cutover_at: str | None) -> datetime | None:
    if not cutover_at:
        return None
    try:
        at = datetime.fromisoformat(cutover_at)
    except ValueError:
        return None
    return at + timedelta(days=config.rollback_window_days)


@dataclass(frozen=True)
class Window:
    """What a service keeps of its last cutover: the old bot and until when, or that it closed."""

    previous: str | None  # PREVIOUS_BOT: "@username id"
    ends: datetime | None  # CUTOVER_AT + rollback_window_days
    finished: str | None  # CUTOVER_FINISHED: "<date> <@old bot>", once cutover --finish ran


def read_window(api: RenderAPI, config: Config) -> Window:
    previous, at = api.env_var(PREVIOUS_BOT_VAR), api.env_var(CUTOVER_AT_VAR)
    return Window(previous, window_end(config, at), api.env_var(FINISHED_VAR))


def forward(
    ctx: Context, request: CutoverRequest, new_token: str, *, on_status: Status = lambda line: None
) -> CutoverResult:
    env = target(ctx, request)
    new = whose(ctx, new_token, "NEW_TELEGRAM_BOT_TOKEN")
    if not new.is_named(env.bot_username):
        raise ConfigError(
            f"NEW_TELEGRAM_BOT_TOKEN is @{new.username}'s, but {env.name} expects @{env.bot_username}",
            hint=f"use the new {env.name} bot's token, or fix bot_username in pyproject.toml",
        )
    with _api(ctx, request) as api:
        old_token = api.env_var(TOKEN_VAR)
    redact.add_secret(old_token)
    old = None
    if old_token and old_token != new_token:
        try:
            old = ctx.bot_info(old_token)
        except TelegramError:
            on_status(f"the service's current {TOKEN_VAR} does not answer getMe; it is kept anyway")
    at = datetime.now(UTC).replace(microsecond=0)
    record: dict[str, str] = {}
    if old_token and old_token != new_token:  # the way back is on the service before anything changes
        record = {
            PREVIOUS_TOKEN_VAR: old_token,
            PREVIOUS_BOT_VAR: f"@{old.username} {old.id}" if old else "unknown",
            CUTOVER_AT_VAR: at.isoformat(),
        }
    with _recorded(ctx, request, record):
        _swap(ctx, request, env, new_token, new, old_token, on_status, "cutover")
    return CutoverResult(new, old, window_end(ctx.config, at.isoformat()) if old_token else None)


def back(
    ctx: Context,
    request: CutoverRequest,
    previous_token: str | None,
    *,
    after_window: bool = False,
    on_status: Status = lambda line: None,
) -> CutoverResult:
    env = target(ctx, request)
    with _api(ctx, request) as api:
        stored = api.env_var(PREVIOUS_TOKEN_VAR)
        recorded = api.env_var(PREVIOUS_BOT_VAR) or ""
        cutover_at = api.env_var(CUTOVER_AT_VAR)
        current_token = api.env_var(TOKEN_VAR)
    previous_token = previous_token or stored
    if not previous_token:
        raise ConfigError(
            f"no previous token: {env.render_service} has no {PREVIOUS_TOKEN_VAR} (cutover records it)",
            hint=f"set {PREVIOUS_TOKEN_VAR} to the old bot's token (as a secret, or on the service)",
        )
    redact.add_secret(previous_token)
    redact.add_secret(current_token)
    ends = window_end(ctx.config, cutover_at)
    if ends is not None and datetime.now(UTC) > ends and not after_window:
        raise InputError(
            f"the rollback window ended on {ends:%Y-%m-%d %H:%M} UTC ({ctx.config.rollback_window_days} days "
            "after the cutover); the old bot may be gone or answered elsewhere since",
            hint="pass --after-window if you are sure",
        )
    previous = whose(ctx, previous_token, PREVIOUS_TOKEN_VAR)
    recorded_id = recorded.split()[-1] if recorded.split() else ""
    if recorded_id.isdigit() and int(recorded_id) != previous.id:
        raise ConfigError(
            f"{PREVIOUS_TOKEN_VAR} is @{previous.username}'s, but the cutover replaced {recorded.split()[0]}",
            hint=f"use the token of the bot {env.name} ran before the cutover",
        )
    if previous.is_named(env.bot_username):
        raise ConfigError(
            f"{PREVIOUS_TOKEN_VAR} is @{previous.username}'s, the {env.name} bot itself: nothing to go back to",
            hint="pass the old bot's token",
        )
    current = ctx.bot_info(current_token) if current_token else None
    old_env = dataclasses.replace(env, bot_username=previous.username)  # probe it as the old bot
    record = {}
    if current_token:  # so the cutover can be redone; recorded before anything changes
        record = {
            PREVIOUS_TOKEN_VAR: current_token,
            PREVIOUS_BOT_VAR: f"@{current.username} {current.id}" if current else "unknown",
        }
    with _recorded(ctx, request, record):
        _swap(ctx, request, old_env, previous_token, previous, current_token, on_status, "cutover --back")
    if current_token and current is not None:
        on_status(_unhook(ctx, current_token, current, env))
    return CutoverResult(previous, current, ends)


def _unhook(ctx: Context, token: str, bot: BotInfo, env: Environment) -> str:
    """Take ``bot``'s webhook off ``env``'s URL; what happened, in one line (never fatal: the
    swap back is done, and a webhook left there only delays the new bot's users)."""
    try:
        with ctx.telegram(token) as telegram:
            released = telegram.release_webhook(env.base_url)
    except FatalError as exc:
        return f"⚠ @{bot.username}'s webhook could not be deleted ({exc.message}): delete it by hand"
    if released:
        return f"@{bot.username}'s webhook deleted from {env.name}'s URL: Telegram keeps its updates until the cutover"
    return f"@{bot.username}'s webhook does not point at {env.name}: left as it is"


@contextlib.contextmanager
def _recorded(ctx: Context, request: CutoverRequest, values: dict[str, str]) -> Iterator[None]:
    """Record ``values`` on the service before the swap; if the swap fails (and was reverted),
    put back what was recorded there before. A run cancelled mid-swap leaves them recorded:
    the old token is then still on the service for ``cutover --back``."""
    with _api(ctx, request) as api:
        before = {name: api.env_var(name) for name in values}
        for name, value in values.items():
            api.set_env_var(name, value)
    try:
        yield
    except FatalError:
        with _api(ctx, request) as api:
            for name, was in before.items():
                if was is None:
                    api.delete_env_var(name)
                else:
                    api.set_env_var(name, was)
        raise


def target(ctx: Context, request: CutoverRequest) -> Environment:
    """The environment whose bot changes: the one named, else the cutover target (production)."""
    if request.env_name:
        return ctx.config.env(request.env_name)
    return ctx.config.role("cutover_target")


def finish(ctx: Context, request: CutoverRequest, *, now: bool = False) -> tuple[str, datetime | None]:
    """After the rollback window (or ``now``): forget the previous bot on the service, so its
    token no longer sits beside the live one. The old bot itself is left alone: it may be
    the staging bot by now. Returns the bot forgotten and when the window ended."""
    env = target(ctx, request)
    with _api(ctx, request) as api:
        previous = api.env_var(PREVIOUS_BOT_VAR)
        ends = window_end(ctx.config, api.env_var(CUTOVER_AT_VAR))
        if not previous and not api.env_var(PREVIOUS_TOKEN_VAR):
            raise InputError(
                f"{env.render_service} keeps no previous bot: nothing to finish",
                hint="the window was finished already, or no cutover ran",
            )
        if ends is not None and datetime.now(UTC) < ends and not now:
            raise InputError(
                f"the rollback window of {env.name} is open until {ends:%Y-%m-%d %H:%M} UTC: "
                f"{(previous or 'the old bot').split()[0]} can still come back with cutover --back",
                hint="wait until then, or pass --now --yes to close it early",
            )
        for name in (PREVIOUS_TOKEN_VAR, PREVIOUS_BOT_VAR, CUTOVER_AT_VAR):
            api.delete_env_var(name)
        forgotten = (previous or "unknown").split()[0]
        api.set_env_var(FINISHED_VAR, f"{datetime.now(UTC):%Y-%m-%d} {forgotten}")
    return forgotten, ends


def _api(ctx: Context, request: CutoverRequest) -> RenderAPI:
    return ctx.render(request.api_key, request.service_id, deadline=monotonic_deadline(60))


def _swap(
    ctx: Context,
    request: CutoverRequest,
    env: Environment,
    token: str,
    bot: BotInfo,
    old_token: str | None,
    on_status: Status,
    what: str,
) -> None:
    """Put ``token`` on the service, deploy, probe as ``bot``; on failure put ``old_token`` back."""
    with _api(ctx, request) as api:
        api.set_env_var(TOKEN_VAR, token)
    on_status(f"{TOKEN_VAR} on {env.render_service} set to @{bot.username}'s token")
    probe = ReleaseRequest(
        env,
        request.commit,
        token,
        timeout=request.timeout,
        deadline=request.deadline,
        poll=request.poll,
        webhook_secret=request.webhook_secret,
    )
    try:
        deployed = deploy(ctx, env, request.commit, timeout=request.timeout, poll=request.poll, on_status=on_status)
        # Webhook errors before the switch are the overlap's: the old instance refuses the new
        # bot's updates on purpose (its secret is bound to the old bot) and Telegram delivers them
        # again to the new one. Only errors after the new instance serves — /healthz reports the
        # new bot, not merely the commit, which the old instance runs too — count against it.
        probe_serving(
            ctx.with_config(_config_for(ctx.config, env)),
            probe,
            request.commit,
            deployed.finished_at,
            f"Probe of {env.name} as @{bot.username}",
            lambda title, checks: None,
            on_status,
        )
    except FatalError as failure:
        reverted = _revert(ctx, request, env, old_token, on_status)
        raise VerificationError(
            f"{what} failed ({failure.message}); {reverted}",
            hint="nothing else changed; fix the cause and run again",
        ) from None


def _config_for(config: Config, env: Environment) -> Config:
    """The config with ``env`` in place of its namesake (the probe judges against it)."""
    return dataclasses.replace(config, environments={**config.environments, env.name: env})


def _revert(ctx: Context, request: CutoverRequest, env: Environment, old_token: str | None, on_status: Status) -> str:
    """Put the old token back and redeploy; say what state the service is in."""
    if old_token is None:
        return f"the service had no {TOKEN_VAR} before, so there was nothing to put back"
    try:
        with _api(ctx, request) as api:
            api.set_env_var(TOKEN_VAR, old_token)
        on_status(f"{TOKEN_VAR} put back; redeploying")
        deploy(ctx, env, request.commit, timeout=request.timeout, poll=request.poll, on_status=on_status)
        old = ctx.bot_info(old_token)
        health = health_of(env.health_url, ctx.request_timeout(10)) if env.health_url else None
    except (FatalError, Unreachable, NotTheContract) as exc:
        return f"putting the old token back failed too ({exc}): look at the service now"
    if health is not None and health.bot_id == old.id:
        return f"the old token was put back and the service answers as @{old.username} again"
    return (
        f"the old token (@{old.username}) was put back and redeployed, "
        "but the service does not answer as it yet: look at it"
    )
