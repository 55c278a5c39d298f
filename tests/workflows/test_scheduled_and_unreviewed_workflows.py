"""No production power in code no reviewer saw, in act: the scheduler (which runs develop's code)
holds nothing but GITHUB_TOKEN and dispatches main's backup, which production-scheduled admits and a
dispatch on develop is refused by; staging with its deploy hook alone deploys develop and says in one
line what it cannot do; production.yml with CI_TOOLS_GITHUB_MODE unset deploys nothing."""

from __future__ import annotations

import pytest

from sandbox.github import FakeGitHub
from tests.workflows.scenarios import dispatch, environment_secrets, health, production_secrets, push


@pytest.fixture
def github():
    with FakeGitHub() as server:
        yield server


def test_the_scheduler_dispatches_mains_backup_and_that_run_is_admitted(world, act, github):
    run = act.run(
        "scheduler.yml",
        "schedule",
        secrets={"GITHUB_TOKEN": github.token},  # the only power it has: no environment, no secret
        payload={"schedule": "17 3 * * *", "ref": "refs/heads/develop"},
        env={"GITHUB_API_URL": github.url},
    )
    assert run.ok, run.tail()
    assert github.dispatches == [{"workflow": "backup.yml", "ref": "main", "inputs": {}}]
    assert "dispatched backup.yml on main" in run.log
    [started] = github.dispatches  # the run GitHub starts from that dispatch, with main's file
    backup = act.run(
        started["workflow"],
        "workflow_dispatch",
        secrets=production_secrets(world),
        payload=dispatch(started["ref"]),
    )
    assert backup.ok, backup.tail()
    assert "GitHub's environment gate" not in backup.log and "Keep the encrypted snapshot" in backup.log


@pytest.mark.parametrize("workflow", ["backup.yml", "watch.yml"])
def test_a_scheduled_production_workflow_dispatched_on_develop_is_refused(world, act, workflow):
    """develop's own file could do anything with production's secrets: GitHub refuses the job."""
    run = act.run(workflow, "workflow_dispatch", secrets=production_secrets(world), payload=dispatch("develop"))
    assert not run.ok
    assert 'Branch "develop" is not allowed to deploy to production-scheduled' in run.log


def hook_only(world) -> dict[str, str]:
    """Staging as init sets it up without a scoped key: its deploy hook, no Render API key."""
    secrets = environment_secrets(world, "staging")
    del secrets["RENDER_API_KEY"], secrets["RENDER_SERVICE_ID"]
    return secrets


def test_staging_with_its_deploy_hook_alone_releases_develop(world, act):
    sha = world.commit("develop", "a change for staging")
    run = act.run("staging.yml", "push", secrets=hook_only(world), payload=push("develop", sha))
    assert run.ok, run.tail()
    assert health(world, "staging")["commit"] == sha  # the hook deployed develop's head; /healthz says it
    assert "staging deploys by its hook alone" in run.log  # what it cannot do, said once


def test_staging_with_its_deploy_hook_alone_says_a_feature_branch_needs_a_scoped_key(world, act):
    feature = world.commit("feature/try-me", "a change to try on staging")
    world.commit("develop", "develop moves on")
    deploys = len(world.services["staging"].deploys)
    run = act.run(
        "staging.yml",
        "workflow_dispatch",
        secrets=hook_only(world),
        payload=dispatch("develop", ref="feature/try-me"),
    )
    assert not run.ok
    assert f"{feature[:12]} is not on develop, and the deploy hook can only deploy develop's head" in run.log
    assert "Traceback" not in run.log
    assert len(world.services["staging"].deploys) == deploys


def test_production_with_the_mode_unset_deploys_nothing(world, act):
    """github setup never ran (or its variable was deleted): nothing says a ruleset guards main."""
    sha = world.commit("main", "release")
    run = act.run("production.yml", "push", secrets=production_secrets(world), payload=push("main", sha), variables={})
    assert not run.ok
    assert "the repository variable CI_TOOLS_GITHUB_MODE is not set" in run.log
    assert not world.services["production"].deploys
