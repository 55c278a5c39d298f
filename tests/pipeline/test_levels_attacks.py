"""Attacks on contract levels (ci_tools/pipeline/levels.py): answers that could fool the discovery,
Render's overlap, and the owner's unchanged bot released through the Render stand-in."""

from __future__ import annotations

import httpx
import pytest

from ci_tools.clients.health import parse
from ci_tools.pipeline.levels import Level, dropped, found
from ci_tools.settings import load_config
from tests.release_kit.owner import owner_config
from tests.support import ROOT

SHA = "c" * 40
FAST = ("--timeout", "30", "--poll", "0.05")


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

    from ci_tools.botrun import BotCommands
    from ci_tools.clients.health import BotSurface
    from ci_tools.pipeline.check_bot import CheckRequest, Looks, Outcome
    from sandbox.ports import AnsweringServer

    body = {**HEALTH_JSON, "env": "staging", "contract": {"level": "conversation"}}
    with AnsweringServer(lambda: (200, body, {})) as bot:
        outcome = Outcome()
        looks = Looks(CheckRequest(tmp_path), None, BotCommands("", "x"), bot, outcome, "staging", SHA, "s")  # type: ignore[arg-type]

        async def look() -> object:
            async with BotSurface(timeout=5) as http:
                return await looks.health(http)

        assert asyncio.run(look()) is None  # no conversation attempted
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


# -- Render's overlap: the old instance still answers after live ----------------------------------
def baking(world, minutes: float, interval: float = 0.3) -> None:
    window = f"bake_minutes = {minutes}\nbake_interval_seconds = {interval}\n"
    world.config.write_text(world.config.read_text().replace("bake_minutes = 0\n", window))


def test_the_old_instances_base_answer_is_not_the_new_commits_level(world, monkeypatch, capsys):
    """The live release has no /healthz (base); the new commit answers the contract, but the public
    URL still routes to the old instance for 3 s after live. Its 404 is no commit's word: the new
    commit is not to be credited with base for good, and what its level lets be verified is."""
    from ci_tools.__main__ import main
    from tests.support import use

    use(monkeypatch, world.secrets("production"))
    baking(world, minutes=0.15)
    old = world.commit("main", "no health endpoint")
    world.render.fault(world.services["production"], old, level="base")
    assert main(["deploy", "production", "--commit", old, *FAST]) == 0
    new = world.commit("main", "the kit: the conversation level")
    world.render.fault(world.services["production"], new, late_switch=3.0)
    capsys.readouterr()
    assert main(["release", "production", "--commit", new, *FAST, "--deadline", "20"]) == 0
    out = capsys.readouterr().out
    assert "the live release meets the base level" in out
    assert f"the bot meets the conversation level: /healthz answers for {new[:12]} now" in out
    assert "✓ baked: no user traffic during the bake" in out  # watched at its level, not Telegram's alone
    # The same overlap with a bad build (it takes unsigned updates): caught by the checks it owed.
    again = world.commit("main", "no health endpoint again")
    world.render.fault(world.services["production"], again, level="base")
    assert main(["deploy", "production", "--commit", again, *FAST]) == 0
    bad = world.commit("main", "accepts unsigned updates")
    world.render.fault(world.services["production"], bad, late_switch=3.0, open_webhook=True)
    capsys.readouterr()
    assert main(["release", "production", "--commit", bad, *FAST, "--deadline", "20"]) == 5
    err = capsys.readouterr().err
    assert f"{bad[:12]} failed its bake on production and was rolled back" in err
    assert "unsigned webhook refused: the webhook ignores the secret-token header" in err


def test_no_conversation_holds_for_the_bake_too(world, monkeypatch, capsys):
    """--no-conversation skips the probe user's conversation: the probe did, and the bake talked to
    it anyway each look. Without TELEGRAM_WEBHOOK_SECRET ("set it, or pass --no-conversation") that
    was a definite failure at the first look, and a good release rolled back."""
    from ci_tools.__main__ import main
    from tests.support import conversations, use

    use(monkeypatch, world.secrets("production"), drop=("TELEGRAM_WEBHOOK_SECRET",))
    baking(world, minutes=0.05)
    good = world.commit("main", "good")
    assert main(["deploy", "production", "--commit", good, *FAST]) == 0
    taken = conversations(world.services["production"].router)
    sha = world.commit("main", "also good")
    capsys.readouterr()
    code = main(["release", "production", "--commit", sha, *FAST, "--deadline", "20", "--no-conversation"])
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "✓ baked" in out and "its conversation is not watched: --no-conversation" in out
    assert conversations(world.services["production"].router) == taken  # nobody talked to it


