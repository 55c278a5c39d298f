"""``status`` and ``history`` against the sandbox: after a release, a bad release rolled back,
a revoked token, Redis down, a failing webhook, and services that refuse or never answer."""

from __future__ import annotations

import json
import socket
import time

import pytest

from ci_tools.__main__ import main
from tests.support import context, use

FAST = ("--timeout", "20", "--poll", "0.05")


def release(world, sha: str, deadline: str = "3") -> int:
    return main(["release", "production", "--commit", sha, *FAST, "--deadline", deadline])


def status(capsys, *envs: str) -> tuple[int, dict]:
    code = main(["status", *envs, "--json"])
    return code, json.loads(capsys.readouterr().out)


def items(document: dict) -> dict[str, dict]:
    return {i["name"].split(": ", 1)[-1]: i for i in document["items"]}


@pytest.fixture
def released(world, monkeypatch, capsys):
    use(monkeypatch, world.secrets("production"))
    sha = world.commit("main", "release: remember birthdays")
    assert release(world, sha) == 0
    capsys.readouterr()
    return sha


def test_a_healthy_production_after_a_release(world, released, capsys):
    code, document = status(capsys, "production")
    assert code == 0, document
    found = items(document)
    assert found["the bot is @mindmate_companion_bot"]["ok"] is True
    live = found["a deploy is live"]["detail"]
    assert released[:7] in live and "release: remember birthdays" in live and "by api" in live
    assert "env production" in found["/healthz: this environment, Redis ok"]["detail"]
    assert found["the webhook is ours and delivering"]["detail"].startswith("0 pending")
    assert "allow list empty" in found["the Key Value is private"]["detail"]
    assert (
        "plan starter, persistence journal_snapshot"
        in found["production's Key Value keeps its data across a restart"]["detail"]
    )


def test_the_human_output_is_one_table_then_one_short_line(world, released, capsys):
    world.redis["production"].stop()
    assert main(["status", "production"]) == 5
    out, err = capsys.readouterr()
    assert "Status of production" in out and "a deploy is live" in out
    assert out.count("│ ✗ │") == 1  # the unmet item, once: in the table, not again below it
    assert not [line for line in out.splitlines() if line.startswith("✗ ")]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) <= 260, lines  # "ci-tools: verification: " + ≤ 200
    assert "/healthz: this environment, Redis ok" in lines[0]


def test_a_revoked_token_fails_naming_it(world, released, capsys):
    bot = world.bots["production"]
    with world.telegram.lock:
        del world.telegram.bots[bot.token]  # revoked in @BotFather
    code, document = status(capsys, "production")
    assert code == 5
    assert "token was revoked" in items(document)["the bot is @mindmate_companion_bot"]["fix"]


def test_redis_down_fails_naming_it(world, released, capsys):
    world.redis["production"].stop()
    code, document = status(capsys, "production")
    assert code == 5
    assert "Redis DOWN" in items(document)["/healthz: this environment, Redis ok"]["detail"]


def test_a_webhook_with_a_recent_error_fails(world, released, capsys):
    bot = world.bots["production"]
    bot.last_error_date, bot.last_error_message = (
        int(time.time()) - 60,
        "Wrong response from the webhook: 500",
    )
    code, document = status(capsys, "production")
    assert code == 5
    assert "last error 1 min ago: Wrong response" in items(document)["the webhook is ours and delivering"]["detail"]


def test_the_allow_list_shows_who_is_admitted(world, released, capsys):
    kv = world.key_values["production"]
    kv.ip_allow_list = [{"cidrBlock": "203.0.113.7/32", "description": "ci-tools run 77 at 2026-12-01T00:00:00Z"}]
    code, document = status(capsys, "production")
    assert code == 0
    item = items(document)["the Key Value is private"]
    assert item["warning"] and "203.0.113.7/32 (ci-tools run 77" in item["detail"]


def test_history_links_a_rollback_to_the_deploy_it_went_back_to(world, released, capsys):
    good_deploy = world.services["production"].deploys[0]["id"]
    bad = world.commit("main", "release: a webhook that forgets its secret")
    world.render.fault(world.services["production"], bad, open_webhook=True)
    assert release(world, bad, deadline="1") == 5
    capsys.readouterr()
    assert main(["history", "production", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["releases"]
    assert [r["trigger"] for r in rows] == ["rollback", "api", "api"]
    assert rows[0]["back_to"] == good_deploy and rows[0]["commit"] == released
    assert rows[1]["commit"] == bad and rows[1]["subject"] == "release: a webhook that forgets its secret"
    assert all(r["seconds"] is not None for r in rows)
    assert main(["history", "production", "--limit", "1", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["releases"]) == 1
    assert main(["history", "production"]) == 0
    assert f"rollback → {good_deploy}" in capsys.readouterr().out


def test_history_asks_render_for_one_page_of_the_limit(world, released, capsys):
    for n in range(3):
        assert release(world, world.commit("main", f"release {n}")) == 0
    capsys.readouterr()
    requests_before = len(world.render.requests)
    assert main(["history", "production", "--limit", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["releases"]) == 3
    assert len(world.render.requests) - requests_before == 1  # one page of 3


def test_services_refusing_connections_are_said_in_seconds(world, released, capsys, monkeypatch):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    use(monkeypatch, {"TELEGRAM_API_URL": dead, "RENDER_API_URL": dead})
    code = main(["status", "production"])  # how fast: bench/unreachable.py
    captured = capsys.readouterr()
    assert code == 4
    line = captured.err.strip()
    assert line.count("\n") == 0 and "could not be checked" in line


def test_a_finished_window_reads_as_closed_in_status_and_acceptance(world, released, capsys):
    from ci_tools.pipeline.acceptance import _rollback_window

    world.services["production"].env["CUTOVER_FINISHED"] = "2026-12-20 @mindmate_legacy_bot"
    code, document = status(capsys, "production")
    assert code == 0
    assert (
        items(document)["the rollback window"]["detail"] == "rollback window closed on 2026-12-20 @mindmate_legacy_bot"
    )
    item = _rollback_window(context())
    assert item.ok is True and item.detail.startswith("rollback window closed on 2026-12-20 (@mindmate_legacy_bot")
