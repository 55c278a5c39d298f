"""The probe reads the replies where the bot says, not where the kit puts them by default.

docs/CONTRACT.md: ``<probe_path>/<nonce>`` is chosen by the bot and told in its health answer
(``contract.probe_path``); ``/probe`` is only the kit's default. Here the owner's bot
(tests/fixtures/owner_bot with the kit lines) mounts it at ``/ops/probe`` (``kit.run_webhook(...,
probe_path="/ops/probe")``, say because its own server has a ``/probe`` already), runs as a real
process on real Redis and the Telegram stand-in, and ``ci-tools probe`` holds the conversation
with it: a pipeline that assumed ``/probe`` would meet a 404 there and fail the release.
"""

from __future__ import annotations

import json

import httpx
import pytest

from ci_tools.__main__ import main
from release_kit import Kit, read_config
from tests.release_kit.owner import COMMIT, OwnerBot, adopted_tree, bot_environ, owner_config
from tests.support import WEBHOOK_SECRET, signed, use

OWN_PATH = "/ops/probe"

# The conversation the probe holds: the kit's own turns, as the owner's config names them.
PROBE = """
[tool.ci_tools.probe]
turns = ["/start", "/remember probe-{nonce}", "/recall"]
expect = "probe-{nonce}"
"""


@pytest.fixture
def ava(tmp_path, telegram, redis_server, monkeypatch):
    """The owner's bot with the kit lines, its probe mounted at OWN_PATH, live in production."""
    tree = adopted_tree(tmp_path)
    main_py = tree / "bot" / "__main__.py"
    text = main_py.read_text()
    mounted = text.replace(
        "    kit.run_webhook(\n        application,\n",
        f'    kit.run_webhook(\n        application,\n        probe_path="{OWN_PATH}",\n',
    )
    assert mounted != text, "the kit patch's run_webhook call moved"
    main_py.write_text(mounted)
    fake = telegram.add_bot("ava_companion_bot")
    environ = bot_environ(telegram, fake, redis_server.url, ENV="production")
    with OwnerBot(tree, environ) as bot:
        config = owner_config(tmp_path, bot.url, key_prefix="prod:", more=PROBE)
        use(
            monkeypatch,
            {
                "CI_TOOLS_CONFIG": str(config),
                "TELEGRAM_API_URL": telegram.url,
                "TELEGRAM_BOT_TOKEN": fake.token,
                "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
            },
        )
        yield bot, fake


def test_the_probe_talks_to_the_bot_at_the_probe_path_its_health_answer_names(ava, telegram, redis_server, capsys):
    bot, fake = ava
    assert httpx.get(f"{bot.url}/healthz").json()["contract"]["probe_path"] == OWN_PATH
    assert httpx.get(f"{bot.url}/probe/abc123def456", headers=signed(fake.token)).status_code == 404  # not there
    assert main(["probe", "production", "--commit", COMMIT, "--deadline", "60", "--json"]) == 0, capsys.readouterr()
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["level"]["ok"] and checks["level"]["detail"] == "conversation"
    assert checks["conversation"]["ok"], checks["conversation"]
    assert fake.sent == []  # the probe's replies stayed in the bot, read back at OWN_PATH
    assert not [k for k in redis_server.client().scan_iter() if b"probe:" in k]  # DELETE cleaned up there


def test_the_kit_mounts_the_probe_where_the_owner_says_and_refuses_a_path_that_is_not_its_own():
    kit = Kit(read_config({"ENV": "staging", "REDIS_URL": "redis://127.0.0.1:1", "TELEGRAM_WEBHOOK_SECRET": "s"}))
    application = kit.builder().token("1:a").build()
    app = kit.asgi(application, "TOKEN", probe_path="ops/probe/")
    assert {route.path for route in app.routes} == {"/TOKEN", "/healthz", "/ops/probe/{nonce}"}  # type: ignore[attr-defined]
    for taken in ("/", "/healthz"):
        with pytest.raises(ValueError, match="probe_path"):
            kit.asgi(application, "TOKEN", probe_path=taken)
    with pytest.raises(ValueError, match="one of the kit's own paths"):
        kit.asgi(application, "/ops/probe/x", probe_path="/ops/probe")
    assert {route.path for route in kit.asgi(application, "/probe/x", probe_path="/ops/probe").routes} == {  # type: ignore[attr-defined]
        "/probe/x",
        "/healthz",
        "/ops/probe/{nonce}",
    }
