"""Two runs holding one Key Value allow list open at once: each closes only its own entry."""

from __future__ import annotations

import os
import threading
from datetime import timedelta

import pytest

from ci_tools.__main__ import main
from ci_tools.context import build
from ci_tools.pipeline.keyvalue import close, open_for, sweep

OWNER = {"cidrBlock": "198.51.100.1/32", "description": "the owner's laptop"}


@pytest.fixture(autouse=True)
def settle_fast(monkeypatch):
    """The stand-in answers in milliseconds; Render's read-then-PATCH takes longer."""
    monkeypatch.setattr("ci_tools.pipeline.keyvalue.SETTLE", 0.3)


def keyvalue(world, run_id: int, *args: str) -> int:
    """``ci-tools keyvalue …`` as run ``run_id`` would run it (main() reads os.environ)."""
    saved = dict(os.environ)
    os.environ.update({**world.secrets("production"), "GITHUB_RUN_ID": str(run_id)})
    try:
        return main(["keyvalue", *args])
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_the_first_run_to_close_leaves_the_second_runs_entry(world, tmp_path):
    kv = world.key_values["production"]
    kv.ip_allow_list = [dict(OWNER)]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert keyvalue(world, 101, "open", "--env", "production", "--ip", "203.0.113.1", "--state", str(a)) == 0
    assert keyvalue(world, 102, "open", "--env", "production", "--ip", "203.0.113.2", "--state", str(b)) == 0
    assert {e["cidrBlock"] for e in kv.ip_allow_list} == {"198.51.100.1/32", "203.0.113.1/32", "203.0.113.2/32"}
    assert keyvalue(world, 101, "close", "--state", str(a)) == 0
    assert {e["cidrBlock"] for e in kv.ip_allow_list} == {"198.51.100.1/32", "203.0.113.2/32"}  # b still admitted
    assert keyvalue(world, 101, "close", "--state", str(a)) == 0  # repeating it is safe
    assert keyvalue(world, 102, "close", "--state", str(b)) == 0
    assert kv.ip_allow_list == [OWNER]  # neither run admitted, the owner's entry untouched


def test_runs_opening_and_closing_at_once_converge_to_the_list_without_them(world, tmp_path):
    kv = world.key_values["production"]
    kv.ip_allow_list = [dict(OWNER)]
    errors: list[BaseException] = []

    def one_run(n: int) -> None:
        try:
            ctx = build({**world.secrets("production"), "GITHUB_RUN_ID": str(200 + n)})
            state = tmp_path / f"{n}.json"
            open_for(ctx, ctx.secrets["RENDER_API_KEY"], ["production"], f"203.0.113.{n}", state, f"ci-tools run {n}")
            assert any(e["cidrBlock"] == f"203.0.113.{n}/32" for e in kv.ip_allow_list)
            close(ctx, ctx.secrets["RENDER_API_KEY"], state)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one_run, args=(n,)) for n in range(1, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert kv.ip_allow_list == [OWNER]


def test_sweep_removes_only_our_stale_entries_in_staging_too(world):
    for env in ("production", "staging"):
        world.key_values[env].ip_allow_list = [
            dict(OWNER),
            {
                "cidrBlock": "203.0.113.9/32",
                "description": "ci-tools run 77 at 2026-12-01T00:00:00Z (removed when it ends)",
            },
        ]
    ctx = build(world.secrets("production"))
    removed = sweep(ctx, ctx.secrets["RENDER_API_KEY"], ["production", "staging"], timedelta(minutes=60))
    assert removed == ["mindmate-prod-redis 203.0.113.9/32", "mindmate-dev-redis 203.0.113.9/32"]
    for env in ("production", "staging"):
        assert world.key_values[env].ip_allow_list == [OWNER]
