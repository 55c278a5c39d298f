"""``python -m mindmate``: check the wiring, then serve the webhook.

The checks run before the server so that a wrong environment ends the start with
one clear line (and Render keeps the previous instance), not a stack trace.
"""

from __future__ import annotations

import logging
import os
import sys

import redis
import uvicorn

from mindmate.app import create_app
from mindmate.settings import Settings, SettingsError, load_settings
from mindmate.store import EnvMismatchError, claim_env_marker  # the kit's, as every bot's
from release_kit import redact

log = logging.getLogger("mindmate")


def prepare() -> Settings:
    """Read settings, claim the Redis for this environment; exit with one line on failure."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact.hide_environ(os.environ)
    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.exit(f"mindmate: {exc}")
    log.info(
        "starting MindMate ENV=%s commit=%s key_prefix=%s%s",
        settings.env,
        settings.short_commit,
        settings.key_prefix,
        f" moved_to=@{settings.moved_to}" if settings.moved_to else "",
    )
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=5)
        claim_env_marker(client, settings.key_prefix, settings.env)
    except EnvMismatchError as exc:
        sys.exit(f"mindmate: {exc}")
    except (redis.RedisError, OSError) as exc:
        # Serve anyway: /healthz answers 503 until Redis answers, so Render keeps routing to
        # the old instance, and updates get a 503 so Telegram delivers them again later.
        log.warning(
            "Redis does not answer (%s): /healthz says 503 until it does; check REDIS_URL",
            redact.redact(str(exc)),
        )
    return settings


def main() -> None:
    settings = prepare()
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False)


if __name__ == "__main__":
    main()
