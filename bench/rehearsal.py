"""Benchmark: how long `ci-tools rehearse` takes, phase by phase, against 15 s.

The rehearsal runs twice in this process: with the bots as child processes (as Render runs
them, and as `ci-tools rehearse` does by default), then in threads (--threads). Printed: each
phase's seconds, the totals, and their ratio to the 15 s the README once promised.

    python bench/rehearsal.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.rehearsal import rehearse  # noqa: E402

TARGET = 15.0


def main() -> None:
    runs = {}
    for label, process in (("processes", True), ("threads", False)):
        started = time.perf_counter()
        phases = rehearse(ROOT, process=process, log=lambda line: None)
        runs[label] = (time.perf_counter() - started, phases)
        assert all(p.ok for p in phases), [(p.name, p.detail) for p in phases if not p.ok]
    names = [p.name for p in runs["processes"][1]]
    print(f"rehearsal benchmark: {len(names)} phases against the stand-ins")
    print(f"  {'phase':<70} {'processes':>9} {'threads':>8}")
    for index, name in enumerate(names):
        print(
            f"  {name[:70]:<70} {runs['processes'][1][index].seconds:>8.1f}s {runs['threads'][1][index].seconds:>7.1f}s"
        )
    for label, (total, _) in runs.items():
        print(f"  total with bots as {label:<9} {total:6.1f} s   ratio to {TARGET:.0f} s: {total / TARGET:.2f}")


if __name__ == "__main__":
    main()
