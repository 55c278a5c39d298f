"""The bot's settings, read once from environment variables (Render sets them).

What every bot of the pipeline reads (ENV, KEY_PREFIX, REDIS_URL, the webhook secret, the tester
allowlist, ...) is the kit's (``release_kit.config``); MindMate adds its token and its history cap.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from release_kit import DEFAULT_PROBE_USER_ID, ConfigError, KitConfig, bot_secret, read_config

__all__ = ["DEFAULT_PROBE_USER_ID", "Settings", "SettingsError", "bot_secret", "load_settings"]

SettingsError = ConfigError  # a setting is missing or malformed; the message is one line naming the fix


@dataclass(frozen=True)
class Settings:
    kit: KitConfig
    token: str
    history_limit: int = 50

    def __repr__(self) -> str:  # never show the token, secret or Redis password
        return f"Settings(env={self.env!r}, key_prefix={self.key_prefix!r}, commit={self.commit!r})"

    @property
    def env(self) -> str:
        return self.kit.env

    @property
    def key_prefix(self) -> str:
        return self.kit.key_prefix

    @property
    def redis_url(self) -> str:
        return self.kit.redis_url

    @property
    def commit(self) -> str:
        return self.kit.commit

    @property
    def short_commit(self) -> str:
        return self.kit.short_commit

    @property
    def host(self) -> str:
        return self.kit.host

    @property
    def port(self) -> int:
        return self.kit.port

    @property
    def moved_to(self) -> str | None:
        return self.kit.moved_to


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    environ = dict(os.environ if environ is None else environ)
    kit = read_config(environ)
    raw = environ.get("HISTORY_LIMIT", "").strip() or "50"
    if not raw.isdigit():
        raise SettingsError(f"HISTORY_LIMIT={raw!r} is not a whole number: set how many recent messages to keep")
    token = environ.get("TELEGRAM_BOT_TOKEN", "").strip()
    if not token:
        raise SettingsError("TELEGRAM_BOT_TOKEN is not set: set it on the Render service (Environment tab)")
    return Settings(kit=kit, token=token, history_limit=max(1, int(raw)))
