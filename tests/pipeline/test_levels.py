"""Contract levels (ci_tools/pipeline/levels.py): every phase at base, health and conversation.

The verdicts are judged without servers. Then each level against real parts:

- **base**: the owner's bot as its owner wrote it (tests/fixtures/owner_bot, copied to a tmp dir):
  python-telegram-bot's own ``run_webhook`` on the token path, no ``/healthz``. It is started as a
  child process, talking to the Telegram stand-in through a test-only ``sitecustomize`` that
  reroutes httpx's requests for api.telegram.org (the shape ci_tools/botrun's is to take; until it
  lands, this file's own, written into the tmp dir at run time).
- **health**: mindmate behind the Render stand-in with its ``contract`` cut from ``/healthz``
  (a router fault: an older bot that answers the health JSON only).
- **conversation**: mindmate as it is.

And a release whose bot falls below the live release's level fails its probe and is rolled back.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_tools.__main__ import main
from ci_tools.botrun.listening import listening_on
from ci_tools.clients.health import Health, NotTheContract, Unreachable, Updates
from ci_tools.pipeline.acceptance import acceptance
from ci_tools.pipeline.bake import bake
from ci_tools.pipeline.levels import Level, dropped, found
from ci_tools.pipeline.probe import Probe, failures, run_probe
from ci_tools.settings import load_config
from sandbox.ports import free_port
from sandbox.redis import RedisServer
from sandbox.telegram import FakeBot, FakeTelegram
from sandbox.world import SECRETS
from tests.release_kit.owner import owner_config
from tests.support import ROOT, context, conversations, plain_text_breaks, use, wait_until

SHA = "c" * 40
FAST = ("--timeout", "30", "--poll", "0.05")


# -- the verdicts, without servers -------------------------------------------------------------
@pytest.fixture
def env():
    return load_config(ROOT / "pyproject.toml").env("production")


def health(**changes: object) -> Health:
    fields: dict[str, object] = dict(
        http_status=200,
        env="production",
        commit=SHA,
        bot_id=1,
        bot_username="mindmate_companion_bot",
        redis_ok=True,
        env_marker="production",
        key_prefix="prod:",
        moved_to=None,
        updates=Updates(0, 0),
    )
    return Health(**{**fields, **changes})  # type: ignore[arg-type]


def test_the_level_is_what_the_health_path_answers(env):
    talk = health(contract_level="conversation", probe_path="/probe")
    assert found(env, talk).level is Level.CONVERSATION and found(env, talk).probe_path == "/probe"
    assert found(env, talk).line() == "conversation"
    plain = found(env, health())
    assert plain.level is Level.HEALTH and plain.probe_path is None
    assert plain.line() == "health — not verified: conversation (/healthz claims no contract level conversation)"
    claimed = found(env, health(contract_level="conversation"))  # no probe_path: nowhere to read replies
    assert claimed.level is Level.HEALTH and "names no probe_path" in claimed.why
    uncounted = found(env, health(updates=None))
    assert "handler-failure counts (the health answer has no updates)" in uncounted.line()


def test_no_health_answer_is_the_base_level_and_says_what_it_leaves_unverified(env):
    missing = found(env, NotTheContract("HTTP 404 with no JSON (see health.schema.json)", 404))
    assert missing.level is Level.BASE and missing.definite  # the bot's own word: it has none
    assert missing.line() == (
        "base — not verified: health (GET /healthz answered HTTP 404 with no JSON (see health.schema.json)), "
        "handler-failure counts (read in the health answer), conversation (needs health)"
    )
    other = found(env, NotTheContract("the answer: 'env' is a required property (see health.schema.json)", 200))
    assert other.level is Level.BASE and "HTTP 200, not the health JSON" in other.why
    down = found(env, Unreachable(ConnectionRefusedError()))
    assert down.level is Level.BASE and not down.definite and not down.answered  # no answer is no level
    failing = found(env, NotTheContract("HTTP 502 with no JSON", 502))
    assert not failing.definite and failing.answered  # the platform's error page, not the bot's word
    said = found(dataclasses.replace(env, health_path=""), None)
    assert said.level is Level.BASE and said.definite and "health_path is empty" in said.why


def test_a_drop_names_both_levels_and_is_definite_only_when_the_answer_is_this_commits(env):
    plain = found(env, health())
    assert dropped(plain, None, SHA) is None  # no floor: nothing to drop below
    assert dropped(plain, Level.HEALTH, SHA) is None
    assert dropped(plain, Level.BASE, SHA) is None  # a level up is fine
    said, definite = dropped(plain, Level.CONVERSATION, SHA) or ("", False)
    assert definite and said == (
        "the live release met the conversation level, this one only health "
        "(/healthz claims no contract level conversation)"
    )
    older = found(env, health(commit="d" * 40))  # the old instance may still answer for a moment
    assert dropped(older, Level.CONVERSATION, SHA) == (said, False)
    gone = found(env, NotTheContract("HTTP 404 with no JSON", 404))
    assert dropped(gone, Level.HEALTH, SHA) == (
        "the live release met the health level, this one only base (GET /healthz answered HTTP 404 with no JSON)",
        True,
    )
    down = found(env, Unreachable(TimeoutError()))
    assert (dropped(down, Level.HEALTH, SHA) or ("", True))[1] is False


def test_a_contract_that_is_not_the_schemas_is_named():
    body = {
        "status": "ok",
        "env": "production",
        "commit": SHA,
        "bot": {"id": 1, "username": "b_bot"},
        "redis": {"ok": True, "env_marker": "production"},
        "key_prefix": "",
        "contract": {"level": "conversation", "kit": "0.1.0", "probe_path": "/probe"},
        "updates": {"handled": 1, "failed": 0, "last_failure": None, "last_handled_at": 1700000000.5},
    }
    parsed = Health.from_json(200, body)
    assert (parsed.contract_level, parsed.probe_path) == ("conversation", "/probe")
    # A contract that is not the schema's is named, and the rest is still the health JSON (the health level).
    assert "contract/level" in str(Health.from_json(200, {**body, "contract": {"level": "gold"}}).contract_error)
    bad_path = Health.from_json(200, {**body, "contract": {"level": "conversation", "probe_path": "probe"}})
    assert "contract/probe_path" in str(bad_path.contract_error) and bad_path.probe_path is None
    with pytest.raises(NotTheContract, match="env"):
        Health.from_json(200, {**body, "env": 5})


# -- base: the owner's bot, unchanged ---------------------------------------------------------
# Test-only: PTB inside the owner's bot calls https://api.telegram.org; this reroutes those
# requests to the stand-in named by CI_TOOLS_TELEGRAM_API, with no change to the bot's code.
REROUTE = """
import os

