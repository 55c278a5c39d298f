"""Which keys are one user's: exact keys read directly, patterns through an escaped SCAN."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import redis

from ci_tools.errors import InputError

# The kit's arrival record of a user (docs/CONTRACT.md, release_kit/arrival.py): which bot saw
# them last and since when. Not their memory: a migration's copy leaves it behind (the new bot's
# kit starts it at their first message there), and the coverage audit does not ask for it.
KIT_ARRIVAL = "kit:arrival:{user_id}"


def escape_glob(text: bytes) -> bytes:
    """Escape ``* ? [ ] \\`` so SCAN MATCH treats them literally."""
    return re.sub(rb"([*?\[\]\\])", rb"\\\1", text)


def has_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


@dataclass(frozen=True)
class KeySpace:
    """A user's keys under one prefix, and how a key maps to the other side's prefix."""

    prefix: bytes
    patterns: tuple[str, ...]
    user_id: int

    @cached_property
    def ownership(self) -> re.Pattern[bytes]:
        """Which keys are this user's: prefix + any pattern, the id not followed by a digit
        (SCAN MATCH alone would let ``memory:{user_id}*`` take user 12's keys for user 1)."""
        alternatives = []
        for pattern in self.patterns:
            before, _, after = pattern.partition("{user_id}")
            alternatives.append(_glob_regex(before) + re.escape(str(self.user_id)) + r"(?![0-9])" + _glob_regex(after))
        return re.compile(re.escape(self.prefix) + b"(?:" + "|".join(alternatives).encode() + b")", re.S)


def _glob_regex(glob: str) -> str:
    return "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in glob)


def discover(client: redis.Redis, space: KeySpace, *, scan_count: int = 10_000) -> list[bytes]:
    """The user's existing keys, sorted; exact keys need no SCAN (one EXISTS round trip). The kit's
    arrival record is taken only by a pattern naming it (send-back's), never by an owner's glob."""
    exact = [space.prefix + p.format(user_id=space.user_id).encode() for p in space.patterns if not has_glob(p)]
    found: set[bytes] = set()
    if exact:
        pipe = client.pipeline(transaction=False)
        for key in exact:
            pipe.exists(key)
        found |= {key for key, n in zip(exact, pipe.execute(), strict=True) if n}
    uid = escape_glob(str(space.user_id).encode()).decode()  # the prefix and the id escaped, the wildcards kept
    for pattern in (escape_glob(space.prefix) + p.format(user_id=uid).encode() for p in space.patterns if has_glob(p)):
        found.update(filter(space.ownership.fullmatch, scan(client, pattern, scan_count)))
    if KIT_ARRIVAL not in space.patterns:
        found.discard(space.prefix + KIT_ARRIVAL.format(user_id=space.user_id).encode())
    return sorted(found)


def uncovered(client: redis.Redis, prefix: bytes, user_id: int, covered: set[bytes]) -> list[bytes]:
    """Keys under ``prefix`` that name the user but no pattern covers: the coverage audit. A key
    counts when the id is a whole ``:``-segment of it (``x:user:42:mood``, never ``420``); the kit's
    arrival record is not the user's memory and never reported."""
    segment = user_segment(user_id)
    covered = {*covered, prefix + KIT_ARRIVAL.format(user_id=user_id).encode()}
    match = escape_glob(prefix) + b"*" + str(user_id).encode() + b"*"
    return sorted({k for k in scan(client, match) if segment.search(k[len(prefix) :])} - covered)


def user_segment(user_id: int) -> re.Pattern[bytes]:
    """A key belongs to a user when the id is a whole ``:``-segment of it (never part of 420)."""
    return re.compile(rb"(?:^|:)" + re.escape(str(user_id).encode()) + rb"(?::|$)")


def scan(client: redis.Redis, match: bytes, count: int = 10_000) -> Iterator[bytes]:
    """Every key SCAN MATCH finds. It visits the whole database, the other users' keys too: 10,000
    a call keeps the round trips few over a slow link (a call costs the server about a millisecond)."""
    cursor = None
    while cursor != 0:
        cursor, page = client.scan(cursor or 0, match=match, count=count)
        yield from (key for key in page if isinstance(key, bytes))


# -- A Telegram user id is an integer; anything else never reaches a Redis pattern.

# Users are positive; groups and channels are negative (-100… for supergroups).
_ID = re.compile(r"-?[1-9][0-9]{0,18}")  # fullmatch: "$" would let "42\n" through


def parse_user_id(raw: object) -> int:
    """The id as an int; a glob, a list, whitespace or anything not a plain integer is refused."""
    text = "" if raw is None else str(raw)
    if not _ID.fullmatch(text):
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise InputError(
            f"--user-id {shown!r} is not a Telegram user id",
            hint="give the number only, e.g. 123456789 (negative for groups); no spaces, wildcards or lists",
        )
    return int(text)
