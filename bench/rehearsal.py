"""Benchmark: how long `ci-tools rehearse` takes, phase by phase, against 15 s.

The rehearsal runs twice in this process: with the bots as child processes (as Render runs
them, and as `ci-tools rehearse` does by default), then in threads (--threads). Printed: each
phase's seconds, the totals, and their ratio to the 15 s the README once promised. The
rehearsal has no smaller size: --smoke runs it once, with the bots in threads (.ci/run
already rehearses with processes, from its clean clone).

    python bench/rehearsal.py [--modes processes,threads] [--smoke]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _smoke  # noqa: E402
from sandbox.rehearsal import rehearse  # noqa: E402

TARGET = 15.0
MODES = {"processes": True, "threads": False}  # label: bots as processes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="processes,threads", help="how the bots run, in turn")
    args = _smoke.parse(parser, modes="threads")
    labels = args.modes.split(",")
    if unknown := set(labels) - set(MODES):
        parser.error(f"--modes: {', '.join(sorted(unknown))} is not one of {', '.join(MODES)}")
    runs = {}
    for label in labels:
        process = MODES[label]
        started = time.perf_counter()
        phases = rehearse(ROOT, process=process, log=lambda line: None)
        runs[label] = (time.perf_counter() - started, phases)
        assert all(p.ok for p in phases), [(p.name, p.detail) for p in phases if not p.ok]
    names = [p.name for p in runs[labels[0]][1]]
    print(f"rehearsal benchmark: {len(names)} phases against the stand-ins")
    print(f"  {'phase':<70}" + "".join(f" {label:>9}" for label in labels))
    for index, name in enumerate(names):
        print(f"  {name[:70]:<70}" + "".join(f" {runs[label][1][index].seconds:>8.1f}s" for label in labels))
    for label, (total, _) in runs.items():
        print(f"  total with bots as {label:<9} {total:6.1f} s   ratio to {TARGET:.0f} s: {total / TARGET:.2f}")


if __name__ == "__main__":
    main()
