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
