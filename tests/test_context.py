"""The Context: everything a command knows of its surroundings, read once, passed down."""

from __future__ import annotations

import pytest

from ci_tools import redact
from ci_tools.context import DEFAULT_RENDER_API_URL, build
from ci_tools.errors import ConfigError
from ci_tools.needs import Needs, UndeclaredSecret

KEY = "rnd_abcdefgh12345678"


def test_a_missing_secret_names_itself_and_never_prints_a_value():
    ctx = build({}, Needs(optional=("RENDER_API_KEY",)))
    with pytest.raises(ConfigError) as error:
        ctx.secret("RENDER_API_KEY", purpose="rollback")
    assert "missing secret RENDER_API_KEY (rollback)" in error.value.one_line()
    assert build({"RENDER_API_KEY": f" {KEY} "}).secret("RENDER_API_KEY") == KEY  # trimmed, as pasted


def test_a_required_secret_fails_the_build_before_any_work():
    with pytest.raises(ConfigError, match="missing secrets TELEGRAM_BOT_TOKEN, RENDER_API_KEY"):
        build({"TELEGRAM_BOT_TOKEN": " "}, Needs(required=("TELEGRAM_BOT_TOKEN", "RENDER_API_KEY")))


def test_a_secret_the_command_did_not_declare_is_a_bug_not_a_value():
    ctx = build({"RENDER_API_KEY": KEY, "REDIS_URL": "redis://x"}, Needs(optional=("RENDER_API_KEY",)))
    assert ctx.optional("RENDER_API_KEY") == KEY
    with pytest.raises(UndeclaredSecret, match="REDIS_URL"):
        ctx.optional("REDIS_URL")
    with pytest.raises(UndeclaredSecret):
        _ = "REDIS_URL" in ctx.secrets
    assert "RENDER_API_KEY" in repr(ctx.secrets) and KEY not in repr(ctx.secrets)


def test_github_setup_may_read_every_environments_prefixed_secret():
    environ = {"STAGING_REDIS_URL": "redis://a", "PRODUCTION_TESTER_IDS": "1", "GITHUB_TOKEN": "ghp_x"}
    ctx = build(environ, Needs(optional=("GITHUB_TOKEN",), prefixed=True))
    assert dict(ctx.secrets) == environ


def test_service_urls_and_the_timeout_come_from_the_environment_once():
    ctx = build({"RENDER_API_URL": "http://127.0.0.1:9/", "CI_TOOLS_TIMEOUT": "2.5", "GITHUB_ACTIONS": "true"})
    assert ctx.services.render == "http://127.0.0.1:9"
    assert ctx.request_timeout(30) == 2.5 and ctx.runner.active
    plain = build({})
    assert plain.services.render == DEFAULT_RENDER_API_URL and plain.request_timeout(30) == 30
    assert not plain.runner.active
    with pytest.raises(ConfigError, match="CI_TOOLS_TIMEOUT is not a number"):
        build({"CI_TOOLS_TIMEOUT": "soon"})


def test_the_poll_between_looks_at_render_comes_from_the_environment_else_the_callers():
    """CI_TOOLS_POLL: what the workflow tests set against their stand-in (a look every 2 s there is only waiting)."""
    assert build({"CI_TOOLS_POLL": "0.2"}).poll_seconds(2.0) == 0.2
    assert build({}).poll_seconds(2.0) == 2.0
    for bad in ("0", "-1", "inf", "nan", "-inf"):
        with pytest.raises(ConfigError, match="CI_TOOLS_POLL must be a finite number of seconds above 0"):
            build({"CI_TOOLS_POLL": bad})
    with pytest.raises(ConfigError, match="CI_TOOLS_TIMEOUT must be a finite number"):
        build({"CI_TOOLS_TIMEOUT": "inf"})


def test_a_context_built_from_a_dict_has_its_secrets_redacted():
    """The rehearsal builds its Contexts from the sandbox's secrets, not this process's environment."""
    token = "7000000001:AAdictOnlySecretValue-0123456789abc"
    build({"NEW_TELEGRAM_BOT_TOKEN": token, "REDIS_URL": "redis://:dictPassw0rd@127.0.0.1:1/0"})
    assert redact.redact(f"{token} dictPassw0rd") == "*** ***"


def test_with_config_judges_against_the_config_given():
    ctx = build({})
    renamed = ctx.config.__class__(**{**ctx.config.__dict__, "rollback_window_days": 3})
    assert ctx.with_config(renamed).config.rollback_window_days == 3
    assert ctx.config.rollback_window_days != 3


@pytest.mark.parametrize("name", ["RENDER_API_KEY", "TELEGRAM_BOT_TOKEN", "STAGING_RENDER_API_KEY"])
def test_a_secret_that_must_travel_in_a_header_or_url_and_is_not_ascii_is_a_config_error(name):
    value = "rnd_abc\u00a0defgh12345678\u201d"  # a non-breaking space and a curly quote, as pasted
    with pytest.raises(ConfigError) as error:
        build({name: value}, Needs(optional=(name,), prefixed=True))
    line = error.value.one_line()
    assert f"{name} holds a character that is not ASCII" in line and value not in line and "\n" not in line
    assert build({"MEMORY_SNAPSHOT_KEY": value}).optional("MEMORY_SNAPSHOT_KEY")  # not a header: left alone
