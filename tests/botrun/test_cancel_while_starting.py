"""A cancel that lands while a child is being started still stops the child.

CI once saw check-bot's build outlive a SIGTERM: the signal came while ``Popen`` was returning,
so the KeyboardInterrupt was raised before the ``try`` that stops the build's session, and the
build's ``sleep 300 &`` ran on. Here the signal comes at that moment every time: ``Popen`` is
wrapped so that it signals its own process once the child exists, under the real command's
handler (``ci_tools.__main__.interrupted_by_signals``).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_tools import botrun
from ci_tools.__main__ import interrupted_by_signals
from ci_tools.botrun.commands import BotCommands
from ci_tools.memory.throwaway import private_redis
from tests.botrun.test_owned_attacks import _gone, _kill_all
from tests.support import wait_until


@pytest.fixture
def cancelled_as_it_starts(monkeypatch) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The Popen of a bot's command or of a Redis server sends SIGTERM to this process as it
    returns (a build's venv is made first, and left alone); the children it made, killed
    at the end whatever the test found (a failure here must not leave a sleep 300 behind)."""
    real = subprocess.Popen
    started: list[subprocess.Popen[bytes]] = []

    def popen_then_cancel(argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        process = real(argv, **kwargs)  # type: ignore[call-overload]
        if "sleep 300" in argv[-1] or "redis" in Path(argv[0]).name:  # the child under test, not a venv's
            started.append(process)
            os.kill(os.getpid(), signal.SIGTERM)
        return process

    monkeypatch.setattr(subprocess, "Popen", popen_then_cancel)
    try:
        with interrupted_by_signals():
            yield started
    finally:
        monkeypatch.undo()
        _kill_all(started)


@pytest.mark.parametrize("stage", ["build", "start"])
def test_a_cancel_while_a_bots_command_starts_stops_its_whole_session(
    tmp_path: Path, subprocess_env: dict[str, str], cancelled_as_it_starts: list[subprocess.Popen[bytes]], stage: str
) -> None:
    tree = tmp_path / "bot"
    tree.mkdir()
    command = "sleep 300 & wait"
    if stage == "build":
        with pytest.raises(KeyboardInterrupt):
            botrun.build(tree, BotCommands(build=command, start="python -m bot"), subprocess_env)
    else:
        with pytest.raises(KeyboardInterrupt):
            botrun.start(tree, BotCommands(build="", start=command), subprocess_env, None)
    (process,) = cancelled_as_it_starts
    wait_until(lambda: _gone(process), "the command and its sleep to be gone", deadline=15)


def test_a_cancel_while_the_private_redis_starts_stops_it(
    cancelled_as_it_starts: list[subprocess.Popen[bytes]],
) -> None:
    with pytest.raises(KeyboardInterrupt), private_redis(os.environ):
        pytest.fail("the cancel was lost: the private Redis started and was handed on")
    (process,) = cancelled_as_it_starts
    assert process.poll() is not None, "the private Redis outlived the cancel"
