"""release_kit: what a python-telegram-bot bot needs to meet the release pipeline's contract.

An owner keeps their handlers as they are and changes a handful of lines (docs/CONTRACT.md):

    from release_kit import Kit

    kit = Kit.from_environ()                          # ENV, KEY_PREFIX, REDIS_URL, ... (one line on a bad value)
    application = kit.builder().token(TOKEN).build()  # replies to the probe user are kept, not sent
    kit.key(f"memory:{user_id}")                      # the environment's key prefix
    kit.run_webhook(application, url_path=TOKEN)      # webhook + /healthz + /probe/{nonce}, and each
                                                      # user's arrival record (release_kit.arrival)

It depends on python-telegram-bot, redis, starlette and uvicorn only, and imports nothing of the
release tool: ``ci-tools adopt`` copies this package into the owner's repository as it is.
"""

from release_kit.config import DEFAULT_PROBE_USER_ID, NO_PREFIX, ConfigError, KitConfig, bot_secret, read_config
from release_kit.kit import Kit
from release_kit.marker import EnvMismatchError, claim_env_marker
from release_kit.probe import PROBE_HEADER, probe_nonce
from release_kit.version import __version__

__all__ = [
    "DEFAULT_PROBE_USER_ID",
    "NO_PREFIX",
    "PROBE_HEADER",
    "ConfigError",
    "EnvMismatchError",
    "Kit",
    "KitConfig",
    "__version__",
    "bot_secret",
    "claim_env_marker",
    "probe_nonce",
    "read_config",
]
