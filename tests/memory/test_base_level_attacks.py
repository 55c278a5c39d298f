# ruff: noqa: F811  (the base-level tests' fixtures are imported, then taken as arguments)
"""Attacks on the base level's markerless snapshot and restore (tests/memory/test_base_level.py).

Without a ``meta:env`` marker, nothing in production's Redis proves it is production's: the
snapshot stands in the server it was read from (``server_id``) and the bot's level (base: no
health answer, or its own 4xx). Each test here tries to get a wrong Redis snapshotted or written
through that path, to lose what the user said since, or to see a secret in what it leaves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from ci_tools.__main__ import main
from ci_tools.memory.files import RecordFile
from ci_tools.memory.servers import server_id
from sandbox.ports import AnsweringServer, free_port
from tests.memory.helpers import state

# The base-level tests' own set-up: the adopted owner's repository, production's unmarked Redis
# wired as SOURCE_ and TARGET_REDIS_URL, the live service as a real HTTP server.
from tests.memory.test_base_level import (  # noqa: F401  (fixtures, taken as arguments)
    HEALTH,
    USER,
    LiveBot,
    adopted,
    production,
    snapshot,
    talked,
    with_health_path,
)
from tests.support import ROOT, context


def restore(snap: Path, out: Path, *extra: str) -> int:
    return main(["memory", "restore", str(snap), "--to", "production", "--out", str(out), *extra])


def url_of(client: redis.Redis, user: str = "", password: str = "") -> str:
    port = client.connection_pool.connection_kwargs["port"]
    auth = f"{user}:{password}@" if user or password else ""
    return f"redis://{auth}127.0.0.1:{port}/0"


# -- Which Key Value a URL names: one server, written many ways; two servers, never one ---------


@pytest.mark.parametrize(
    ("written", "as_well"),
    [
        ("redis://u:pw@kv.example:6379/0", "rediss://u:pw@kv.example:6379/0"),  # TLS or not: one server
        ("redis://u:pw@kv.example:6379/0", "redis://u:pw@kv.example:6379"),  # db omitted is 0
        ("redis://u:pw@kv.example:6379/0", "redis://u:pw@kv.example:6379/"),  # a trailing slash
        ("redis://u:pw@kv.example:6379/0", "redis://u:pw@KV.Example:6379/0"),  # host names have no case
        ("redis://u:pw@kv.example:6379/0", "redis://u:pw@kv.example/0"),  # the default port
        ("redis://u:pw@kv.example:6379/0", "redis://u:other@kv.example:6379/0"),  # the password rotated
        ("redis://u:pw@kv.example:6379/0", "redis://u:pw@kv.example:6379?db=0"),  # db as a query
        ("redis://:pw@kv.example:6379/0", "redis://default:pw@kv.example:6379/0"),  # AUTH pw is user default
        ("redis://[::1]:6379/0", "redis://[::1]:6379"),  # IPv6
    ],
)
def test_one_key_value_written_two_ways_is_one_server(written, as_well):
    assert server_id(written) == server_id(as_well)


@pytest.mark.parametrize(
    ("one", "another"),
    [
        ("redis://red-prod:pw@oregon-keyvalue.render.com:6379", "redis://red-stag:pw@oregon-keyvalue.render.com:6379"),
        ("redis://u:pw@kv.example:6379/0", "redis://u:pw@kv.example:6379/1"),
        ("redis://u:pw@kv.example:6379/0", "redis://u:pw@kv.example:6380/0"),
        ("redis://[::1]:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_two_key_values_are_never_one_server(one, another):
    assert server_id(one) != server_id(another)


def test_the_server_id_is_a_digest_that_names_no_part_of_the_url():
    seen = server_id("rediss://red-abc123:s3cr3t-pass@oregon-keyvalue.render.com:6379/0")
    assert len(seen) == 16 and int(seen, 16) >= 0  # hex only: no user, no host, no password


def test_a_password_rotated_between_snapshot_and_restore_still_restores_into_the_same_key_value(
    production, tmp_path, monkeypatch
):
    production.config_set("requirepass", "first-pass")
    authed = redis.Redis.from_url(url_of(production, password="first-pass"))
    monkeypatch.setenv("SOURCE_REDIS_URL", url_of(production, password="first-pass"))
    assert snapshot(tmp_path / "memory-before") == 0
    before = state(authed)
    authed.rpush(f"memory:{USER}", "the bad release wrote this")
    authed.config_set("requirepass", "second-pass")  # rotated in Render; the secret follows
    monkeypatch.setenv("TARGET_REDIS_URL", url_of(production, password="second-pass"))
    assert restore(tmp_path / "memory-before", tmp_path / "out", "--apply") == 0
    assert state(redis.Redis.from_url(url_of(production, password="second-pass"))) == before


def test_the_default_user_named_or_not_is_the_same_key_value_for_the_restore(production, tmp_path, monkeypatch, capsys):
    """``redis://:pw@`` authenticates as the user ``default`` (Redis's AUTH with one argument): the
    secret rewritten in the other form still names the Key Value the snapshot was read from."""
    production.config_set("requirepass", "pw")
    monkeypatch.setenv("SOURCE_REDIS_URL", url_of(production, password="pw"))
    assert snapshot(tmp_path / "memory-before") == 0
    monkeypatch.setenv("TARGET_REDIS_URL", url_of(production, user="default", password="pw"))
    capsys.readouterr()
    assert restore(tmp_path / "memory-before", tmp_path / "out", "--apply") == 0, capsys.readouterr().err


# -- A restore of an unmarked snapshot goes back only where it was read -----------------------


def test_an_unmarked_snapshot_is_not_restored_into_another_key_value_marked_production(
    production, redis_pair, tmp_path, monkeypatch, capsys
):
    """docs/MEMORY.md: a restore of an unmarked snapshot "writes only into that very Key Value".
    Nothing proved the Redis it was read from was production's (the secret may have named
    staging's, both bots at the base level): a marker on another server does not prove it either."""
    assert snapshot(tmp_path / "memory-before") == 0
    other, _ = redis_pair
    marked = other.client()
    marked.set("meta:env", "production")  # production's real Key Value, its bot now with the kit
    talked(marked, USER, ["production's own memory"])
    untouched = state(marked)
    monkeypatch.setenv("TARGET_REDIS_URL", other.url)
    capsys.readouterr()
    assert restore(tmp_path / "memory-before", tmp_path / "out", "--apply") != 0
    assert "read from" in capsys.readouterr().err
    assert state(marked) == untouched