_target = os.environ.get("CI_TOOLS_TELEGRAM_API")
if _target:
    import httpx

    _to = httpx.URL(_target)
    _send = httpx.AsyncClient.send

    async def _rerouted(self, request, **kwargs):
        if request.url.host == "api.telegram.org":
            request.url = request.url.copy_with(scheme=_to.scheme, host=_to.host, port=_to.port)
            request.headers["Host"] = _to.netloc.decode()
        return await _send(self, request, **kwargs)

    httpx.AsyncClient.send = _rerouted
"""


@dataclasses.dataclass
class OwnerBot:
    url: str
    fake: FakeBot
    config: Path
    log: Path


@pytest.fixture
def owner_bot(tmp_path: Path, telegram: FakeTelegram, redis_server: RedisServer) -> Iterator[OwnerBot]:
    """tests/fixtures/owner_bot copied to tmp and started as ``python -m bot``, as Render would."""
    tree = tmp_path / "ava"
    shutil.copytree(ROOT / "tests" / "fixtures" / "owner_bot", tree)
    reroute = tmp_path / "reroute"
    reroute.mkdir()
    (reroute / "sitecustomize.py").write_text(REROUTE)
    fake = telegram.add_bot("ava_companion_bot")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "ava.log"
    environ = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(reroute),
        "TELEGRAM_BOT_TOKEN": fake.token,
        "REDIS_URL": redis_server.url,
        "PORT": str(port),
        "RENDER_EXTERNAL_URL": url,
        "CI_TOOLS_TELEGRAM_API": telegram.url,
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot"], cwd=tree, env=environ, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_until(lambda: bool(fake.webhook_url) or process.poll() is not None, "the owner's bot setting its webhook")
        # python-telegram-bot sets its webhook before its server listens (Updater._start_webhook:
        # _bootstrap, then serve_forever): an update sent in between meets "Connection refused",
        # which Telegram keeps as the webhook's last error and the probe then reads as the bot's.
        wait_until(lambda: bool(listening_on(port)) or process.poll() is not None, "the owner's bot listening")
        assert process.poll() is None, log.read_text()
        yield OwnerBot(url, fake, owner_config(tmp_path, url), log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def at_base(owner_bot: OwnerBot, telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch) -> OwnerBot:
    use(
        monkeypatch,
        {
            "CI_TOOLS_CONFIG": str(owner_bot.config),
            "TELEGRAM_API_URL": telegram.url,
            "TELEGRAM_BOT_TOKEN": owner_bot.fake.token,
        },
    )
    return owner_bot


def checks_of(capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}


def test_an_unchanged_bot_is_probed_at_the_base_level_and_the_probe_says_what_it_could_not_verify(
    at_base, telegram, capsys
):
    assert at_base.fake.webhook_url == f"{at_base.url}/{at_base.fake.token}"  # PTB's own path: the token
    telegram.send_user_message(at_base.fake, 4242, "/start")  # a real bot: it answers a real user
    wait_until(lambda: bool(telegram.replies_to(at_base.fake, 4242)), "Ava's answer")
    assert main(["probe", "production", "--commit", SHA, "--deadline", "10", "--json"]) == 0
    out = capsys.readouterr().out
    assert at_base.fake.token not in out  # the webhook's path is the token: redacted
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert list(checks) == ["level", "token", "webhook"]  # what the base level can verify
    level = checks["level"]
    assert level["ok"] and level["warning"]
    assert level["detail"].startswith("base — not verified: health (GET /healthz answered HTTP 404")
    assert "conversation (needs health)" in level["detail"]
    assert checks["token"]["detail"].startswith("@ava_companion_bot")
    assert checks["webhook"]["ok"] and f"{at_base.url}/***" in checks["webhook"]["detail"]
    assert at_base.fake.sent == [{"chat_id": 4242, "text": telegram.replies_to(at_base.fake, 4242)[0]}]  # nothing more


def test_at_the_base_level_a_503_is_a_delivery_error_like_any_other(at_base, capsys):
    """At the health level a 503 Telegram has delivered since is the health contract's "deliver
    again" (a Redis blip); a bot without that contract said nothing of the kind."""
    at_base.fake.last_error_date = int(time.time())
    at_base.fake.last_error_message = "Wrong response from the webhook: 503 Service Unavailable"
    since = str(time.time() - 60)
    assert main(["probe", "production", "--commit", SHA, "--deadline", "2", "--since", since, "--json"]) == 5
    webhook = checks_of(capsys)["webhook"]
    assert webhook["ok"] is False and "the new instance fails to answer Telegram" in webhook["cause"]


