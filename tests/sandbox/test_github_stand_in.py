"""The GitHub stand-in answers as GitHub does where clients we did not write noticed it did not
(issue 42): hypermedia that points at the host asked, and deployment branch policies as GitHub's
description of "Create a deployment branch policy" has them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.github import FakeGitHub

REPO = "/repos/mindmate/mindmate-release"
CUSTOM = {"protected_branches": False, "custom_branch_policies": True}


@pytest.fixture
def github() -> Iterator[httpx.Client]:
    with (
        FakeGitHub() as server,
        httpx.Client(base_url=server.url, headers={"Authorization": "Bearer ghs_sandboxToken0123456789"}) as client,
    ):
        yield client


def urls(node: object) -> list[str]:
    """Every ``url`` and ``*_url`` string in an answer."""
    if isinstance(node, dict):
        found = [v for k, v in node.items() if (k == "url" or k.endswith("_url")) and isinstance(v, str)]
        return found + [u for v in node.values() for u in urls(v)]
    if isinstance(node, list):
        return [u for v in node for u in urls(v)]
    return []


def test_every_api_url_points_at_the_host_asked(github):
    """PyGithub reads each object from its ``url``: one naming api.github.com leaves the stand-in."""
    github.put(f"{REPO}/environments/production", json={"deployment_branch_policy": CUSTOM})
    github.post(f"{REPO}/pulls", json={"head": "develop", "base": "main", "title": "release"})
    base = str(github.base_url).rstrip("/")
    found = [
        *urls(github.get(REPO).json()),
        *urls(github.get(f"{REPO}/environments/production").json()),
        *urls(github.get(f"{REPO}/pulls").json()),
        *urls(github.get(f"{REPO}/git/ref/heads/main").json()),
    ]
    api = [u for u in found if "api.github.com" in u or u.startswith(base)]
    assert api and all(u.startswith(base) for u in api), [u for u in api if not u.startswith(base)][:3]
    repo = github.get(REPO).json()
    assert github.get(repo["url"]).json()["full_name"] == "mindmate/mindmate-release"  # a client can follow it


def test_a_branch_policy_needs_custom_branch_policies(github):
    """GitHub's description: 404 "Not Found or deployment_branch_policy.custom_branch_policies
    property for the environment is set to false"."""
    github.put(
        f"{REPO}/environments/production",
        json={"deployment_branch_policy": {"protected_branches": True, "custom_branch_policies": False}},
    )
    refused = github.post(f"{REPO}/environments/production/deployment-branch-policies", json={"name": "main"})
    assert refused.status_code == 404
    assert github.get(f"{REPO}/environments/production/deployment-branch-policies").json()["total_count"] == 0


def test_a_duplicate_branch_policy_is_303_to_the_policy_that_exists(github):
    github.put(f"{REPO}/environments/production", json={"deployment_branch_policy": CUSTOM})
    policies = f"{REPO}/environments/production/deployment-branch-policies"
    created = github.post(policies, json={"name": "main", "type": "branch"}).json()
    again = github.post(policies, json={"name": "main", "type": "branch"})
    assert again.status_code == 303
    assert again.headers["Location"] == f"{str(github.base_url).rstrip('/')}{policies}/{created['id']}"
    followed = github.get(again.headers["Location"])  # what a client following the 303 sees
    assert followed.json() == created
