"""Where the hold is honoured: production.yml checks it before anything else; nothing else does."""

from __future__ import annotations

from ci_tools.pipeline.hold import HELD_VARIABLE
from tests.repo.test_workflow_files import WORKFLOWS, ci_tools_calls, load, steps_of
from tests.support import ROOT

WORKFLOW_DIR = ROOT / ".github" / "workflows"


def test_production_checks_the_hold_before_any_other_ci_tools_step():
    calls = [
        (step, argv)
        for step in steps_of(load(WORKFLOW_DIR / "production.yml"))
        for argv in ci_tools_calls(step.get("run", ""))
    ]
    step, argv = calls[0]
    assert argv[:2] == ["hold", "--check"] and "--held" in argv
    assert step["env"]["HELD"] == f"${{{{ vars.{HELD_VARIABLE} }}}}"
    assert "if" not in step  # never skipped


def test_a_rollback_is_never_held_and_only_hold_yml_writes_the_hold():
    for path in WORKFLOWS:
        for step in steps_of(load(path)):
            for argv in ci_tools_calls(step.get("run", "")):
                if argv[0] != "hold":
                    continue
                if "--check" in argv:
                    assert path.name == "production.yml", f"{path.name} checks the hold: only releases are held"
                else:
                    assert path.name == "hold.yml", f"{path.name} changes the hold"
    (job,) = load(WORKFLOW_DIR / "hold.yml")["jobs"].values()
    assert job["environment"] == "production"  # GITHUB_ADMIN_TOKEN is production's: only main reaches it


def test_production_reads_the_hold_again_right_before_the_deploy_and_only_that_step_has_the_admin_token():
    """vars.* are fixed when the job starts and a release may wait 15 minutes for a quiet moment:
    the hold is read again through the API as the last ci-tools step before the deploy."""
    steps = steps_of(load(WORKFLOW_DIR / "production.yml"))
    calls = [(step, argv) for step in steps for argv in ci_tools_calls(step.get("run", ""))]
    (recheck, argv), (_, release) = calls[-2], calls[-1]
    assert release[0] == "release" and argv[:2] == ["hold", "--check"] and "--again" in argv and "--held" not in argv
    assert "if" not in recheck  # never skipped
    assert "GITHUB_ADMIN_TOKEN" in recheck["env"]["GITHUB_TOKEN"]
    quiet = next(i for i, (_, a) in enumerate(calls) if a[0] == "quiet")
    assert quiet < calls.index((recheck, argv))
    holders = [s.get("name") for s in steps if "GITHUB_ADMIN_TOKEN" in str(s.get("env", {}))]
    assert holders == [recheck["name"]]


def test_the_restore_point_is_taken_after_the_quiet_wait_and_the_replay_uses_a_snapshot_of_its_own():
    """What the daily user says while the release waits must be in memory-before-<sha>, or
    restoring it after a rollback would undo it."""
    calls = [
        argv for step in steps_of(load(WORKFLOW_DIR / "production.yml")) for argv in ci_tools_calls(step.get("run", ""))
    ]
    snapshots = [i for i, argv in enumerate(calls) if argv[:2] == ["memory", "snapshot"]]
    quiet = next(i for i, argv in enumerate(calls) if argv[0] == "quiet")
    replay = next(i for i, argv in enumerate(calls) if argv[:2] == ["replay", "production"])
    kept = [i for i in snapshots if calls[i][calls[i].index("--out") + 1] == "memory-before"]
    assert kept and all(i > quiet for i in kept)
    source = calls[replay][calls[replay].index("--snapshot") + 1]
    assert any(calls[i][calls[i].index("--out") + 1] == source for i in snapshots if i < replay)