def test_a_release_whose_live_level_was_unknown_says_so_where_the_run_is_read(world, monkeypatch, capsys, tmp_path):
    """The live release (conversation) gives no answer of its own before the deploy (Render's 502,
    looked at again a few times): nothing holds the new commit to a level, and a release at base
    passes. It must not be blocked for that, nor pass as if a level had been held: the run's
    summary and annotations say the drop could not be checked, and the level it meets."""
    from ci_tools.__main__ import main
    from tests.support import use

    summary = tmp_path / "summary.md"
    use(monkeypatch, {**world.secrets("production"), "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    good = world.commit("main", "conversation level")
    assert main(["deploy", "production", "--commit", good, *FAST]) == 0
    world.services["production"].router.target = None  # Render's router: 502, no instance (until the switch)
    lower = world.commit("main", "lost its health endpoint")
    world.render.fault(world.services["production"], lower, level="base")
    capsys.readouterr()
    assert main(["release", "production", "--commit", lower, *FAST, "--deadline", "10"]) == 0
    out = capsys.readouterr().out
    assert "the live release's level is unknown" in out
    said = "the live release's contract level was unknown before the deploy"
    assert f"::warning title=production level not held::{said}" in out
    assert said in summary.read_text() and "it meets the base level" in summary.read_text()


def test_the_probe_does_not_credit_a_commit_with_another_commits_level(world, monkeypatch):
    """While the old instance still answers /healthz, the level it shows is its own: the probe's
    level row must not pass the new commit at it (nor a floor by it), whatever the other rows say."""
    from ci_tools.__main__ import main
    from ci_tools.pipeline.probe import Probe, run_probe
    from tests.support import context, use

    use(monkeypatch, world.secrets("production"))
    old = world.commit("main", "the conversation level")
    assert main(["deploy", "production", "--commit", old, *FAST]) == 0
    new = world.commit("main", "not live yet")
    ctx = context()
    env = ctx.config.env("production")
    probe = Probe(ctx, env, new, world.bots["production"].token, deadline=3, floor=Level.CONVERSATION)
    checks = {c.name: c for c in run_probe(probe)}
    level = checks["level"]
    assert level.ok is False and not level.definite
    assert f"answered by {old[:12]}" in level.detail and "conversation" in level.detail
    assert "not this commit's" in level.cause


def test_a_health_path_that_redirects_is_named_with_where_it_points(env):
    """A framework's trailing-slash redirect (/healthz → /healthz/) is no health answer: the base
    level, the bot's own word (a drop below a live health release), and the line says where it
    points and what to set, not just 'no JSON'."""
    from ci_tools.clients.health import NotTheContract

    moved = httpx.Response(
        308, headers={"location": "/healthz/"}, request=httpx.Request("GET", "https://bot.example.invalid/healthz")
    )
    with pytest.raises(NotTheContract) as raised:
        parse(moved)
    seen = found(env, raised.value)
    assert seen.level is Level.BASE and seen.definite
    assert "a redirect to /healthz/" in seen.why and "set health_path" in seen.why


@pytest.mark.parametrize("status", [408, 429])
def test_a_rate_limit_or_timeout_on_the_way_is_no_level(env, status):
    """The edge in front of the bot rate-limiting the runner (429) or timing the request out (408)
    said nothing of the bot: read as its 'no health endpoint', a live conversation release made the
    new one's a definite drop, rolled back at once."""
    from ci_tools.clients.health import NotTheContract

    seen = found(env, NotTheContract(f"HTTP {status} with no JSON", status))
    assert seen.level is Level.BASE and not seen.definite and seen.answered
    assert (dropped(seen, Level.CONVERSATION, SHA) or ("", True))[1] is False
    assert found(env, NotTheContract("HTTP 404 with no JSON", 404)).definite  # the bot's own word stays one


def test_the_owners_telegram_message_is_redacted_like_every_other_output(at_base_config, telegram, monkeypatch):
    """A base bot's webhook path is its token (PTB's url_path=TOKEN): whatever a failure line
    carries to the owner's chat goes through the same redaction as the log."""
    from ci_tools.pipeline.notify import notify
    from tests.support import context, use

    bot = telegram.add_bot("ava_companion_bot")
    telegram.start_chat(bot, 4242)
    use(
        monkeypatch,
        {
            "CI_TOOLS_CONFIG": str(at_base_config),
            "TELEGRAM_API_URL": telegram.url,
            "TELEGRAM_BOT_TOKEN": bot.token,
            "OWNER_CHAT_ID": "4242",
        },
    )
    ctx = context()
    assert notify(ctx, ctx.config.env("production"), f"webhook is https://ava.example.invalid/{bot.token}") is None
    [told] = telegram.replies_to(bot, 4242)
    assert bot.token not in told and "https://ava.example.invalid/***" in told


@pytest.fixture
def at_base_config(tmp_path):
    return owner_config(tmp_path, "https://ava.example.invalid")
