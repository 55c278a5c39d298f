"""Attacks on ``servers.connect()``: the first contact fails fast and in one line with its fix, and
the client it returns keeps the command's timeout (``CI_TOOLS_TIMEOUT``), read from the environment.

Real processes only: a redis-server on a free port, and a TCP server that accepts and never answers."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
import redis

from ci_tools.errors import ConfigError, FatalError, RemoteError
from ci_tools.memory import servers
from sandbox.ports import free_port, silent_server
from sandbox.redis import RedisServer
from tests.memory.test_servers import SLOW
from tests.support import context

SECRET = "p@ss:w/rd#?%-s3cr3t"  # every character a URL gives a meaning to


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer(password="pw") as started:
        started.client().config_set("requirepass", SECRET)  # the stand-in's URL would not quote it
        yield started


def url(server: RedisServer, password: str = SECRET, db: int = 0, scheme: str = "redis") -> str:
    return f"{scheme}://default:{quote(password, safe='')}@127.0.0.1:{server.port}/{db}"


@pytest.mark.timeout(30)  # a first contact on the command's timeout (an hour here) fails by this
@pytest.mark.parametrize("timeout", [3600.0, None])
def test_a_server_that_never_answers_fails_the_first_contact_fast(monkeypatch, timeout):
    """One that accepts and stays silent (a hung Redis): the first contact's short timeout, not the command's."""
    monkeypatch.setattr(servers, "FIRST_CONTACT", 0.2)
    with silent_server() as address, pytest.raises(RemoteError) as caught:
        servers.connect(f"redis://{address}/0", "source", timeout=timeout)
    assert f"cannot reach the source Redis at {address}/0 (TimeoutError)" in str(caught.value)


def test_ci_tools_timeout_reaches_every_command_after_the_first_contact(monkeypatch, server):
    """From the environment to the command: ``open_side`` as every memory command calls it."""
    monkeypatch.setattr(servers, "FIRST_CONTACT", 0.2)
    patient = servers.open_side(context(CI_TOOLS_TIMEOUT="30", TARGET_REDIS_URL=url(server)), "target", "a test")
    assert patient.eval(SLOW, 0, "600") == 1  # 0.6 s: three times the first contact's
    patient.connection_pool.disconnect()  # a reconnection (the server restarted, say) keeps it too
    assert patient.eval(SLOW, 0, "600") == 1
    hasty = servers.open_side(context(CI_TOOLS_TIMEOUT="0.3", TARGET_REDIS_URL=url(server)), "target", "a test")
    with pytest.raises(redis.TimeoutError):
        hasty.eval(SLOW, 0, "600")


def test_a_password_url_syntax_would_split_is_read_whole_and_the_url_db_is_the_one_used(server):
    client = servers.connect(url(server, db=3), "target", timeout=5)
    client.set(b"k", b"v")
    assert redis.Redis(port=server.port, password=SECRET, db=3).get(b"k") == b"v"  # the URL's /3, not 0
    assert servers.identity(client)[1] == 3
    assert servers.identity(client)[0] == servers.identity(servers.connect(url(server), "source"))[0]
    assert servers.server_id(url(server, db=3)) != servers.server_id(url(server, db=0))
    assert servers.server_id(url(server)) == servers.server_id(url(server, password="another"))


def _failure(monkeypatch, address: str, **kwargs: object) -> FatalError:
    monkeypatch.setattr(servers, "FIRST_CONTACT", 0.5)  # rediss:// to a plain server waits for its handshake
    with pytest.raises(FatalError) as caught:
        servers.connect(address, "target", **kwargs)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize(
    ("make", "kind", "says"),
    [
        (lambda s: url(s, password="wrong" + SECRET), ConfigError, "the target Redis refused the password"),
        (lambda s: url(s, db=99), ConfigError, "DB index is out of range"),  # was a ResponseError: no hint
        (lambda s: url(s, scheme="rediss"), RemoteError, "cannot reach the target Redis"),
        (lambda s: f"redis://:{quote(SECRET, safe='')}@127.0.0.1:{free_port()}/0", RemoteError, "cannot reach"),
        (lambda s: f"redis://:{SECRET}@127.0.0.1:{s.port}/0", ConfigError, "malformed"),  # unquoted
        (lambda s: f"redis//:{SECRET}@127.0.0.1", ConfigError, "malformed"),
    ],
    ids=["wrong password", "no such database", "rediss to plain", "nothing listening", "unquoted", "no scheme"],
)
def test_every_first_contact_failure_is_one_line_with_its_fix_and_no_secret(monkeypatch, server, make, kind, says):
    failed = _failure(monkeypatch, make(server), timeout=5)
    assert isinstance(failed, kind)
    line = failed.one_line()
    assert says in line
    assert failed.hint, f"no fix named: {line}"
    assert "\n" not in line
    for piece in (SECRET, quote(SECRET, safe=""), "s3cr3t"):
        assert piece not in line
