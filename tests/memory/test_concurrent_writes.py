"""The bot keeps writing while a restore, a replacing copy or an undo runs: nothing it wrote is lost.

A thread plays the bot: it appends to the user's history every few milliseconds for the whole
operation, and once for sure between the plan (the backup) and the write. Every value it wrote
must be in the live memory afterwards, and the result must name the key it left alone.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from cryptography.fernet import Fernet

from ci_tools.__main__ import main
from ci_tools.memory import job
from ci_tools.memory.ops import copy_user
from tests.memory.helpers import USER, request, seed_all_types, seed_user
from tests.support import context

HISTORY = f"prod:user:{USER}:history".encode()


class Bot(threading.Thread):
    """Appends ``said-<n>`` to the user's history every 2 ms until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.said: list[bytes] = []
        self.done = threading.Event()

    def say(self) -> None:
        text = f"said-{len(self.said)}".encode()
        self.client.rpush(HISTORY, text)
        self.said.append(text)

    def run(self) -> None:
        while not self.done.is_set():
            self.say()
            time.sleep(0.002)

    def stop(self) -> list[bytes]:
        self.done.set()
        self.join(timeout=5)
        return self.said


@contextmanager
def bot_writing(url: str, monkeypatch: pytest.MonkeyPatch, *, throughout: bool = True) -> Iterator[Bot]:
    """The bot writes certainly between the backup and the first write, and throughout if asked."""
    bot = Bot(url)
    original = job.MemoryJob._write

    def run_after_the_user_spoke(self, *args):  # type: ignore[no-untyped-def]
        bot.say()
        time.sleep(0.01)
        return original(self, *args)

    monkeypatch.setattr(job.MemoryJob, "_write", run_after_the_user_spoke)
    if throughout:
        bot.start()
    try:
        yield bot
    finally:
        if throughout:
            bot.stop()


def everything_said_is_there(client: redis.Redis, said: list[bytes]) -> None:
    live = set(client.lrange(HISTORY, 0, -1))
    lost = [value for value in said if value not in live]
    assert not lost, f"{len(lost)} of {len(said)} values the bot wrote are gone"


@pytest.fixture
def prod(redis_pair, monkeypatch):
    _, prod = redis_pair
    seed_user(prod.client(), "prod:")
    seed_all_types(prod.client(), "prod:")
    monkeypatch.setenv("SOURCE_REDIS_URL", prod.url)
    monkeypatch.setenv("TARGET_REDIS_URL", prod.url)
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", Fernet.generate_key().decode())
    return prod


def test_a_restore_leaves_what_the_user_said_meanwhile(prod, tmp_path, capsys, monkeypatch):
    assert main(["memory", "snapshot", "production", "--out", str(tmp_path / "before"), "--json"]) == 0
    path = json.loads(capsys.readouterr().out)["path"]
    client = prod.client()
    client.delete(f"prod:memory:{USER}")
    client.rpush(f"prod:memory:{USER}", "the release overwrote this")
    client.rpush(HISTORY, "damaged")
    with bot_writing(prod.url, monkeypatch) as bot:
        code = main(
            ["memory", "restore", path, "--to", "production", "--out", str(tmp_path / "r"), "--apply", "--json"]
        )
    said = bot.said
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["left_alone_changed"] == [HISTORY.decode()]  # named, not overwritten
    everything_said_is_there(client, said)
    assert client.lrange(f"prod:memory:{USER}", 0, -1) == [b"likes tea", b"sister Mia"]  # the rest restored


def test_a_replacing_copy_leaves_what_the_user_said_meanwhile(memory_envs, tmp_path, monkeypatch):
    _, prod = memory_envs
    prod.client().rpush(HISTORY, "already on production")
    with bot_writing(prod.url, monkeypatch) as bot:
        outcome = copy_user(context(), request(tmp_path, policy="replace"))
    assert outcome.changed == [HISTORY]
    everything_said_is_there(prod.client(), bot.said)
    assert prod.client().lrange(f"prod:memory:{USER}", 0, -1) == [b"likes tea", b"sister Mia"]


def test_an_undo_never_deletes_a_key_the_user_wrote_to_since_the_copy(memory_envs, tmp_path, monkeypatch, capsys):
    _, prod = memory_envs
    outcome = copy_user(context(), request(tmp_path))  # creates prod's history (it was absent)
    assert prod.client().exists(HISTORY)
    bot = Bot(prod.url)
    bot.start()
    time.sleep(0.05)  # the bot talks on production after the copy, and during the undo
    code = main(["memory", "undo", str(outcome.backup), "--out", str(tmp_path / "u"), "--apply", "--json"])
    said = bot.stop()
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["left_alone_changed"] == [HISTORY.decode()]
    everything_said_is_there(prod.client(), said)
    assert not prod.client().exists(f"prod:memory:{USER}")  # what nobody touched since is undone


def test_the_cross_version_path_leaves_a_key_the_bot_created_between_plan_and_write(
    valkey_to_old_redis, monkeypatch, tmp_path
):
    _, old = valkey_to_old_redis
    with bot_writing(old.url, monkeypatch, throughout=False) as bot:  # one message, between plan and write
        outcome = copy_user(context(), request(tmp_path))
    assert outcome.fallback and outcome.changed == [HISTORY]
    assert old.client().lrange(HISTORY, 0, -1) == bot.said
    assert old.client().lrange(f"prod:memory:{USER}", 0, -1) == [b"likes tea", b"sister Mia"]
    assert not [k for k in old.client().scan_iter() if b"ci-tools-partial" in k]
    # the undo still has what it needs: the key was absent at the backup, and is left as the bot wrote it
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", "")
    assert main(["memory", "undo", str(outcome.backup), "--out", str(tmp_path / "u"), "--apply"]) == 0
    assert old.client().lrange(HISTORY, 0, -1) == bot.said
    assert not old.client().exists(f"prod:memory:{USER}")
