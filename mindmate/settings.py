"""The bot's settings, read once from environment variables (Render sets them)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

DEFAULT_PREFIXES = {"staging": "dev:", "production": "prod:"}
# KEY_PREFIX=none: the keys carry no prefix, as a legacy bot wrote them. The daily user's bot
# keeps it until their memory has moved, so that no deploy hides what it already knows.
NO_PREFIX = "none"
# The pipeline's probe user: Telegram user ids fit in 52 bits and are handed out far
# below this one, so no real person has it (ci-tools uses the same default).
DEFAULT_PROBE_USER_ID = 2**52 - 1
_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")


class SettingsError(Exception):
    """A setting is missing or malformed; the message is one line naming the fix."""


@dataclass(frozen=True)
class Settings:
    env: str
    token: str
    webhook_secret: str
    redis_url: str
    key_prefix: str
    port: int
    host: str
    external_url: str | None
    commit: str
    moved_to: str | None
    telegram_api_url: str
    history_limit: int = 50
    tester_ids: frozenset[int] | None = None  # set: only these users get the bot (staging)
    production_bot: str | None = None  # where everyone else is sent
    probe_user_id: int = DEFAULT_PROBE_USER_ID

    def __repr__(self) -> str:  # never show the token, secret or Redis password
        return f"Settings(env={self.env!r}, key_prefix={self.key_prefix!r}, commit={self.commit!r})"

    @property
    def bot_webhook_secret(self) -> str:
        """The secret this instance sets on its webhook and checks on every update: see bot_secret."""
        return bot_secret(self.webhook_secret, self.token)

    @property
    def short_commit(self) -> str:
        return self.commit[:7] if self.commit else "unknown"

    @property
    def webhook_url(self) -> str | None:
        return f"{self.external_url.rstrip('/')}/telegram" if self.external_url else None


def _required(environ: dict[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is not set: set it on the Render service (Environment tab)")
    return value


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    environ = dict(os.environ if environ is None else environ)
    env = _required(environ, "ENV")
    prefix = environ.get("KEY_PREFIX", "").strip() or DEFAULT_PREFIXES.get(env)
    if not prefix:
        raise SettingsError(f"KEY_PREFIX is not set and ENV={env!r} has no default: set KEY_PREFIX (e.g. 'dev:')")
    if prefix == NO_PREFIX:
        prefix = ""
    elif not prefix.endswith(":"):
        raise SettingsError(f"KEY_PREFIX={prefix!r} must end with ':' (e.g. 'prod:'), or be 'none' for unprefixed keys")
    try:
        port = int(environ.get("PORT", "10000"))
        history_limit = int(environ.get("HISTORY_LIMIT", "50"))
    except ValueError:
        raise SettingsError("PORT and HISTORY_LIMIT must be whole numbers") from None
    moved_to = environ.get("MOVED_TO", "").strip().lstrip("@") or None
    if moved_to and not _USERNAME.match(moved_to):
        raise SettingsError(f"MOVED_TO={moved_to!r} is not a Telegram username")
    testers_raw = environ.get("TESTER_IDS", "").strip()
    production_bot = environ.get("PRODUCTION_BOT", "").strip().lstrip("@") or None
    try:
        tester_ids = frozenset(int(t) for t in testers_raw.split(",") if t.strip()) if testers_raw else None
        probe_user_id = int(environ.get("PROBE_USER_ID") or DEFAULT_PROBE_USER_ID)
    except ValueError:
        raise SettingsError(
            "TESTER_IDS must be Telegram user ids separated by commas, and PROBE_USER_ID one id"
        ) from None
    if tester_ids is not None and not production_bot:
        raise SettingsError("TESTER_IDS is set but PRODUCTION_BOT is not: set the production bot's username")
    if production_bot and not _USERNAME.match(production_bot):
        raise SettingsError(f"PRODUCTION_BOT={production_bot!r} is not a Telegram username")
    secret = _required(environ, "TELEGRAM_WEBHOOK_SECRET")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
        raise SettingsError("TELEGRAM_WEBHOOK_SECRET may hold only A-Z, a-z, 0-9, _ and - (Telegram's rule)")
    return Settings(
        env=env,
        token=_required(environ, "TELEGRAM_BOT_TOKEN"),
        webhook_secret=secret,
        redis_url=_required(environ, "REDIS_URL"),
        key_prefix=prefix,
        port=port,
        host=environ.get("HOST", "0.0.0.0"),  # noqa: S104 - Render routes to 0.0.0.0:$PORT
        external_url=environ.get("RENDER_EXTERNAL_URL", "").strip() or None,
        commit=environ.get("RENDER_GIT_COMMIT", "").strip(),
        moved_to=moved_to,
        telegram_api_url=(environ.get("TELEGRAM_API_URL") or "https://api.telegram.org").rstrip("/"),
        history_limit=max(1, history_limit),
        tester_ids=tester_ids,
        production_bot=production_bot,
        probe_user_id=probe_user_id,
    )


def bot_secret(secret: str, token: str) -> str:
    """TELEGRAM_WEBHOOK_SECRET bound to one bot: HMAC-SHA256 of the bot's id (the token's part
    before ':'), base64url, 43 characters of Telegram's allowed set.

    During a cutover the new bot's instance sets its webhook while the public URL still routes to
    the old instance. With one secret per environment the old instance would take the new bot's
    updates and answer them as the old bot; bound to the bot, it refuses them (403), and Telegram
    delivers them again until the new instance serves (ci_tools.clients.telegram derives the same).
    """
    bot_id = token.split(":", 1)[0]
    digest = hmac.new(secret.encode(), f"telegram-bot:{bot_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
