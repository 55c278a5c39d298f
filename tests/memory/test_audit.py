"""The user's memory, all of it: the legacy unprefixed source, and keys no pattern names."""

from __future__ import annotations

import pytest

from ci_tools.__main__ import main
from tests.memory.helpers import OTHER, ROUTE, USER, seed_user

EXTRA = ["events:{id}", "x:user:{id}:mood", "x:user:{id}:tags"]


def cli(*args: str) -> int:
    return main(["memory", *args])


def test_the_legacy_unprefixed_unmarked_source_is_copied_to_prod_and_verified(memory_envs, tmp_path, capsys):
    dev, prod = memory_envs
    legacy = dev.client()
    legacy.flushall()
    seed_user(legacy, prefix="")
    legacy.delete("meta:env")  # the bot of today never wrote one
    assert cli("copy", *ROUTE, "--source-prefix", "", "--apply", "--out", str(tmp_path)) == 5
    assert "pass --legacy-source" in capsys.readouterr().err
    assert (
        cli(
            "copy",
            *ROUTE,
            "--source-prefix",
            "",
            "--legacy-source",
            "--apply",
            "--out",
            str(tmp_path),
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "written 3, verified 3" in out
    target = prod.client()
    assert target.lrange(f"prod:memory:{USER}", 0, -1) == legacy.lrange(f"memory:{USER}", 0, -1)
    assert target.lrange(f"prod:user:{USER}:history", 0, -1) == legacy.lrange(f"user:{USER}:history", 0, -1)
    assert not target.exists(f"prod:memory:{OTHER}")


def test_a_marker_naming_another_environment_is_refused_even_for_a_legacy_source(memory_envs, tmp_path, capsys):
    dev, _ = memory_envs
    dev.client().set("dev:meta:env", "production")
    assert cli("copy", *ROUTE, "--legacy-source", "--apply", "--out", str(tmp_path)) == 5
    assert "says 'production'" in capsys.readouterr().err


@pytest.fixture
def scattered(memory_envs):
    """Keys of the user that the configured patterns do not name (and one that only looks so)."""
    dev, prod = memory_envs
    client = dev.client()
    for key in EXTRA:
        client.set(f"dev:{key.format(id=USER)}", "x")
    client.set(f"dev:events:{USER}0", "a longer id: another user")
    return dev, prod


def test_uncovered_keys_are_listed_and_an_apply_refuses_by_default(scattered, tmp_path, capsys):
    _, prod = scattered
    assert cli("copy", *ROUTE, "--out", str(tmp_path), "--json") == 0  # the dry run lists them
    document = capsys.readouterr().out
    for key in EXTRA:
        assert f"dev:{key.format(id=USER)}" in document
    assert f"dev:events:{USER}0" not in document
    assert cli("copy", *ROUTE, "--apply", "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "3 key(s) of user 424242 match no memory pattern" in err and "--include-uncovered" in err
    assert prod.client().dbsize() == 1  # only its marker: nothing was written


def test_uncovered_keys_included_are_copied_with_the_same_care(scattered, tmp_path, capsys):
    _, prod = scattered
    assert cli("copy", *ROUTE, "--apply", "--include-uncovered", "--out", str(tmp_path)) == 0
    assert "written 6, verified 6" in capsys.readouterr().out
    for key in EXTRA:
        assert prod.client().get(f"prod:{key.format(id=USER)}") == b"x"
    assert not prod.client().exists(f"prod:events:{USER}0")


def test_uncovered_keys_ignored_stay_and_the_result_says_so(scattered, tmp_path, capsys):
    _, prod = scattered
    assert cli("copy", *ROUTE, "--apply", "--ignore-uncovered", "--out", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "written 3, verified 3" in out and "3 key(s) of this user were left in the source" in out
    assert not prod.client().exists(f"prod:events:{USER}")


def test_with_everything_covered_the_configured_patterns_copy_without_a_flag(memory_envs, tmp_path, capsys):
    dev, prod = memory_envs
    dev.client().set(f"dev:conversation:{USER}", "covered: conversation:{user_id} is a configured pattern")
    assert cli("copy", *ROUTE, "--apply", "--out", str(tmp_path)) == 0
    assert prod.client().exists(f"prod:conversation:{USER}")


def test_the_kits_arrival_record_is_left_behind_without_asking_for_a_flag(memory_envs, tmp_path, capsys):
    """kit:arrival:<id> is the kit's record of which bot the user wrote to (docs/CONTRACT.md), not their
    memory: the copy neither carries it nor refuses over it, so the new bot's kit starts it afresh."""
    dev, prod = memory_envs
    dev.client().hset(f"dev:kit:arrival:{USER}", mapping={"bot_id": "111", "since": "1", "last": "2"})
    assert cli("copy", *ROUTE, "--apply", "--out", str(tmp_path)) == 0
    assert "left in the source" not in capsys.readouterr().out
    assert not prod.client().exists(f"prod:kit:arrival:{USER}")
