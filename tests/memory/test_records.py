"""Reading keys in batches: what each record holds."""

from __future__ import annotations

from ci_tools.memory.records import decode_value, encode_value, read_records


def test_each_key_is_read_whole_with_its_payload_and_absent_keys_too(redis_server):
    client = redis_server.client()
    client.rpush("list", *"abcd")
    client.set("long", "x" * 10)
    client.hset("hash", mapping={"f": "1", "g": "2", "h": "3", "i": "4"})
    keys = [b"list", b"long", b"hash", b"gone"]
    records = list(read_records(client, keys))
    assert [(r.key, r.type, r.value, r.dump == client.dump(r.key)) for r in records] == [
        (b"list", "list", [b"a", b"b", b"c", b"d"], True),
        (b"long", "string", b"x" * 10, True),
        (b"hash", "hash", [(b"f", b"1"), (b"g", b"2"), (b"h", b"3"), (b"i", b"4")], True),
        (b"gone", "none", None, True),
    ]


def test_values_survive_the_json_encoding_byte_for_byte():
    binary = bytes(range(256))
    cases = {
        "string": binary,
        "list": [b"", binary, b"a\nb"],
        "set": [],
        "hash": [(b"", binary), (b"f", b"")],
        "zset": [(b"m", 1.5), (binary, float("-inf")), (b"n", float("inf"))],
        "stream": [(b"1-0", [(b"text", binary)])],
    }
    for type_, value in cases.items():
        assert decode_value(type_, encode_value(type_, value)) == value, type_
