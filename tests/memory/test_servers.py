"""The Redis client every memory command uses: a short first contact, then the command's timeout.

redis-py 8 keeps, in its pool, the connection the first contact made, with the short timeout it
was made with: setting the pool's timeout after the ping changed nothing, and every command had
8 s whatever ``CI_TOOLS_TIMEOUT`` said (a 50 MB key's read failed so on a busy machine)."""

from __future__ import annotations

import pytest
import redis

from ci_tools.memory import servers
from sandbox.redis import RedisServer

# A script that holds the server for ``ARGV[1]`` ms before it answers: a slow command, for real.
SLOW = """
local start = redis.call('TIME')
local function ms(t) return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) end
while ms(redis.call('TIME')) - ms(start) < tonumber(ARGV[1]) do end
return 1
"""


def test_a_command_slower_than_the_first_contact_gets_the_commands_timeout(monkeypatch):
    monkeypatch.setattr(servers, "FIRST_CONTACT", 0.2)
    with RedisServer() as server:
        client = servers.connect(server.url, "source", timeout=30)
        assert client.eval(SLOW, 0, "600") == 1  # 0.6 s: past the first contact's 0.2 s
        short = servers.connect(server.url, "source", timeout=0.3)
        with pytest.raises(redis.TimeoutError):
            short.eval(SLOW, 0, "600")  # and the command's own timeout holds
