"""Attacks on production.yml's new order (issue 43): the replay's own snapshot, the quiet wait, the
restore point, the hold read again. What the steps promise is read from the workflow itself."""

from __future__ import annotations

from tests.repo.test_workflow_files import ci_tools_calls, load, steps_of
from tests.support import ROOT

PRODUCTION = ROOT / ".github" / "workflows" / "production.yml"


def calls() -> list[tuple[dict, list[str]]]:
    return [(step, argv) for step in steps_of(load(PRODUCTION)) for argv in ci_tools_calls(step.get("run", ""))]


def test_the_key_value_is_closed_across_the_quiet_wait_and_every_open_is_closed_on_cancel():
    """Held: a cancel mid-wait (the wait is minutes long) must not leave the runner admitted, so no
    open spans the wait; each open is followed by a close that runs always() under the same condition."""
    found = calls()
    admitted = False
    for index, (step, argv) in enumerate(found):
        if argv[:2] == ["keyvalue", "open"]:
            admitted = True
            close = next((s, a) for s, a in found[index:] if a[:2] == ["keyvalue", "close"])
            condition = step.get("if", "")
            assert close[0]["if"] == f"always() && {condition}", close[0]["name"]
            assert close[1][close[1].index("--state") + 1] == argv[argv.index("--state") + 1]
        elif argv[:2] == ["keyvalue", "close"]:
            admitted = False
        elif argv[0] in ("quiet", "release"):
            assert not admitted, f"the Key Value is open during `ci-tools {argv[0]}`"


def test_a_dispatch_that_skips_the_replay_reads_no_memory_for_it():
    """skip_replay took the replay's snapshot anyway: the allow list opened and every key of
    production's memory read onto the runner for a replay that would not run, then removed."""
    for step, argv in calls():
        if argv[:2] == ["memory", "snapshot"] and argv[argv.index("--out") + 1] == "memory-replay":
            assert "env.REPLAY == 'run'" in step["if"], step["name"]
        if argv[:2] == ["keyvalue", "open"] and "replay" in step["name"]:
            assert "env.REPLAY == 'run'" in step["if"], step["name"]


def test_the_restore_point_is_taken_on_every_path_that_deploys():
    """Held: hotfix or not, replay or not, the memory-before snapshot runs whenever SNAPSHOT is take
    (it depends on neither the replay's snapshot nor the wait), and a failed one stops the deploy:
    no step between it and the deploy runs always()."""
    steps = steps_of(load(PRODUCTION))
    names = [s.get("name", "") for s in steps]
    snapshot = next(i for i, s in enumerate(steps) if s.get("id") == "snapshot")
    deploy = next(i for i, s in enumerate(steps) if s.get("id") == "release")
    assert steps[snapshot]["if"] == "env.SNAPSHOT == 'take'"
    assert "always()" not in str(steps[deploy].get("if", "")) and "if" not in steps[deploy]
    between = steps[snapshot + 1 : deploy]
    assert all("always()" not in str(s.get("if", "")) or "keyvalue close" in s.get("run", "") for s in between), names[
        snapshot + 1 : deploy
    ]
    assert steps[deploy]["env"]["SNAPSHOT_OUTCOME"] == "${{ steps.snapshot.outcome }}"


def test_the_admin_token_is_in_no_job_or_workflow_environment():
    """Held: GITHUB_ADMIN_TOKEN reaches the hold's re-read alone, not through a job's or the file's env."""
    document = load(PRODUCTION)
    assert "GITHUB_ADMIN_TOKEN" not in str(document.get("env", {}))
    for job in document["jobs"].values():
        assert "GITHUB_ADMIN_TOKEN" not in str(job.get("env", {}))
    holders = [s["name"] for s in steps_of(document) if "GITHUB_ADMIN_TOKEN" in str(s)]
    assert len(holders) == 1 and "held releases during the wait" in holders[0]
