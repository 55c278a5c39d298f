"""Every bench is run by .ci/run at its smallest size, so a bench that breaks fails CI.

A bench is a script: a ``bench/*.py`` with a ``__main__`` block. .ci/run's loop picks them by
name (``bench/[!_]*.py``: helpers start with ``_``); these tests hold the two to each other and
each bench to the one smoke convention (bench/_smoke.py), so a bench added without ``--smoke``,
or named like a helper, fails here before it fails (or is skipped by) CI.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

# The loop in .ci/run: its glob, and a body that runs each match with --smoke (set -e: one that fails, fails CI).
LOOP = re.compile(r'^for bench in (bench/\S+); do\n(?:(?!done\n).*\n)*?\s*run python "\$bench" --smoke\n', re.M)
SCRIPTS = sorted(path for path in (ROOT / "bench").glob("*.py") if 'if __name__ == "__main__":' in path.read_text())


def looped() -> list[Path]:
    """The files .ci/run's loop runs with --smoke."""
    found = LOOP.search((ROOT / ".ci/run").read_text())
    assert found, '.ci/run has no `for bench in bench/...; do ... run python "$bench" --smoke` loop'
    return sorted(ROOT.glob(found.group(1)))


def test_ci_runs_every_bench_and_nothing_else():
    assert len(SCRIPTS) >= 10, SCRIPTS  # the rule still finds the benches
    assert looped() == SCRIPTS, "a bench's name starts with '_', or a helper's does not (bench/_smoke.py)"


@pytest.mark.parametrize("bench", SCRIPTS, ids=lambda path: path.stem)
def test_every_bench_has_the_smoke_mode(bench: Path):
    done = subprocess.run([sys.executable, str(bench), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--smoke" in done.stdout and "the smallest size" in done.stdout, f"{bench.name}: no --smoke (_smoke.py)"
