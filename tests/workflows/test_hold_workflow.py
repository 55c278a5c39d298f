"""hold.yml and production.yml in act: the owner holds releases from their phone, a push to main
then changes nothing on Render and says how to lift the hold; once lifted, the release goes out."""

from __future__ import annotations

import pytest

from ci_tools.pipeline.hold import HELD_VARIABLE
from sandbox.github import FakeGitHub
from tests.workflows.act import SET_UP
from tests.workflows.scenarios import dispatch, health, production_secrets, push


@pytest.fixture
def github():
    with FakeGitHub() as server:
        yield server


def hold(act, github, **inputs: str):
    """hold.yml dispatched on main, its admin token the GitHub stand-in's (production's secret)."""
    return act.run(
        "hold.yml",
        "workflow_dispatch",
        secrets={"GITHUB_ADMIN_TOKEN": github.token},
        payload=dispatch("main", **inputs),
        env={"GITHUB_API_URL": github.url},
    )


def test_a_held_release_changes_nothing_and_after_hold_off_it_goes_out(world, act, github):
    run = hold(act, github, hold="on", reason="the bot forgets names")
    assert run.ok, run.tail()
    assert HELD_VARIABLE in github.variables and "the bot forgets names" in github.variables[HELD_VARIABLE]

    sha = world.commit("main", "a release while the owner holds them")
    run = act.run(
        "production.yml",
        "push",
        secrets=production_secrets(world),
        payload=push("main", sha),
        variables={**SET_UP, **github.variables},  # what the workflow reads as vars.NAME
    )
    assert not run.ok
    assert "releases held since " in run.log
    assert "(the bot forgets names): dispatch hold.yml with hold off" in run.log
    assert "Traceback" not in run.log
    assert not world.services["production"].deploys  # no deploy on Render
    assert not (act.artifacts / str(run.run_id)).exists()  # no snapshot kept
    assert "Snapshot production's memory" not in run.log  # nor taken

    run = hold(act, github, hold="off", reason="")
    assert run.ok, run.tail()
    assert HELD_VARIABLE not in github.variables and "hold lifted" in run.log

    run = act.run(
        "production.yml",
        "push",
        secrets=production_secrets(world),
        payload=push("main", sha),
        variables={**SET_UP, **github.variables},
    )
    assert run.ok, run.tail()
    assert health(world, "production")["commit"] == sha
