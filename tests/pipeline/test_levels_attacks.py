"""Attacks on contract levels (ci_tools/pipeline/levels.py): answers that could fool the discovery,
Render's overlap, and the owner's unchanged bot released through the Render stand-in."""

from __future__ import annotations

import httpx
import pytest

from ci_tools.clients.health import parse
from ci_tools.pipeline.levels import Level, dropped, found
from ci_tools.settings import load_config
from tests.support import ROOT

SHA = "c" * 40


@pytest.fixture
def env():
    return load_config(ROOT / "pyproject.toml").env("production")


def answered(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("GET", "https://bot.example.invalid/healthz"))


HEALTH_JSON = {
    "status": "ok",
    "env": "production",
    "commit": SHA,
    "bot": {"id": 1, "username": "mindmate_companion_bot"},
    "redis": {"ok": True, "env_marker": "production"},
    "key_prefix": "prod:",
}


@pytest.mark.parametrize(
    ("contract", "named"),
    [({"level": "conversation"}, "probe_path"), ({"level": "conversation", "probe_path": "probe"}, "probe_path")],
)
def test_a_malformed_claim_to_conversation_is_the_health_level_not_base(env, contract, named):
    """The health JSON is all there; only the claim to more is wrong. Read as 'not the health JSON'
    (base), a bot at the health level whose owner tried to add the contract was a definite drop
    below the live release's health level: rolled back for a level it never lost."""
    seen = found(env, parse(answered(200, {**HEALTH_JSON, "contract": contract})))
    assert seen.level is Level.HEALTH and seen.health is not None
    assert "contract is not the schema's" in seen.why and named in seen.why
    assert dropped(seen, Level.HEALTH, SHA) is None
    said, definite = dropped(seen, Level.CONVERSATION, SHA) or ("", False)
    assert definite and "this one only health" in said
    assert found(env, parse(answered(200, {**HEALTH_JSON, "contract": "gold"}))).level is Level.HEALTH


def test_check_bot_names_a_malformed_contract_and_does_not_try_the_conversation(tmp_path):
    """check-bot reads the same answer: health holds, and the contract's flaw is the conversation
    level's failed item (not a probe sent to a path without its slash)."""
    import asyncio
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from types import SimpleNamespace

    from ci_tools.botrun import BotCommands
    from ci_tools.clients.health import BotSurface
    from ci_tools.pipeline.check_bot import CheckRequest, Looks, Outcome

    body = json.dumps({**HEALTH_JSON, "env": "staging", "contract": {"level": "conversation"}}).encode()

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        outcome = Outcome()
        bot = SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}", port=server.server_port)
        looks = Looks(CheckRequest(tmp_path), None, BotCommands("", "x"), bot, outcome, "staging", SHA, "s")  # type: ignore[arg-type]

        async def look() -> object:
            async with BotSurface(timeout=5) as http:
                return await looks.health(http)

        assert asyncio.run(look()) is None  # no conversation attempted
    finally:
        server.shutdown()
    items = {c.name: c for c in outcome.checks}
    assert items["GET /healthz answers the health JSON"].ok is True
    flaw = items["the health JSON's contract is the schema's"]
    assert flaw.level == "conversation" and flaw.ok is False and "probe_path" in flaw.detail


def test_the_health_schema_names_each_field_once():
    """Owners read this file: a field written twice (the first one silently shadowed by the second,
    as json keeps the last) says two things about one field."""
    import json
    from importlib.resources import files

    doubled: list[str] = []

    def once(pairs: list[tuple[str, object]]) -> dict[str, object]:
        keys = [key for key, _ in pairs]
        doubled.extend(key for key in set(keys) if keys.count(key) > 1)
        return dict(pairs)

    json.loads(files("ci_tools.clients").joinpath("health.schema.json").read_text(), object_pairs_hook=once)
    assert doubled == []