def test_the_same_key_value_marked_since_by_the_kit_still_takes_its_unmarked_snapshot_back(
    production, tmp_path, capsys
):
    """The release that added the kit went out (its bot claimed the Redis at start) and is rolled
    back: the snapshot from before it goes back into the same Key Value, now marked production."""
    assert snapshot(tmp_path / "memory-before") == 0
    production.set("meta:env", "production")
    before = state(production)
    production.rpush(f"memory:{USER}", "the bad release wrote this")
    assert restore(tmp_path / "memory-before", tmp_path / "out", "--apply") == 0, capsys.readouterr().err
    assert state(production) == before


def test_the_undo_of_a_restore_writes_only_into_the_key_value_the_restore_wrote(production, tmp_path, monkeypatch):
    """Render's external URLs share a regional host and tell instances apart by the user: the
    restore refuses another user's Key Value (1ba43dd), and its undo must too, or the backup (what
    production held) goes into staging's Key Value. Two ACL users on one server stand in."""
    for user in ("red-production", "red-staging"):
        production.execute_command("ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all")
    monkeypatch.setenv("SOURCE_REDIS_URL", url_of(production, "red-production", "pw"))
    monkeypatch.setenv("TARGET_REDIS_URL", url_of(production, "red-production", "pw"))
    assert snapshot(tmp_path / "memory-before") == 0
    production.rpush(f"memory:{USER}", "said after the snapshot")
    assert restore(tmp_path / "memory-before", tmp_path / "out", "--apply") == 0
    [backup] = (tmp_path / "out").glob("*backup*.jsonl")
    monkeypatch.setenv("TARGET_REDIS_URL", url_of(production, "red-staging", "pw"))
    assert main(["memory", "undo", str(backup), "--out", str(tmp_path / "undo"), "--apply"]) != 0
    monkeypatch.setenv("TARGET_REDIS_URL", url_of(production, "red-production", "pw"))
    assert main(["memory", "undo", str(backup), "--out", str(tmp_path / "undo"), "--apply"]) == 0
    assert production.lrange(f"memory:{USER}", -1, -1) == [b"said after the snapshot"]


