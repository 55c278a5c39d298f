"""Which keys are one user's: SCAN finds candidates, the ownership regex decides."""

from __future__ import annotations

from ci_tools.memory.keys import KeySpace, discover


def test_a_wildcard_after_the_id_never_takes_a_longer_id(redis_server):
    client = redis_server.client()
    for key in ("dev:memory:1", "dev:memory:1:notes", "dev:memory:12", "dev:memory:12:x"):
        client.set(key, "x")
    client.set("prod:memory:1", "other prefix")
    space = KeySpace(b"dev:", ("memory:{user_id}*",), 1)
    assert discover(client, space, scan_count=2) == [b"dev:memory:1", b"dev:memory:1:notes"]


def test_glob_characters_in_the_prefix_are_literal(redis_server):
    client = redis_server.client()
    client.set("d*v:memory:7", "mine")
    client.set("dev:memory:7", "not under this prefix")
    for pattern in ("memory:{user_id}", "memory:{user_id}*"):  # read directly; through SCAN
        assert discover(client, KeySpace(b"d*v:", (pattern,), 7)) == [b"d*v:memory:7"]
