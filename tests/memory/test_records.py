"""Reading keys in batches: which keys are big, and what each record holds."""

from __future__ import annotations

from ci_tools.memory.records import decode_value, encode_value, read_records


def test_a_list_one_past_the_limit_is_read_in_parts_and_strings_never_are(redis_server):
    client = redis_server.client()
    client.rpush("at", *"abc")
    client.rpush("over", *"abcd")
    client.set("long", "x" * 10)
    client.hset("hash", mapping={"f": "1", "g": "2", "h": "3", "i": "4"})
    keys = [b"at", b"over", b"long", b"hash", b"gone"]
    records = list(read_records(client, keys, big=3, with_dump=True))
    # A small key is read whole, with its DUMP payload; a big one in parts, without.
    assert [(r.key, r.type, r.part, r.final, r.value, r.dump is not None) for r in records] == [
        (b"at", "list", 0, True, [b"a", b"b", b"c"], True),
        (b"over", "list", 0, False, [b"a", b"b", b"c"], False),
        (b"over", "list", 1, True, [b"d"], False),
        (b"long", "string", 0, True, b"x" * 10, True),
        (b"hash", "hash", 0, False, [(b"f", b"1"), (b"g", b"2"), (b"h", b"3")], False),
        (b"hash", "hash", 1, True, [(b"i", b"4")], False),
        (b"gone", "none", 0, True, None, False),
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
