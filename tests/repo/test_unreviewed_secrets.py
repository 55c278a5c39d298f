"""What staging may hold: no production value, and the digest that tells setup what it stored."""

from __future__ import annotations

import pytest

from ci_tools.errors import ConfigError
from ci_tools.repo.unreviewed_secrets import digest, holds, refuse_production_values
from ci_tools.settings import load_config


def test_a_staging_value_equal_to_a_production_secret_is_named_never_shown():
    values = {"PRODUCTION_REDIS_URL": "redis://default:pw-7f3e9@prod:6379", "STAGING_SOURCE_REDIS_URL": ""}
    values["STAGING_SOURCE_REDIS_URL"] = values["PRODUCTION_REDIS_URL"]
    with pytest.raises(ConfigError) as raised:
        refuse_production_values(load_config(), ["staging"], values)
    said = raised.value.message + (raised.value.hint or "")
    assert "STAGING_SOURCE_REDIS_URL" in said and "PRODUCTION_REDIS_URL" in said
    assert "pw-7f3e9" not in said


def test_what_production_holds_of_stagings_is_no_production_secret():
    """Production's jobs hold staging's values too (its key and bot for preflight, its Redis as the
    copy's source), the same owner id, and the bot production ran before the cutover."""
    values = {
        "STAGING_OWNER_CHAT_ID": "123456789",
        "PRODUCTION_OWNER_CHAT_ID": "123456789",
        "STAGING_RENDER_API_KEY": "rnd_scoped-staging",
        "PRODUCTION_STAGING_RENDER_API_KEY": "rnd_scoped-staging",
        "STAGING_REDIS_URL": "redis://staging",
        "PRODUCTION_SOURCE_REDIS_URL": "redis://staging",
        "STAGING_TELEGRAM_BOT_TOKEN": "1:dev-bot",
        "PRODUCTION_PREVIOUS_TELEGRAM_BOT_TOKEN": "1:dev-bot",
    }
    refuse_production_values(load_config(), ["staging"], values)  # no error


def test_the_digest_holds_its_values_only():
    stored = {"MEMORY_SNAPSHOT_KEY": "k1", "OWNER_CHAT_ID": "123456789"}
    remembered = digest(stored)
    assert holds(remembered, dict(stored))
    assert not holds(remembered, {**stored, "MEMORY_SNAPSHOT_KEY": "k2"})
    assert not holds(remembered, {"MEMORY_SNAPSHOT_KEY": "k1"})  # a name gone
    assert not holds(None, stored) and not holds("", stored)
    assert digest(stored) != remembered  # a new salt each time
    assert "123456789" not in remembered