def test_a_base_level_bot_below_the_live_releases_level_fails_at_once_naming_both(at_base):
    ctx = context()
    env = ctx.config.env("production")
    probe = Probe(ctx, env, SHA, at_base.fake.token, deadline=30, floor=Level.HEALTH)
    checks = run_probe(probe)
    [failed] = failures(checks)
    assert failed.name == "level" and failed.definite  # definite: a 404 is the new bot's own word
    assert failed.detail == "base, below the live release's health"
    assert failed.cause.startswith("the live release met the health level, this one only base (GET /healthz")
    assert [c.name for c in checks] == ["level", "token", "webhook"]  # every level's own checks ran beside it


def test_status_and_acceptance_say_the_base_level(at_base, capsys):
    assert main(["status", "production", "--json"]) in (0, 4, 5)  # Render is not configured here
    items = {i["name"].split(": ", 1)[-1]: i for i in json.loads(capsys.readouterr().out)["items"]}
    assert items["contract level"]["detail"].startswith("base — not verified: health (GET /healthz answered")
    assert items["contract level"]["ok"] and items["contract level"]["warning"]
    assert items["/healthz: this environment, Redis ok"]["ok"] is True
    assert items["/healthz: this environment, Redis ok"]["detail"].startswith("not verified at the base level")
    assert items["the webhook is ours and delivering"]["ok"] is True
    found_items = {i.name: i for i in acceptance(context(), 4242, None, None, deadline=10)}
    assert found_items["the bot's contract level"].detail.startswith("base — not verified")
    runs = found_items["the production service runs it"]
    assert runs.ok and f"its webhook is on {at_base.url}" in runs.detail
    assert found_items["the probe passes"].ok and found_items["the probe passes"].detail == "2/2 checks"


