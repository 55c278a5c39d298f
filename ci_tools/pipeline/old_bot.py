"""The daily user's old bot during the move: what send-back and finish-move both read of it.

The old bot is the testers-only environment's (staging's) service: until the move is finished it
serves the daily user from their legacy keys. Both commands run in production's environment, which
holds staging's service id, its bot's token and its Redis (``SOURCE_REDIS_URL``, the migration's
source) under ``STAGING_<NAME>`` names, as preflight does; staging holds nothing of production's.

What the service is set to (Render's environment) says whom the old bot serves: ``MOVED_TO``
answers everyone with a link, ``TESTER_IDS`` serves the testers alone, ``KEY_PREFIX`` says where it
reads memory; ``MOVE_FINISHED`` is finish-move's record that the window closed. The kit's arrival
record on each side says where the user is now (``<prefix>kit:arrival:<id>``: ``bot_id``, ``since``,
``last``; docs/CONTRACT.md): the kit keeps it for any bot it serves, whatever the bot's own keys.

mindmate's legacy ``<prefix>user:<id>:profile`` (``bot_id``, ``bot_since``, ``last_seen``) is read
where no arrival record exists, and only for that: a mindmate deployed before the kit kept the
record wrote those fields itself, and such a bot is exactly what a move meets — the old bot on
staging still runs the release the daily user used for months, and production may have gone live
with one before this record existed. ``last_seen`` is read beside the record too: an old deployed
mindmate the user was sent back to updates its profile, never the record send-back copied there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ci_tools.clients.render import RenderAPI, monotonic_deadline
from ci_tools.context import Context
from ci_tools.errors import RemoteError
from ci_tools.memory.keys import KIT_ARRIVAL
from ci_tools.memory.model import CONNECTION_ERRORS
from ci_tools.memory.servers import connect
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
    """One side's record of the user; all None where the bot kept none."""

    bot_id: int | None = None  # the bot that saw them last
    since: int | None = None  # when they first wrote to it (unix seconds)
    last_seen: int | None = None
    kit: bool = True  # from the kit's arrival record (False: mindmate's legacy profile)
    not_a_record: bool = False  # the record's name holds another type: no kit wrote it, nor can

    @property
    def since_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.since, UTC) if self.since is not None else None


def arrival_key(prefix: str, user_id: int) -> str:
    return prefix + KIT_ARRIVAL.format(user_id=user_id)


def legacy_profile_key(prefix: str, user_id: int) -> str:
    return f"{prefix}user:{user_id}:profile"


def visits(ctx: Context, variable: str, prefix: str, user_id: int, role: str) -> Visits | None:
    """The kit's arrival record of the user in the Redis ``variable`` names, else an old deployed
    mindmate's profile (module docstring); None when it holds neither. One round trip.

    Either name may hold another type: an owner's bot keeps its own keys, and its
    ``user:<id>:profile`` may well be a JSON string. That is no old mindmate's profile, so it is
    read as none (WRONGTYPE is not a Redis that stopped answering); a record's name holding another
    type is flagged (``not_a_record``), for finish-move to name it."""
    client = connect(ctx.secret(variable, purpose=f"the {role} Redis"), role, timeout=ctx.timeout, variable=variable)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(arrival_key(prefix, user_id).encode())
        pipe.hgetall(legacy_profile_key(prefix, user_id).encode())
        record_raw, profile_raw = pipe.execute(raise_on_error=False)  # a reply error comes back in its place
    except CONNECTION_ERRORS as exc:
        raise RemoteError(f"the {role} Redis stopped answering ({type(exc).__name__})") from None
    finally:
        client.close()
    record, profile = _fields(record_raw), _fields(profile_raw)
    if isinstance(record_raw, Exception):
        return Visits(last_seen=_number(profile, "last_seen"), not_a_record=True)
    if not record and not profile:
        return None
    seen = [s for s in (_number(record, "last"), _number(profile, "last_seen")) if s is not None]
    last_seen = max(seen) if seen else None
    if record:
        return Visits(_number(record, "bot_id"), _number(record, "since"), last_seen)
    return Visits(_number(profile, "bot_id"), _number(profile, "bot_since"), last_seen, kit=False)


def _fields(raw: object) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def _number(fields: dict[str, str], name: str) -> int | None:
    value = fields.get(name, "")
    return int(value) if value.isdigit() else None


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
