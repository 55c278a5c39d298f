"""branch-flow.yml and back-merge.yml in act, on pull_request and push events."""

from __future__ import annotations

import pytest

from sandbox.github import FakeGitHub
from tests.workflows.scenarios import REPOSITORY, push


def pull_request(head: str, base: str, *, action: str = "opened", head_repo: str = REPOSITORY) -> dict:
    event = {
        "action": action,
        "number": 5,
        "pull_request": {
            "number": 5,
            "head": {"ref": head, "repo": {"full_name": head_repo}},
            "base": {"ref": base, "repo": {"full_name": REPOSITORY}},
        },
        "repository": {"full_name": REPOSITORY, "default_branch": "main"},
    }
    if action == "edited":  # a retargeted PR: GitHub sends only `edited`, with the old base
        event["changes"] = {"base": {"ref": {"from": "develop"}}}
    return event


@pytest.mark.parametrize(
    ("head", "base", "head_repo", "action", "allowed", "says"),
    [
        ("feature/remember-birthdays", "develop", REPOSITORY, "opened", True, "follows the flow"),
        ("feature/remember-birthdays", "main", REPOSITORY, "opened", False, "into main"),
        ("feature/remember-birthdays", "develop", "stranger/fork", "opened", False, "fork"),
        ("feature/remember-birthdays", "main", REPOSITORY, "edited", False, "into main"),
        ("feature/Bad_Name", "develop", REPOSITORY, "synchronize", False, "feature/Bad_Name"),
        ("develop", "main", REPOSITORY, "reopened", True, "follows the flow"),
    ],
    ids=[
        "feature-to-develop",
        "feature-to-main",
        "from-a-fork",
        "retargeted",
        "bad-name",
        "release",
    ],
)
def test_branch_flow_judges_the_pull_request(world, act, head, base, head_repo, action, allowed, says):
    world.commit(head, "work on the head branch")
    run = act.run(
        "branch-flow.yml",
        "pull_request",
        secrets={},
        payload=pull_request(head, base, action=action, head_repo=head_repo),
    )
    assert run.ok is allowed, run.tail()
    assert says in run.log, run.tail()


def test_back_merge_opens_one_pull_request_when_develop_lacks_main(world, act):
    sha = world.commit("main", "a hotfix straight to main")
    with FakeGitHub() as github:
        for _ in range(2):  # a second run finds the open PR instead of opening another
            run = act.run(
                "back-merge.yml",
                "push",
                secrets={"GITHUB_TOKEN": github.token},
                payload=push("main", sha),
                env={"GITHUB_API_URL": github.url},
            )
            assert run.ok, run.tail()
            assert "https://github.com/mindmate/mindmate-release/pull/1" in run.log
    (pull,) = github.pulls
    assert (pull["head"]["ref"], pull["base"]["ref"]) == ("main", "develop")
    assert github.token not in run.log
