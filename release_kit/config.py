"""What the kit reads from the environment (Render sets it), once, at start.

Every bad value is a ``ConfigError`` whose message is one line naming the variable and the fix;
``Kit.from_environ`` turns it into that line and a non-zero exit, never a traceback, so a
misconfigured deploy fails its start and Render keeps the previous instance serving.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_PREFIXES = {"staging": "dev:", "production": "prod:"}
# KEY_PREFIX=none: the keys carry no prefix, as a bot written before the pipeline stored them.
NO_PREFIX = "none"
# The pipeline's probe user: Telegram user ids fit in 52 bits and are handed out far below this
# one, so no real person has it (ci-tools uses the same default).
DEFAULT_PROBE_USER_ID = 2**52 - 1
DEFAULT_PORT = 10000  # Render's default PORT
_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # Telegram's rule for secret_token


class ConfigError(Exception):
    """A variable is missing or malformed; the message is one line naming the fix."""


@dataclass(frozen=True)
class KitConfig:
    env: str
    key_prefix: str  # "" for KEY_PREFIX=none
    redis_url: str
    webhook_secret: str  # TELEGRAM_WEBHOOK_SECRET as set; the webhook uses it bound to the bot
    commit: str
    external_url: str | None
    port: int
    host: str
    probe_user_id: int = DEFAULT_PROBE_USER_ID
    tester_ids: frozenset[int] | None = None  # set: only these users (and the probe user) get the bot
    production_bot: str | None = None  # where everyone else is sent
    moved_to: str | None = None  # set: the bot only points everyone at this one
    telegram_api_url: str | None = None  # None: python-telegram-bot's own (api.telegram.org)
    owner_chat_id: int | None = None  # OWNER_CHAT_ID: where /oops tells the owner (release_kit.oops)

    def __repr__(self) -> str:  # never the secret or the Redis password
        return f"KitConfig(env={self.env!r}, key_prefix={self.key_prefix!r}, commit={self.commit[:7]!r})"

    @property
    def short_commit(self) -> str:
        return self.commit[:7] if self.commit else "unknown"


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set: set it on the Render service (Environment tab)")
    return value


def _username(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip().lstrip("@") or None
    if value and not _USERNAME.match(value):
        raise ConfigError(f"{name}={value!r} is not a Telegram username")
    return value


def _prefix(environ: Mapping[str, str], env: str) -> str:
    prefix = environ.get("KEY_PREFIX", "").strip() or DEFAULT_PREFIXES.get(env)
    if not prefix:
        raise ConfigError(f"KEY_PREFIX is not set and ENV={env!r} has no default: set KEY_PREFIX (e.g. 'dev:')")
    if prefix == NO_PREFIX:
        return ""
    if not prefix.endswith(":"):
        raise ConfigError(f"KEY_PREFIX={prefix!r} must end with ':' (e.g. 'prod:'), or be 'none' for unprefixed keys")
    return prefix


def _port(environ: Mapping[str, str]) -> int:
    raw = environ.get("PORT", "").strip() or str(DEFAULT_PORT)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"PORT={raw!r}: ports must be whole numbers from 1 to 65535 (Render sets PORT itself)")
    return int(raw)


def _ids(environ: Mapping[str, str]) -> tuple[frozenset[int] | None, int]:
    testers = environ.get("TESTER_IDS", "").strip()
    try:
        tester_ids = frozenset(int(t) for t in testers.split(",") if t.strip()) if testers else None
        probe_user_id = int(environ.get("PROBE_USER_ID", "").strip() or DEFAULT_PROBE_USER_ID)
    except ValueError:
        raise ConfigError(
            "TESTER_IDS must be Telegram user ids separated by commas, and PROBE_USER_ID one id"
        ) from None
    return tester_ids, probe_user_id


def read_config(environ: Mapping[str, str] | None = None) -> KitConfig:
    """The kit's settings from ``environ`` (default: this process's); ConfigError on a bad value."""
    environ = dict(os.environ if environ is None else environ)
    env = _required(environ, "ENV")
    prefix = _prefix(environ, env)
    port = _port(environ)
    moved_to = _username(environ, "MOVED_TO")
    tester_ids, probe_user_id = _ids(environ)
    production_bot = _username(environ, "PRODUCTION_BOT")
    if tester_ids is not None and not production_bot:
        raise ConfigError("TESTER_IDS is set but PRODUCTION_BOT is not: set the production bot's username")
    secret = _required(environ, "TELEGRAM_WEBHOOK_SECRET")
    if not _SECRET.fullmatch(secret):
        raise ConfigError("TELEGRAM_WEBHOOK_SECRET may hold only A-Z, a-z, 0-9, _ and - (Telegram's rule)")
    api = environ.get("TELEGRAM_API_URL", "").strip().rstrip("/") or None
    if api and not api.startswith(("https://", "http://")):
        raise ConfigError(f"TELEGRAM_API_URL={api!r} is not an http(s) URL: unset it to use api.telegram.org")
    external = environ.get("RENDER_EXTERNAL_URL", "").strip().rstrip("/") or None
    if external and not external.startswith(("https://", "http://")):
        raise ConfigError(f"RENDER_EXTERNAL_URL={external!r} is not an http(s) URL (Render sets it itself)")
    return KitConfig(
        env=env,
        key_prefix=prefix,
        redis_url=_required(environ, "REDIS_URL"),
        webhook_secret=secret,
        commit=environ.get("RENDER_GIT_COMMIT", "").strip(),
        external_url=external,
        port=port,
        host=environ.get("HOST", "").strip() or "0.0.0.0",  # noqa: S104 - Render routes to 0.0.0.0:$PORT
        probe_user_id=probe_user_id,
        tester_ids=tester_ids,
        production_bot=production_bot,
        moved_to=moved_to,
        telegram_api_url=api,
        owner_chat_id=_owner(environ),
    )


def _owner(environ: Mapping[str, str]) -> int | None:
    raw = environ.get("OWNER_CHAT_ID", "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ConfigError("OWNER_CHAT_ID must be your numeric Telegram user id (digits)") from None


def bot_secret(secret: str, token: str) -> str:
    """TELEGRAM_WEBHOOK_SECRET bound to one bot: HMAC-SHA256 of ``telegram-bot:<bot id>`` (the
    token's part before ':'), base64url, 43 characters of Telegram's allowed set.

    During a cutover the new bot's instance sets its webhook while the public URL still routes to
    the old instance. With one secret per environment the old instance would take the new bot's
    updates and answer them as the old bot; bound to the bot, it refuses them (403), and Telegram
    delivers them again until the new instance serves (ci_tools.clients.telegram derives the same).
    """
    bot_id = token.split(":", 1)[0]
    digest = hmac.new(secret.encode(), f"telegram-bot:{bot_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
