"""An adopted bot left unchanged (the base level) writes no ``meta:env`` marker in its Redis.

production.yml snapshots production's memory before every release (``ci-tools memory snapshot
production``) and refuses to release without it; a restore-memory dispatch writes that snapshot
back after a bad release. Here the repository is tests/fixtures/owner_bot after ``ci-tools adopt
--yes`` (``health_path = ""``, ``key_prefix = ""``), and production's Redis holds what that bot
keeps (``memory:{id}``, ``user:{id}:history``, no prefix, no marker). Its owner's first release
must not fail at the snapshot, the snapshot must say in one ⚠ line that nothing marks the Redis,
and the restore must write only into the very Redis the snapshot was read from. The memory copy,
which writes a target, still takes the owner's explicit choice for a markerless target.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from ci_tools.__main__ import main
from ci_tools.memory.files import RecordFile
from sandbox.ports import AnsweringServer
from tests.memory.helpers import state
from tests.support import context
from tests.workflows.scenarios import OWNER_BOT, adopt

USER = 5550123
OTHER = 5550124
PIN = "git+https://github.com/mindmate/mindmate-release@" + "a" * 40


def talked(client, user: int, facts: list[str]) -> None:
    """What tests/fixtures/owner_bot keeps of a user (bot/__main__.py): no prefix, no marker."""
    client.rpush(f"memory:{user}", *facts)
    client.rpush(f"user:{user}:history", *(f"2026-12-01 user: {fact}" for fact in facts))


@pytest.fixture
def adopted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The owner's repository after ``ci-tools adopt --yes``; its config is the one in force."""
    root = tmp_path / "ava"
    shutil.copytree(OWNER_BOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    adopt(root, PIN)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def production(adopted, redis_pair, monkeypatch):
    """Production's Key Value as the unchanged bot left it, wired as the snapshot's source and the
    restore's target (both are production's REDIS_URL in production.yml and restore-memory.yml)."""
    _, prod = redis_pair
    client = prod.client()
    talked(client, USER, ["likes tea", "sister Mia"])
    talked(client, OTHER, ["plays chess"])
    assert client.get("meta:env") is None  # the bot writes none
    monkeypatch.setenv("SOURCE_REDIS_URL", prod.url)
    monkeypatch.setenv("TARGET_REDIS_URL", prod.url)
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", Fernet.generate_key().decode())
    return client


def snapshot(out: Path) -> int:
    """production.yml's step: ``ci-tools memory snapshot production --commit <sha> --out memory-before``."""
    return main(["memory", "snapshot", "production", "--commit", "b" * 40, "--out", str(out)])


def test_the_first_release_of_an_unchanged_bot_is_snapshotted_saying_nothing_marks_its_redis(
    production, tmp_path, capsys
):
    before = state(production)
    assert snapshot(tmp_path / "memory-before") == 0, capsys.readouterr().err
    said = capsys.readouterr()
    warnings = [line for line in (said.out + said.err).splitlines() if line.startswith("⚠")]
    assert len(warnings) == 1, said
    assert "no meta:env marker" in warnings[0] and "base level" in warnings[0]
    assert state(production) == before  # a snapshot is a read: the marker is not written for the bot
    [path] = (tmp_path / "memory-before").iterdir()
    file = RecordFile(path, context().snapshot_fernet())
    port = production.connection_pool.connection_kwargs["port"]
    assert file.header["marker"] is None and file.header["server"].endswith(f":{port}/0")
    assert {r.key for r in file.records()} == set(production.scan_iter())


def test_after_a_bad_release_the_snapshot_goes_back_into_the_redis_it_was_read_from(production, tmp_path, capsys):
    assert snapshot(tmp_path / "memory-before") == 0
    before = state(production)
    production.delete(f"memory:{USER}")
    production.rpush(f"memory:{USER}", "the release overwrote this")
    out = str(tmp_path / "memory-restore")
    capsys.readouterr()
    restore = ["memory", "restore", str(tmp_path / "memory-before"), "--to", "production", "--out", out]
    assert main([*restore, "--apply"]) == 0
    said = capsys.readouterr().out
    assert state(production) == before
    assert "⚠" in said and "no meta:env marker" in said and "the server the snapshot was read from" in said


def test_a_markerless_redis_that_is_not_the_one_snapshotted_is_never_restored_into(
    production, redis_pair, tmp_path, capsys, monkeypatch
):
    assert snapshot(tmp_path / "memory-before") == 0
    other, _ = redis_pair  # another Redis, unmarked too (TARGET_REDIS_URL pointed at the wrong one)
    talked(other.client(), USER, ["somebody else's memory"])
    untouched = state(other.client())
    monkeypatch.setenv("TARGET_REDIS_URL", other.url)
    capsys.readouterr()
    assert main(["memory", "restore", str(tmp_path / "memory-before"), "--to", "production", "--apply"]) != 0
    err = capsys.readouterr().err
    assert "no meta:env marker" in err and "read from" in err
    assert state(other.client()) == untouched


def test_a_marker_naming_another_environment_is_refused_at_the_base_level_too(production, tmp_path, capsys):
    production.set("meta:env", "staging")
    assert snapshot(tmp_path / "memory-before") != 0
    assert "says 'staging'" in capsys.readouterr().err
    assert not (tmp_path / "memory-before").exists() or not any((tmp_path / "memory-before").iterdir())


class LiveBot(AnsweringServer):
    """The live production service's public URL, a real HTTP server: its health path answers the
    health JSON (a bot with a health answer, which claims its Redis at start) or 404 (no health
    answer: the base level, whatever the config's health_path now says)."""

    def __init__(self, body: dict | None) -> None:
        super().__init__(lambda: (200, body, {}) if body is not None else (404, b"Not Found", {}))


HEALTH = {
    "status": "ok",
    "env": "production",
    "commit": "c" * 40,
    "bot": {"id": 1, "username": "ava_bot"},
    "redis": {"ok": True, "env_marker": "production"},
    "key_prefix": "",
}


@pytest.fixture
def with_health_path(adopted):
    """The config after the kit lines and adopt again: production's health_path is /healthz, its
    base_url the live service (started by each test)."""

    def point_at(live: AnsweringServer) -> None:
        pyproject = adopted / "pyproject.toml"
        text = pyproject.read_text().replace('health_path = ""', 'health_path = "/healthz"')
        pyproject.write_text(text.replace("https://ava-bot.onrender.com", live.url))

    return point_at


def test_a_redis_without_a_marker_is_refused_when_the_live_bot_answers_the_health_json(
    production, with_health_path, tmp_path, capsys
):
    """A bot with a health answer claims its Redis at start (the kit writes the marker): that Redis
    holding keys and no marker is not its Redis, and stays refused."""
    with LiveBot(HEALTH) as live:
        with_health_path(live)
        assert snapshot(tmp_path / "memory-before") != 0
    assert "meta:env marker has none" in capsys.readouterr().err


def test_the_release_that_adds_the_kit_is_snapshotted_while_the_live_bot_is_still_at_the_base_level(
    production, with_health_path, tmp_path, capsys
):
    """The commit with the kit lines says health_path = "/healthz", but the live bot it replaces
    answers 404 there: the bot that wrote this Redis writes no marker, so it is snapshotted, saying so."""
    with LiveBot(None) as live:
        with_health_path(live)
        assert snapshot(tmp_path / "memory-before") == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "⚠" in err and "base level" in err and "HTTP 404" in err


def test_the_copy_into_a_markerless_target_takes_the_owners_named_choice(
    production, redis_pair, tmp_path, capsys, monkeypatch
):
    staging, _ = redis_pair
    talked(staging.client(), USER, ["likes tea"])
    monkeypatch.setenv("SOURCE_REDIS_URL", staging.url)
    production.delete(f"memory:{USER}", f"user:{USER}:history")
    before = state(production)
    route = ["memory", "copy", "--user-id", str(USER), "--from", "staging", "--to", "production", "--apply"]
    route += ["--legacy-source", "--out", str(tmp_path / "out")]
    capsys.readouterr()
    assert main(route) != 0
    err = capsys.readouterr().err
    assert "--unmarked-target" in err and state(production) == before  # refused, nothing written
    assert main([*route, "--target-kind", "unmarked"]) == 0  # migrate-memory's unmarked_target input
    assert production.lrange(f"memory:{USER}", 0, -1) == [b"likes tea"]
    production.set("meta:env", "staging")  # the named choice accepts an absent marker only
    assert main([*route, "--unmarked-target"]) != 0
    assert "says 'staging'" in capsys.readouterr().err


def test_two_key_values_behind_one_host_are_told_apart_by_the_urls_user(production, tmp_path, capsys, monkeypatch):
    """Render's external URLs share a regional host and name the instance as the user
    (``rediss://red-…:PASSWORD@oregon-keyvalue.render.com:6379``): host:port alone would take
    another Key Value for the one the snapshot was read from. Two ACL users on one server stand in."""
    for user in ("red-production", "red-staging"):
        production.execute_command("ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all")
    host, port = "127.0.0.1", production.connection_pool.connection_kwargs["port"]
    monkeypatch.setenv("SOURCE_REDIS_URL", f"redis://red-production:pw@{host}:{port}/0")
    assert snapshot(tmp_path / "memory-before") == 0
    before = state(production)
    monkeypatch.setenv("TARGET_REDIS_URL", f"redis://red-staging:pw@{host}:{port}/0")
    capsys.readouterr()
    assert main(["memory", "restore", str(tmp_path / "memory-before"), "--to", "production", "--apply"]) != 0
    assert "is not the Key Value" in capsys.readouterr().err and state(production) == before
    monkeypatch.setenv("TARGET_REDIS_URL", f"redis://red-production:pw@{host}:{port}/0")
    assert main(["memory", "restore", str(tmp_path / "memory-before"), "--to", "production", "--apply"]) == 0
