"""The probe's surface from outside, as an attacker or a confused client meets it: nonces and
keys at the edges of the rules in docs/CONTRACT.md."""

from __future__ import annotations

import httpx
import pytest

from tests.release_kit.test_kit import echo
from tests.support import signed


@pytest.mark.parametrize("nonce", ["abcdef%0A", "abcdef%0D%0A", "ABCDEF", "abc", "a" * 65, "abcdef%2Fx"])
def test_a_nonce_outside_the_contracts_pattern_is_a_400(small_bot, nonce):
    """``^[a-z0-9-]{6,64}$`` with ``re.match`` takes "abcdef\\n" (``$`` matches before a final newline)."""
    with small_bot(echo) as (url, fake):
        for method in ("GET", "DELETE"):
            answer = httpx.request(method, f"{url}/probe/{nonce}", headers=signed(fake.token))
            assert answer.status_code in (400, 404), (method, nonce, answer.text)
