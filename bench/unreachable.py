"""Benchmark: how long each command takes to its verdict when its services are down.

Every outside service (Telegram, Render, GitHub, the bots' URLs, Redis) points at a port that
refuses connections, then at one that accepts and never answers. Default settings: no
CI_TOOLS_TIMEOUT, each command's own default deadlines. Commands run --workers at a time as
child processes (they wait on sockets, not on the CPU), each capped at --cap seconds.
Targets (issue 23): ≤ 15 s refused, ≤ 30 s never answering.

    python bench/unreachable.py [--cap 120] [--commands status,history] [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _smoke  # noqa: E402
from sandbox.ports import free_port, silent_server  # noqa: E402
from sandbox.world import git  # noqa: E402
from tests.cli.test_unreachable import COMMANDS, unreachable_world  # noqa: E402

SHORTENED = {"--timeout", "--deadline"}  # the test's short settings: dropped, defaults apply


def environment(dead: str, tmp: Path) -> dict[str, str]:
    """The test's unreachable world, with this process's environment less its CI settings."""
    variables, repo = unreachable_world(dead, tmp)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CI_TOOLS_"))}
    return {**environ, **variables, "SHA": git(repo, "rev-parse", "HEAD"), "REPO": str(repo)}


def argv(name: str, sha: str, tmp: Path) -> list[str]:
    words, out, skip = COMMANDS[name], [], False
    for word in words:
        if skip:
            skip = False
            continue
        if word in SHORTENED:
            skip = True
            continue
        out.append(word.format(sha=sha, tmp=tmp))
    return out


def timed(name: str, environ: dict[str, str], tmp: Path, cap: float) -> tuple[str, float | None, int | None]:
    command = [sys.executable, "-m", "ci_tools", *argv(name, environ["SHA"], tmp)]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=environ["REPO"],
            env=environ,
            capture_output=True,
            text=True,
            timeout=cap,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return name, None, None
    return name, time.monotonic() - started, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cap", type=float, default=120)
    parser.add_argument("--workers", type=int, default=2, help="commands at a time (more skews the times)")
    parser.add_argument("--commands", default=",".join(sorted(COMMANDS)), help="which of the test's commands")
    args = _smoke.parse(parser, commands="status")
    names = args.commands.split(",")
    if unknown := set(names) - set(COMMANDS):
        parser.error(f"--commands: {', '.join(sorted(unknown))} is not one of {', '.join(sorted(COMMANDS))}")
    hung = contextlib.ExitStack()
    swallowing = hung.enter_context(silent_server())
    modes = {"refused": (f"127.0.0.1:{free_port()}", 15), "never answers": (swallowing, 30)}
    results: dict[str, dict[str, tuple[float | None, int | None]]] = {}
    with (
        tempfile.TemporaryDirectory() as root,
        ThreadPoolExecutor(max_workers=args.workers) as pool,
    ):
        jobs = []
        for mode, (dead, _) in modes.items():
            tmp = Path(root) / re.sub(r"\W", "-", mode)
            tmp.mkdir()
            environ = environment(dead, tmp)
            jobs += [(mode, pool.submit(timed, name, environ, tmp, args.cap)) for name in sorted(names)]
        for mode, job in jobs:
            name, seconds, code = job.result()
            results.setdefault(name, {})[mode] = (seconds, code)
    hung.close()
    print(f"unreachable benchmark: default settings, each command capped at {args.cap:.0f} s")
    print(f"  {'command':<18} {'refused':>12} {'never answers':>15}")
    over = 0
    for name, by_mode in sorted(results.items()):
        cells = []
        for mode, (_, limit) in modes.items():
            seconds, code = by_mode[mode]
            if seconds is None:
                cells.append(f">{args.cap:.0f} s")
                over += 1
                continue
            flag = "" if seconds <= limit else " ✗"
            over += bool(flag)
            cells.append(f"{seconds:5.1f} s e{code}{flag}")
        print(f"  {name:<18} {cells[0]:>12} {cells[1]:>15}")
    print(f"  {over} of {2 * len(results)} runs over their limit (15 s refused, 30 s never answering)")


if __name__ == "__main__":
    main()