def test_what_the_user_said_between_the_restores_plan_and_its_write_is_kept(production, tmp_path, capsys):
    """Restore's --stage plan backs up and plans; the user talks; --stage write must not overwrite
    that (the guard: compare-and-set on what the plan saw), and says it left it."""
    assert snapshot(tmp_path / "memory-before") == 0
    production.rpush(f"memory:{USER}", "the bad release wrote this")
    out = tmp_path / "out"
    assert restore(tmp_path / "memory-before", out, "--apply", "--stage", "plan") == 0
    production.rpush(f"memory:{USER}", "said after the plan")
    newer = production.lrange(f"memory:{USER}", 0, -1)
    capsys.readouterr()
    assert restore(tmp_path / "memory-before", out, "--apply", "--stage", "write") == 0
    assert production.lrange(f"memory:{USER}", 0, -1) == newer
    assert f"memory:{USER} changed during the write" in capsys.readouterr().out


# -- The base level is the bot's own word, not a blip or a redirect ---------------------------


class Answers(AnsweringServer):
    """The live service answering its health path with ``status`` (and ``headers``), no body."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(lambda: (status, b"", headers or {}))


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (500, {}),
        (502, {}),  # the platform's edge while the instance restarts
        (503, {}),
        (408, {}),
        (429, {}),
        (301, {"Location": "https://ava-bot.onrender.com/healthz"}),  # http → https at the edge
        (307, {"Location": "/health"}),  # the health answer lives elsewhere: a bot that may claim its Redis
    ],
)
def test_an_answer_that_is_not_the_bots_4xx_leaves_a_markerless_redis_refused(
    production, with_health_path, tmp_path, capsys, status, headers
):
    with Answers(status, headers) as live:
        with_health_path(live)
        assert snapshot(tmp_path / "memory-before") != 0
    assert "meta:env marker has none" in capsys.readouterr().err
    assert not (tmp_path / "memory-before").exists() or not any((tmp_path / "memory-before").iterdir())


def test_a_service_that_does_not_answer_leaves_a_markerless_redis_refused(production, adopted, tmp_path, capsys):
    pyproject = adopted / "pyproject.toml"
    text = pyproject.read_text().replace('health_path = ""', 'health_path = "/healthz"')
    pyproject.write_text(text.replace("https://ava-bot.onrender.com", f"http://127.0.0.1:{free_port()}"))
    assert snapshot(tmp_path / "memory-before") != 0
    assert "meta:env marker has none" in capsys.readouterr().err


def test_a_health_answer_claiming_another_redis_leaves_this_markerless_one_refused(
    production, with_health_path, tmp_path, capsys
):
    """The live bot answers the health JSON naming its marker production: SOURCE_REDIS_URL's
    markerless Redis is not the one it claimed (the secret names a wrong one)."""
    with LiveBot({**HEALTH, "redis": {"ok": True, "env_marker": None}}) as live:
        with_health_path(live)
        assert snapshot(tmp_path / "memory-before") != 0
    assert "meta:env marker has none" in capsys.readouterr().err


# -- Secrets: none in what the snapshot, restore and undo print or keep -----------------------


def test_no_part_of_the_urls_secret_is_in_any_output_file_or_summary(production, tmp_path, monkeypatch, capsys):
    password, user = "Pa55-w0rd-never-shown", "red-secretuser"
    production.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all")
    url = url_of(production, user, password)
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs.txt"
    for variable in ("SOURCE_REDIS_URL", "TARGET_REDIS_URL"):
        monkeypatch.setenv(variable, url)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    assert snapshot(tmp_path / "memory-before") == 0
    production.rpush(f"memory:{USER}", "the bad release wrote this")
    assert restore(tmp_path / "memory-before", tmp_path / "out", "--apply") == 0
    said = capsys.readouterr()
    fernet = context().snapshot_fernet()
    headers = [RecordFile(p, fernet).header for p in (*tmp_path.glob("memory-before/*"), *tmp_path.glob("out/*"))]
    kept = [said.out, said.err, summary.read_text(), outputs.read_text(), json.dumps(headers)]
    assert "⚠" in said.err and headers
    for text in kept:
        assert password not in text


# -- The memory copy into an unmarked target keeps its guarantees ------------------------------


def copy_route(out: Path) -> list[str]:
    route = ["memory", "copy", "--user-id", str(USER), "--from", "staging", "--to", "production", "--apply"]
    return [*route, "--legacy-source", "--unmarked-target", "--on-conflict", "replace", "--out", str(out)]


def test_a_copy_into_an_unmarked_target_backs_up_first_verifies_and_its_undo_puts_it_back_exactly(
    production, redis_pair, tmp_path, monkeypatch, capsys
):
    staging, _ = redis_pair
    talked(staging.client(), USER, ["from staging"])
    monkeypatch.setenv("SOURCE_REDIS_URL", staging.url)
    before = state(production)
    assert main(copy_route(tmp_path / "out")) == 0, capsys.readouterr().err
    said = json.dumps(capsys.readouterr().out)
    assert production.lrange(f"memory:{USER}", 0, -1) == [b"from staging"] and "verified" in said
    [backup] = (tmp_path / "out").glob("*backup*.jsonl")
    assert main(["memory", "undo", str(backup), "--out", str(tmp_path / "undo"), "--apply"]) == 0
    assert state(production) == before


def test_the_undo_of_a_copy_into_an_unmarked_target_never_writes_another_unmarked_redis(
    production, redis_pair, tmp_path, monkeypatch
):
    staging, _ = redis_pair
    talked(staging.client(), USER, ["from staging"])
    monkeypatch.setenv("SOURCE_REDIS_URL", staging.url)
    assert main(copy_route(tmp_path / "out")) == 0
    [backup] = (tmp_path / "out").glob("*backup*.jsonl")
    untouched = state(staging.client())
    monkeypatch.setenv("TARGET_REDIS_URL", staging.url)  # the wrong secret at undo time
    assert main(["memory", "undo", str(backup), "--out", str(tmp_path / "undo"), "--apply"]) != 0
    assert state(staging.client()) == untouched


@pytest.mark.parametrize("claimed", ["staging", "production ", "PRODUCTION", ""])
def test_unmarked_target_accepts_no_marker_but_an_absent_one(production, redis_pair, tmp_path, monkeypatch, claimed):
    """Only an absent marker is what --unmarked-target names: any value that is not the target
    environment's own (another one, a near miss, an empty string) is refused, nothing written."""
    staging, _ = redis_pair
    talked(staging.client(), USER, ["from staging"])
    monkeypatch.setenv("SOURCE_REDIS_URL", staging.url)
    production.set("meta:env", claimed)
    before = state(production)
    assert main(copy_route(tmp_path / "out")) != 0
    assert state(production) == before


