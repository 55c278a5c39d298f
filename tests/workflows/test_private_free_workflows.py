"""On a private repository on GitHub Free: no environments (every secret is a repository secret
``<ENV>_<NAME>``) and no rulesets (production.yml holds the flow itself before it deploys)."""

from __future__ import annotations

import pytest

from sandbox.github import FakeGitHub
from tests.workflows.scenarios import assert_no_secret, health, production_secrets, push

MODE = {"CI_TOOLS_GITHUB_MODE": "repository-secrets no-rulesets"}  # what github setup records there


@pytest.fixture
def github():
    with FakeGitHub(private=True, plan="free") as server:
        yield server


def repository_secrets(world) -> dict[str, str]:
    """Only PRODUCTION_<NAME>: what setup stores where the plan has no environments."""
    return {f"PRODUCTION_{name}": value for name, value in production_secrets(world).items()}


def release(world, act, github, sha):
    return act.run(
        "production.yml",
        "push",
        secrets={**repository_secrets(world), "GITHUB_TOKEN": github.token},
        payload=push("main", sha),
        env={"GITHUB_API_URL": github.url},
        variables=MODE,
    )


def test_a_release_through_a_merged_pr_goes_live_on_repository_secrets_alone(world, act, github):
    sha = world.commit("main", "release: merged from develop")
    github.merged("develop", "main", sha)
    run = release(world, act, github, sha)
    assert run.ok, run.tail()
    assert "arrived on main through a merged PR the flow admits" in run.log
    assert health(world, "production")["commit"] == sha  # deployed and probed with PRODUCTION_* secrets
    assert_no_secret(run, world)


def test_a_push_to_main_that_came_through_no_pr_is_refused_before_any_deploy(world, act, github):
    service = world.services["production"]
    deploys = len(service.deploys)
    sha = world.commit("main", "pushed straight to main")
    run = release(world, act, github, sha)
    assert not run.ok
    assert f"{sha[:7]} reached main without a merged PR from develop, hotfix/*" in run.log
    assert len(service.deploys) == deploys  # nothing was deployed


def test_a_pr_from_a_feature_branch_straight_into_main_is_refused(world, act, github):
    sha = world.commit("main", "merged from a feature branch")
    github.merged("feature/shortcut", "main", sha)
    run = release(world, act, github, sha)
    assert not run.ok and "its PRs: #1 from feature/shortcut" in run.log