def test_the_bake_at_the_base_level_judges_telegrams_signals_and_says_counts_were_not_available(at_base):
    ctx = context()
    env = dataclasses.replace(ctx.config.env("production"), bake_minutes=0.02, bake_interval_seconds=0.2)
    lines: list[str] = []
    result = bake(ctx, env, SHA, at_base.fake.token, time.time(), webhook_secret=None, on_status=lines.append)
    assert result.passed and not result.inconclusive
    assert "no delivery error and no growing backlog" in result.detail
    assert "handler-failure counts were not available" in result.detail
    assert sum("⚠ level base (GET /healthz answered HTTP 404" in line for line in lines) == 1  # said once
    since = time.time()
    at_base.fake.last_error_date = int(since) + 1
    at_base.fake.last_error_message = "Wrong response from the webhook: 503 Service Unavailable"
    failed = bake(ctx, env, SHA, at_base.fake.token, since, webhook_secret=None)
    assert not failed.passed and "Telegram's delivery to it failed after the deploy" in failed.detail


# -- health and conversation: mindmate behind the Render stand-in -------------------------------
def released(world, monkeypatch, message: str, level: str = "") -> str:
    """A commit of main deployed to production; its bot at ``level`` ("" for mindmate as it is)."""
    use(monkeypatch, world.secrets("production"))
    sha = world.commit("main", message)
    if level:
        world.render.fault(world.services["production"], sha, level=level)
    assert main(["deploy", "production", "--commit", sha, *FAST]) == 0
    return sha


def test_a_bot_at_the_health_level_gets_the_health_checks_and_no_conversation(world, monkeypatch, capsys):
    sha = released(world, monkeypatch, "an older bot: health only", level="health")
    capsys.readouterr()
    taken = conversations(world.services["production"].router)
    assert main(["probe", "production", "--commit", sha, "--deadline", "5", "--json"]) == 0
    checks = checks_of(capsys)
    assert list(checks) == ["level", "token", "webhook", "health"]
    assert checks["level"]["detail"] == (
        "health — not verified: conversation (/healthz claims no contract level conversation)"
    )
    assert checks["health"]["ok"] and "Redis ok" in checks["health"]["detail"]
    assert conversations(world.services["production"].router) == taken  # no conversation was attempted
    assert main(["status", "production", "--json"]) == 0
    items = {i["name"].split(": ", 1)[-1]: i for i in json.loads(capsys.readouterr().out)["items"]}
    assert items["contract level"]["detail"].startswith("health — not verified: conversation")


def test_the_bake_at_the_health_level_reads_the_counts_and_skips_the_conversation(world, monkeypatch):
    sha = released(world, monkeypatch, "health only, plain text breaks", level="health")
    ctx = context()
    env = dataclasses.replace(ctx.config.env("production"), bake_minutes=0.5, bake_interval_seconds=0.2)
    plain_text_breaks(monkeypatch)  # the threaded bot's code
    world.telegram.send_user_message(world.bots["production"], 6660003, "a plain message")
    router = world.services["production"].router
    taken = conversations(router)
    result = bake(ctx, env, sha, world.bots["production"].token, time.time(), webhook_secret=SECRETS["production"])
    assert not result.passed and "1 of 1 update(s) failed in a handler" in result.detail
    assert conversations(router) == taken


