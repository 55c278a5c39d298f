"""Two runs overlapping on production's Key Value allow list, in act.

A release's snapshot and the nightly backup may hold the list open at the same time. Here two
runs of one small workflow (open, wait for the test, snapshot, close) overlap on purpose: the
first closes while the second still holds the list open; the second must keep its access
until its own close, and after both closes neither runner is admitted.
"""

from __future__ import annotations

import threading
import time

from sandbox.world import git
from tests.workflows.act import Run
from tests.workflows.scenarios import assert_no_secret, dispatch, production_secrets

HOLD = """\
name: hold-allow-list
on: workflow_dispatch
permissions: {}
jobs:
  hold:
    runs-on: ubuntu-24.04
    environment:
      name: production
    permissions:
      contents: read
    steps:
      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1
        with:
          persist-credentials: false
      - uses: ./.github/actions/setup-ci-tools
      - name: Admit this runner
        env:
          RENDER_API_KEY: ${{ secrets.RENDER_API_KEY }}
        run: ci-tools keyvalue open --env production --state kv.json
      - name: Hold the list open until the test says so
        run: |
          touch "$HOLD_UNTIL.opened"
          while [ ! -e "$HOLD_UNTIL" ]; do sleep 0.1; done
      - name: Snapshot (needs the access)
        env:
          SOURCE_REDIS_URL: ${{ secrets.REDIS_URL }}
          MEMORY_SNAPSHOT_KEY: ${{ secrets.MEMORY_SNAPSHOT_KEY }}
        run: ci-tools memory snapshot production --out snapshot
      - name: Close this run's entry
        if: always()
        env:
          RENDER_API_KEY: ${{ secrets.RENDER_API_KEY }}
        run: ci-tools keyvalue close --state kv.json
"""


def wait_for(path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.1)


def test_the_first_run_to_close_leaves_the_second_admitted_and_both_closes_leave_none(world, act, tmp_path):
    (world.repo / ".github/workflows/hold-allow-list.yml").write_text(HOLD)
    git(world.repo, "add", "-A")
    git(world.repo, "commit", "-q", "-m", "a workflow that holds the allow list open")
    kv = world.key_values["production"]
    client = world.redis["production"].client()
    client.set("prod:meta:env", "production")
    client.rpush("prod:memory:7", "a fact")
    runs: dict[str, Run] = {}
    signals = {name: tmp_path / f"go-{name}" for name in ("first", "second")}

    def run(name: str) -> None:
        runs[name] = act.run(
            "hold-allow-list.yml",
            "workflow_dispatch",
            secrets=production_secrets(world),
            payload=dispatch("main"),
            env={"HOLD_UNTIL": str(signals[name])},
        )

    threads = {name: threading.Thread(target=run, args=(name,)) for name in signals}
    threads["first"].start()
    wait_for(signals["first"].with_name("go-first.opened"))
    threads["second"].start()
    wait_for(signals["second"].with_name("go-second.opened"))
    assert len(kv.ip_allow_list) == 2  # one entry a run, each naming its run
    signals["first"].touch()  # the first snapshots and closes while the second holds the list
    threads["first"].join()
    assert runs["first"].ok, runs["first"].tail()
    assert len(kv.ip_allow_list) == 1 and "run 1002" in kv.ip_allow_list[0]["description"]
    signals["second"].touch()  # the second still has its access: its snapshot needs it
    threads["second"].join()
    assert runs["second"].ok, runs["second"].tail()
    assert "snapshot" in runs["second"].log and kv.ip_allow_list == []
    for finished in runs.values():
        assert_no_secret(finished, world)
