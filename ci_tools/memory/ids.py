"""A Telegram user id is an integer; anything else never reaches a Redis pattern."""

from __future__ import annotations

import re

from ci_tools.errors import InputError

# Users are positive; groups and channels are negative (-100… for supergroups).
_ID = re.compile(r"^-?[1-9][0-9]{0,18}$")


def parse_user_id(raw: object) -> int:
    """The id as an int; a glob, a list, whitespace or anything not a plain integer is refused."""
    text = "" if raw is None else str(raw)
    if not _ID.match(text):
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise InputError(
            f"--user-id {shown!r} is not a Telegram user id",
            hint="give the number only, e.g. 123456789 (negative for groups); no spaces, wildcards or lists",
        )
    return int(text)