def test_a_release_at_the_conversation_level_says_so(world, monkeypatch, capsys):
    sha = released(world, monkeypatch, "mindmate as it is")
    capsys.readouterr()
    assert main(["probe", "production", "--commit", sha, "--deadline", "5", "--json"]) == 0
    checks = checks_of(capsys)
    assert checks["level"]["detail"] == "conversation" and not checks["level"]["warning"]
    assert list(checks)[1:] == ["token", "webhook", "health", "unsigned webhook refused", "conversation"]


# -- a release may not drop a level ------------------------------------------------------------
@pytest.mark.parametrize(("level", "said"), [("health", "only health"), ("base", "only base (GET /healthz")])
def test_a_release_below_the_live_releases_level_is_rolled_back_naming_both_levels(
    world, monkeypatch, capsys, level, said
):
    good = released(world, monkeypatch, "conversation level")
    bad = world.commit("main", f"a refactor that lost the {level} level's part")
    world.render.fault(world.services["production"], bad, level=level)
    capsys.readouterr()
    started = time.monotonic()
    assert main(["release", "production", "--commit", bad, *FAST, "--deadline", "60"]) == 5
    assert time.monotonic() - started < 45  # definite: not the probe's deadline
    captured = capsys.readouterr()
    assert "the live release meets the conversation level" in captured.out
    assert "below the live release's conversation" in captured.out  # the probe table's level row
    assert f"the live release met the conversation level, this one {said}" in captured.err
    assert f"failed its probe on production and was rolled back to {good[:12]}" in captured.err
    live = [d for d in world.services["production"].deploys if d["status"] == "live"]
    assert live[0]["commit"]["id"] == good and live[0]["trigger"] == "rollback"


def test_a_release_that_keeps_or_raises_the_level_passes(world, monkeypatch, capsys):
    released(world, monkeypatch, "health only", level="health")
    up = world.commit("main", "now the conversation level too")
    assert main(["release", "production", "--commit", up, *FAST, "--deadline", "10"]) == 0
    assert "the live release meets the health level" in capsys.readouterr().out
    same = world.commit("main", "still the conversation level")
    assert main(["release", "production", "--commit", same, *FAST, "--deadline", "10"]) == 0
    assert "the live release meets the conversation level" in capsys.readouterr().out


def test_staging_fails_a_drop_without_rolling_back(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("staging"))
    first = world.commit("develop", "conversation level")
    assert main(["release", "staging", "--commit", first, *FAST, "--deadline", "10"]) == 0
    lower = world.commit("develop", "health only")
    world.render.fault(world.services["staging"], lower, level="health")
    assert main(["release", "staging", "--commit", lower, *FAST, "--deadline", "10"]) == 5
    err = capsys.readouterr().err
    assert "this one only health" in err and "rolled back" not in err
    assert not [d for d in world.services["staging"].deploys if d["trigger"] == "rollback"]


def test_the_deploy_hook_refuses_a_base_level_bot_before_triggering_anything(world, monkeypatch, capsys):
    """The hook says nothing of what it deployed: only a health answer could confirm it."""
    released(world, monkeypatch, "no health endpoint", level="base")
    use(monkeypatch, world.secrets("production"), drop=("RENDER_API_KEY", "RENDER_SERVICE_ID"))
    deploys = len(world.services["production"].deploys)
    capsys.readouterr()
    assert main(["deploy", "production", "--commit", world.commit("main", "next"), *FAST]) == 3
    err = capsys.readouterr().err
    assert "gives no health answer (GET /healthz answered HTTP 404" in err and "cannot be confirmed" in err
    assert len(world.services["production"].deploys) == deploys  # nothing was deployed