def test_what_the_user_said_after_the_snapshot_under_a_new_key_is_left_by_the_restore(production, tmp_path):
    assert snapshot(tmp_path / "memory-before") == 0
    talked(production, 5550999, ["a new user since the release"])
    said_since = state(production)
    assert restore(tmp_path / "memory-before", tmp_path / "out", "--apply") == 0
    assert state(production) == said_since  # nothing the snapshot holds changed; the new user is kept


def test_staging_s_unmarked_redis_behind_production_s_secret_is_not_snapshotted_as_production_s(
    production, redis_pair, tmp_path, monkeypatch, capsys
):
    """Both bots at the base level, PRODUCTION_REDIS_URL pasted from staging: no marker tells them
    apart, but the run holds staging's URL too (production's SOURCE_REDIS_URL during the move, handed
    to the snapshot as STAGING_REDIS_URL): the same Key Value behind both is refused, nothing read."""
    staging, _ = redis_pair
    talked(staging.client(), USER, ["staging's test chat"])
    monkeypatch.setenv("SOURCE_REDIS_URL", staging.url)  # PRODUCTION_REDIS_URL pasted from staging
    monkeypatch.setenv("STAGING_REDIS_URL", staging.url)
    assert snapshot(tmp_path / "memory-before") == 2
    err = capsys.readouterr().err
    assert "the same Key Value as STAGING_REDIS_URL (staging's)" in err and len(err.strip().splitlines()) == 1
    assert not any((tmp_path / "memory-before").glob("*"))


def test_a_snapshot_of_staging_s_unmarked_redis_is_judged_not_an_undeclared_secret(redis_pair, tmp_path):
    """The wrong-secret check looked up every other environment's URL: snapshotting staging read
    PRODUCTION_REDIS_URL, which the command does not declare (staging's run never holds it), and
    ended 'unexpected UndeclaredSecret' (exit 1) instead of judging the Redis. Run as a process with
    only the step's variable, as the workflow runs it."""
    staging, _ = redis_pair
    staging.client().hset(f"user:{USER}:profile", "name", "Sam")  # the config in force is mindmate's
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SOURCE_REDIS_URL": staging.url}
    done = subprocess.run(
        [sys.executable, "-m", "ci_tools", "memory", "snapshot", "staging", "--out", str(tmp_path / "snap")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "UndeclaredSecret" not in done.stderr and "unexpected" not in done.stderr, done.stderr
    assert done.returncode == 5 and "not staging's: its meta:env marker has none" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
