"""The two Redis sides of a memory command (source, target): connecting, naming them safely, and
their ``<prefix>meta:env`` markers. A side whose marker names another environment is refused, and a
source without one unless told it is a legacy bot's Redis."""

from __future__ import annotations

import hashlib

import redis

from ci_tools.context import Context
from ci_tools.errors import ConfigError, RemoteError, VerificationError
from ci_tools.http import FIRST_CONTACT
from ci_tools.memory.model import CONNECTION_ERRORS
from ci_tools.settings import Environment


def connect(url: str, role: str, *, timeout: float | None = None, variable: str | None = None) -> redis.Redis:
    """A client that never decodes (binary values survive) and fails fast when unreachable: first
    contact on a short timeout (8 s at most), then ``timeout`` for commands (``CI_TOOLS_TIMEOUT``; default 60 s).
    ``variable``: the secret the URL came from, for the hint (default ``<ROLE>_REDIS_URL``)."""
    connect_timeout, secret = min(timeout or 10, FIRST_CONTACT), variable or f"{role.upper()}_REDIS_URL"
    try:
        # The first contact has a client of its own: a pool keeps the connection it made, with the
        # timeout it was made with (redis-py 8), so changing the pool's settings after the ping left
        # every command on the short one — a 50 MB key's read failed at 8 s whatever CI_TOOLS_TIMEOUT said.
        with redis.Redis.from_url(url, socket_connect_timeout=connect_timeout, socket_timeout=connect_timeout) as first:
            first.ping()
        client = redis.Redis.from_url(
            url, decode_responses=False, socket_connect_timeout=connect_timeout, socket_timeout=timeout or 60
        )
    except ValueError:
        raise ConfigError(
            f"the {role} Redis URL is malformed", hint="expected redis://[user:password@]host:port[/db]"
        ) from None
    except redis.AuthenticationError:
        raise ConfigError(f"the {role} Redis refused the password", hint=f"check {secret}") from None
    except redis.ResponseError as exc:  # the server's own words (no secret): a database it has not, say
        raise ConfigError(
            f"the {role} Redis refused the first contact: {exc}", hint=f"check the /db and user of {secret}"
        ) from None
    except CONNECTION_ERRORS as exc:
        raise RemoteError(
            f"cannot reach the {role} Redis at {label(url)} ({type(exc).__name__})",
            hint=f"check {secret}'s host and port (rediss:// for a TLS server, redis:// else) and that it is up",
        ) from None
    return client


def label(url: str) -> str:
    """host:port/db — what a person may see of a Redis URL."""
    kwargs = redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def server_id(url: str) -> str:
    """Which Key Value a URL reaches, as a digest that names no secret: user, host, port, database.
    Render's Key Values share one regional host and differ by the user (``red-…``); a password alone
    is the user ``default``, so ``redis://:pw@`` and ``redis://default:pw@`` are one Key Value."""
    kwargs = redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
    user = "" if kwargs.get("username") in (None, "default") else kwargs["username"]  # no user's digest as before
    seen = f"{user}@{kwargs.get('host', '')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
    return hashlib.sha256(seen.encode()).hexdigest()[:16]


def identity(client: redis.Redis) -> tuple[str, int]:
    run_id = client.info("server").get("run_id", "")
    db = int(client.connection_pool.connection_kwargs.get("db", 0) or 0)
    return (run_id.decode() if isinstance(run_id, bytes) else str(run_id)), db


def marker(client: redis.Redis, prefix: bytes) -> str | None:
    value = client.get(prefix + b"meta:env")
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def check_marker(
    client: redis.Redis, prefix: bytes, env: str, role: str, flag: str, *, legacy: bool = False, unmarked: str = ""
) -> None:
    """The side's marker must name its environment; a legacy source (``--legacy-source``) or an
    unmarked target (``unmarked``, the flag that accepts one) may have none, but never one naming another."""
    found = marker(client, prefix)
    if found is None and role == "source" and not legacy:
        raise VerificationError(
            f"the source Redis has no {prefix.decode()}meta:env marker, so nothing says it is {env}'s",
            hint="if it is a legacy bot's Redis that never wrote one, pass --legacy-source "
            "(and --source-prefix '' if its keys carry no prefix); else check SOURCE_REDIS_URL",
        )
    if found is None and legacy:
        return
    if found != env:
        where = f"{prefix.decode()}meta:env"
        what = "is not set" if found is None else f"says {found!r}"
        check = f"check {role.upper()}_REDIS_URL points at the {env} Redis (its bot writes the marker at start)"
        hint = f"{check}, or pass {flag} if you are sure"
        if found is None and unmarked:
            hint = f"if its bot writes no marker (the base level), pass {unmarked}; else {check}"
        raise VerificationError(
            f"the {role} Redis marker {where} {what}, but --{'from' if role == 'source' else 'to'} is {env!r}",
            hint=hint,
        )


def open_side(
    ctx: Context, role: str, purpose: str, env: Environment | None = None, prefix: str = "", *, legacy: bool = False
) -> redis.Redis:
    """Connect to the source or target Redis (from SOURCE_/TARGET_REDIS_URL); given ``env``, check its marker."""
    client = connect(ctx.secret(f"{role.upper()}_REDIS_URL", purpose=purpose), role, timeout=ctx.timeout)
    if env:
        check_marker(client, prefix.encode(), env.name, role, "--ignore-env-markers", legacy=legacy)
    return client
