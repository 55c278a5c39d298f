"""What an environment that admits unreviewed code (staging: ``develop``, ``feature/*``) may hold.

Every workflow of such a branch reads that environment's secrets, so none of them may be a
production secret, and none may be the memory copy's source (``SOURCE_REDIS_URL``: init gives it to
production's jobs alone). GitHub never returns a secret's value (REST "Get an environment secret":
name and dates only), so ``github setup`` cannot compare what staging holds with production's; it
remembers instead, in a repository variable, a salted digest of the values it stored there, and
rewrites them all when the values it is given differ (what an older setup stored is unknown to it:
no digest, so everything is rewritten once).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping

from ci_tools.errors import ConfigError
from ci_tools.settings import Config

# Never in an environment that admits unreviewed code, whatever its value.
NEVER_UNREVIEWED = frozenset({"SOURCE_REDIS_URL"})
# A production name whose value is not production's power: ids that grant nothing, the
# migration's source (staging's Redis, read by production's jobs), and the bot production ran
# before the cutover (kept for cutover --back; it may be staging's bot by then, README runbook).
# ``<ENV>_<NAME>`` names in production (STAGING_RENDER_API_KEY, …) are staging's values too.
NOT_PRODUCTIONS_POWER = frozenset(
    {"OWNER_CHAT_ID", "RENDER_SERVICE_ID", "SOURCE_REDIS_URL", "PREVIOUS_TELEGRAM_BOT_TOKEN"}
)


def production_values(config: Config, values: Mapping[str, str]) -> dict[str, str]:
    """``PRODUCTION_<NAME>`` → value, for every value that is production's power."""
    target = config.role("cutover_target").name.upper() + "_"
    others = tuple(f"{name.upper()}_" for name in config.environments if name.upper() + "_" != target)
    return {
        name: value
        for name, value in values.items()
        if name.startswith(target)
        and value
        and name.removeprefix(target) not in NOT_PRODUCTIONS_POWER
        and not name.removeprefix(target).startswith(others)
    }


def refuse_production_values(config: Config, unreviewed: Iterable[str], values: Mapping[str, str]) -> None:
    """Stop before anything is written when a value meant for an environment of ``unreviewed``
    (whose values those are: ``staging``) equals a production secret. Names, never values."""
    production = {value: name for name, value in production_values(config, values).items()}
    for env in unreviewed:
        prefix = f"{env.upper()}_"
        for name in sorted(values):
            if name.startswith(prefix) and values[name] in production:
                raise ConfigError(
                    f"{name} holds the value of {production[values[name]]}: {env} admits code no reviewer saw, "
                    "so it may hold no production secret",
                    hint=f"give {name} {env}'s own value (run ci-tools init, which writes .env), "
                    "or unset it in the shell",
                )


def digest_variable(env: str) -> str:
    """The repository variable that remembers what setup stored in ``env``."""
    return f"CI_TOOLS_SECRETS_{env.upper().replace('-', '_')}"


def digest(stored: Mapping[str, str], salt: str | None = None) -> str:
    """``<salt>:<sha256>`` of every name and value stored; the salt keeps the digest of one short
    value (a chat id) from being found by trying them all, the long secrets beside it the rest."""
    salt = salt if salt is not None else secrets.token_hex(16)
    text = json.dumps(sorted(stored.items()), separators=(",", ":"))
    return f"{salt}:{hashlib.sha256((salt + text).encode()).hexdigest()}"


def holds(remembered: str | None, stored: Mapping[str, str]) -> bool:
    """Is ``remembered`` (the variable's value) the digest of exactly these values?"""
    if not remembered or ":" not in remembered:
        return False
    salt = remembered.split(":", 1)[0]
    return secrets.compare_digest(digest(stored, salt), remembered)
