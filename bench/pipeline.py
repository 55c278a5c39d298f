"""Benchmark: the pipeline's own overhead per workflow job, under the workflow engine.

A job of ours spends its first seconds on itself: setting up ci-tools, then starting
it. This runs one job in act (as tests/workflows does: host mode, offline stand-ins)
that sets up ci-tools the way the workflows do (setup-uv, then ``uv pip install -r
pylock.toml`` into a venv of its own, from the warm cache) and runs ``ci-tools --help``,
and the same job the way they once did (a venv, then ``pip install .[tools]``), and prints
the seconds of each, their ratio, and the import time of ``ci-tools`` alone. Targets:
≤ 3 s per job, import ≤ 0.3 s. (Before the pin, the set-up was ``uv sync --locked`` of the
repository's own project: 0.17 s of set-up here; the pinned venv takes 0.33-0.42 s.)
The old path installs from the package index; --skip-baseline (and --smoke, so CI does not
depend on the index) leaves it out, and the ratio with it.

    python bench/pipeline.py [--repeat 3] [--skip-baseline] [--smoke]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _smoke  # noqa: E402
from sandbox.tools import find_tool  # noqa: E402
from tests.workflows.act import STANDINS  # noqa: E402

JOB = """name: overhead
on: workflow_dispatch
permissions: {{}}
jobs:
  job:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1
        with:
          persist-credentials: false
{setup}
      - name: start ci-tools
        run: ci-tools --help > /dev/null
"""
# The pins the workflows use (tests/workflows/act.py maps them to the offline stand-ins).
CHECKOUT_SHA = "3d3c42e5aac5ba805825da76410c181273ba90b1"
SETUP_UV_SHA = "20cfd1bf945f4377ade1205e4dbc17946fc9a30d"
UV = "      - uses: ./.github/actions/setup-ci-tools"
PIP = """      - name: pip install (the old path)
        run: |
          python3 -m venv .venv && .venv/bin/pip install --quiet --disable-pip-version-check '.[tools]'
          echo "$PWD/.venv/bin" >> "$GITHUB_PATH\""""


def run_job(repo: Path, setup: str, scratch: Path) -> float:
    """Seconds the job's own steps took (act's per-step timings, checkout excluded)."""
    (repo / ".github/workflows/overhead.yml").write_text(JOB.format(setup=setup))
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@b",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "bench",
        ],
        cwd=repo,
        check=True,
    )
    bin_dir = scratch / "bin"
    bin_dir.mkdir(exist_ok=True)
    if not (bin_dir / "uv").exists():
        (bin_dir / "uv").symlink_to(find_tool("uv"))
    env_file = scratch / "env"
    env_file.write_text(f"STANDIN_REMOTE={repo}\nSTANDIN_BIN={bin_dir}\nSTANDIN_PYTHON={sys._base_executable}\n")
    flags = [
        f
        for name, path in STANDINS.items()
        for f in (
            "--local-repository",
            f"{name}@{CHECKOUT_SHA if name == 'actions/checkout' else SETUP_UV_SHA}={path}",
        )
        if name in ("actions/checkout", "astral-sh/setup-uv")
    ]
    done = subprocess.run(
        [
            find_tool("act"),
            "workflow_dispatch",
            "-W",
            ".github/workflows/overhead.yml",
            "-P",
            "ubuntu-24.04=-self-hosted",
            "--no-skip-checkout",
            "--action-offline-mode",
            "--action-cache-path",
            str(scratch / f"act-{time.time_ns()}"),
            "--env-file",
            str(env_file),
            *flags,
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the job failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    timed = re.findall(r"Success - Main (.+?) \[([0-9.]+)(m?s)\]", done.stdout)
    return sum(
        float(t) / (1000 if unit == "ms" else 1)
        for name, t, unit in timed
        if "checkout" not in name and not name.startswith(("set -euo", "./.github"))
    )


def import_time() -> float:
    return min(
        float(
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import time, runpy; t=time.perf_counter(); import ci_tools.__main__; print(time.perf_counter()-t)",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(5)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-baseline", action="store_true", help="leave out the pip path (it needs the index)")
    args = _smoke.parse(parser, repeat=1, skip_baseline=True)
    pip = float("nan")
    with tempfile.TemporaryDirectory() as root:
        repo = Path(root) / "repo"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
        uv = min(run_job(repo, UV, Path(root)) for _ in range(args.repeat))
        if not args.skip_baseline:
            try:
                pip = min(run_job(repo, PIP, Path(root)) for _ in range(args.repeat))
            except SystemExit as failed:
                print(f"  (the pip path could not run here: {str(failed)[:200]})")
    print("pipeline overhead per job, under act (set-up + `ci-tools --help`)")
    print(f"  pinned venv from pylock (now) {uv:6.2f} s   (target ≤ 3 s)")
    if not args.skip_baseline:
        print(f"  venv + pip install (before)   {pip:6.2f} s")
        print(f"  ratio now / before            {uv / pip:6.2f}")
    print(f"  import ci_tools.__main__      {import_time():6.3f} s   (target ≤ 0.3 s)")


if __name__ == "__main__":
    main()
