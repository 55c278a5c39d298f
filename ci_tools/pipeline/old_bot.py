"""The daily user's old bot during the move: what send-back and finish-move both read of it.

The old bot is the testers-only environment's (staging's) service: until the move is finished it
serves the daily user from their legacy keys. Both commands run in production's environment, which
holds staging's service id, its bot's token and its Redis (``SOURCE_REDIS_URL``, the migration's
source) under ``STAGING_<NAME>`` names, as preflight does; staging holds nothing of production's.

What the service is set to (Render's environment) says whom the old bot serves: ``MOVED_TO``
answers everyone with a link, ``TESTER_IDS`` serves the testers alone, ``KEY_PREFIX`` says where it
reads memory; ``MOVE_FINISHED`` is finish-move's record that the window closed. The user's
profile on each side says where they are now: mindmate (and any bot that keeps the same record)
writes ``bot_id``/``bot_since`` when a user arrives at it and ``last_seen`` on every visit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ci_tools.clients.render import RenderAPI, monotonic_deadline
from ci_tools.context import Context
from ci_tools.errors import RemoteError
from ci_tools.memory.model import CONNECTION_ERRORS
from ci_tools.memory.sides import connect
from ci_tools.settings import NO_PREFIX, Environment

FINISHED_VAR = "MOVE_FINISHED"  # "<date> <@new bot> user <id>": finish-move closed the window
SETTINGS = ("KEY_PREFIX", "MOVED_TO", "TESTER_IDS", "PRODUCTION_BOT", FINISHED_VAR)


def old_env(ctx: Context) -> Environment:
    """The environment whose bot the daily user used before the move (testers_only: staging)."""
    return ctx.config.role("testers_only")


def new_env(ctx: Context) -> Environment:
    return ctx.config.role("cutover_target")


def old_secret(ctx: Context, name: str, purpose: str) -> str:
    """``<OLD ENV>_<NAME>`` as production's environment holds it (a missing one is named)."""
    return ctx.secret(f"{old_env(ctx).name.upper()}_{name}", purpose=purpose)


def old_service(ctx: Context, *, seconds: float = 60) -> RenderAPI:
    """Render's API on the old bot's service: staging's own key where production holds one
    (``STAGING_RENDER_API_KEY``, scoped to staging), else production's account-wide key."""
    env = old_env(ctx)
    key = ctx.env_secret(env, "RENDER_API_KEY") or ctx.secret("RENDER_API_KEY", purpose="Render's API")
    service = old_secret(ctx, "RENDER_SERVICE_ID", f"{env.render_service}'s id")
    return ctx.render(key, service, deadline=monotonic_deadline(seconds))


def service_settings(api: RenderAPI) -> dict[str, str | None]:
    return {name: api.env_var(name) for name in SETTINGS}


def prefix_of(settings: dict[str, str | None]) -> str | None:
    """The key prefix the service's KEY_PREFIX names ("" for none); None when unset."""
    raw = settings.get("KEY_PREFIX")
    if raw is None or not raw.strip():
        return None
    return "" if raw.strip() == NO_PREFIX else raw.strip()


def testers(settings: dict[str, str | None]) -> frozenset[int] | None:
    raw = (settings.get("TESTER_IDS") or "").strip()
    if not raw:
        return None
    return frozenset(int(part) for part in raw.replace(" ", "").split(",") if part.isdigit())


@dataclass(frozen=True)
class Visits:
    """One side's record of the user (their profile hash); all None where the bot kept none."""

    bot_id: int | None = None  # the bot that saw them last
    since: int | None = None  # when they first wrote to it (unix seconds)
    last_seen: int | None = None

    @property
    def since_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.since, UTC) if self.since is not None else None


def visits(ctx: Context, variable: str, prefix: str, user_id: int, role: str) -> Visits | None:
    """``<prefix>user:<id>:profile`` in the Redis ``variable`` names; None when it holds no profile."""
    client = connect(ctx.secret(variable, purpose=f"the {role} Redis"), role, timeout=ctx.timeout)
    try:
        raw = client.hgetall(f"{prefix}user:{user_id}:profile".encode())
    except CONNECTION_ERRORS as exc:
        raise RemoteError(f"the {role} Redis stopped answering ({type(exc).__name__})") from None
    finally:
        client.close()
    if not raw:
        return None
    fields = {_text(k): _text(v) for k, v in raw.items()}

    def number(name: str) -> int | None:
        value = fields.get(name, "")
        return int(value) if value.isdigit() else None

    return Visits(number("bot_id"), number("bot_since"), number("last_seen"))


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
