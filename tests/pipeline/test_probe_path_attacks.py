"""Attacks on the bot's own probe_path (tests/pipeline/test_probe_path.py): values the kit could
mount and the health answer could name, that no ``GET <probe_path>/<nonce>`` ever reaches."""

from __future__ import annotations

import httpx
import pytest

from ci_tools.clients.health import Health
from ci_tools.pipeline.levels import Level, found
from ci_tools.settings import load_config
from release_kit import Kit, read_config
from tests.support import ROOT

ODD = [
    "/ops/probe?x=1",  # a query: the probe's request puts /<nonce> into the query
    "/ops#probe",  # a fragment: never sent
    "/../healthz",  # dot segments: clients resolve them away (into the health path here)
    "/ops/./probe",
    "/ops/../probe",
    "/ops/{who}",  # a Starlette path parameter: would mount a pattern, not the path
    "/ops probe",  # a space
]


@pytest.fixture
def kit_app():
    kit = Kit(read_config({"ENV": "staging", "REDIS_URL": "redis://127.0.0.1:1", "TELEGRAM_WEBHOOK_SECRET": "s"}))
    return kit, kit.builder().token("1:a").build()


def test_a_request_to_the_odd_path_does_not_reach_it():
    """Why they are refused: what the pipeline requests is not the path named."""
    assert httpx.Request("GET", "http://bot.invalid/../healthz/abc").url.path == "/healthz/abc"
    assert httpx.Request("GET", "http://bot.invalid/ops/probe?x=1/abc").url.path == "/ops/probe"


@pytest.mark.parametrize("odd", ODD)
def test_the_kit_refuses_a_probe_path_no_request_reaches(kit_app, odd):
    kit, application = kit_app
    with pytest.raises(ValueError, match="plain path"):
        kit.asgi(application, "TOKEN", probe_path=odd)


@pytest.mark.parametrize("given", ["/ops/probe", "ops/probe/", "/p-1/_r.e~2", "/.well-known-probe"])
def test_the_kit_mounts_a_plain_probe_path(kit_app, given):
    kit, application = kit_app
    paths = {route.path for route in kit.asgi(application, "TOKEN", probe_path=given).routes}  # type: ignore[attr-defined]
    assert "/" + given.strip("/") + "/{nonce}" in paths


@pytest.mark.parametrize("taken", ["/TOKEN", "TOKEN", "/healthz", "/"])
def test_the_webhook_or_health_path_is_never_the_probe_path(kit_app, taken):
    kit, application = kit_app
    with pytest.raises(ValueError, match=r"probe_path|own paths"):
        kit.asgi(application, "TOKEN", probe_path=taken)


HEALTH_JSON = {
    "status": "ok",
    "env": "production",
    "commit": "c" * 40,
    "bot": {"id": 1, "username": "mindmate_companion_bot"},
    "redis": {"ok": True, "env_marker": "production"},
    "key_prefix": "prod:",
}


@pytest.mark.parametrize("odd", [*ODD, "probe", ""])
def test_a_health_answer_naming_an_odd_probe_path_is_the_health_level_with_the_flaw_named(odd):
    """A bot without the kit names its own path: one no request reaches is no conversation."""
    env = load_config(ROOT / "pyproject.toml").env("production")
    answer = Health.from_json(200, {**HEALTH_JSON, "contract": {"level": "conversation", "probe_path": odd}})
    seen = found(env, answer)
    assert seen.level is Level.HEALTH and "probe_path" in seen.why and seen.probe_path is None


def test_a_plain_probe_path_in_the_health_answer_is_the_conversation_level():
    env = load_config(ROOT / "pyproject.toml").env("production")
    answer = Health.from_json(200, {**HEALTH_JSON, "contract": {"level": "conversation", "probe_path": "/ops/probe"}})
    assert found(env, answer).level is Level.CONVERSATION and found(env, answer).probe_path == "/ops/probe"
