"""githubkit, a GitHub REST client we did not write, against the GitHub stand-in.

githubkit's request and response models are generated from GitHub's own OpenAPI description
(a newer one than our vendored subset), and it validates what it sends: every REST operation
the pipeline uses (ci_tools/contracts/used.py) goes through it here, and the error paths the
pipeline relies on arrive as githubkit's ``RequestFailed`` with GitHub's status. It follows
redirects and hypermedia as GitHub clients do, so a 303 or a ``url`` that leaves the stand-in
shows here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from githubkit import GitHub
from githubkit.exception import RequestFailed
from nacl.public import PublicKey, SealedBox

from sandbox.github import READ_ONLY_TOKEN, FakeGitHub
from tests.support import ROOT

TOKEN = "ghs_sandboxToken0123456789"
OWNER, REPO = "mindmate", "mindmate-release"
MAIN = json.loads((ROOT / ".github/rulesets/main.json").read_text())


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGitHub]:
    with FakeGitHub(TOKEN) as stand_in:
        yield stand_in


def client(server: FakeGitHub, token: str = TOKEN) -> GitHub:
    """No HTTP cache and no automatic retries: each call reaches the stand-in once."""
    return GitHub(token, base_url=server.url, http_cache=False, auto_retry=False, timeout=10)


@pytest.fixture
def gh(server: FakeGitHub) -> Iterator[GitHub]:
    with client(server) as github:
        yield github


def sealed(public_key: str, value: str) -> str:
    """What GitHub documents for a secret: libsodium's sealed box to the key, base64."""
    return base64.b64encode(SealedBox(PublicKey(base64.b64decode(public_key))).encrypt(value.encode())).decode()


def test_repository_read_and_default_branch(gh, server):
    repo = gh.rest.repos.get(OWNER, REPO).parsed_data
    assert repo.full_name == f"{OWNER}/{REPO}" and repo.permissions and repo.permissions.admin
    assert repo.url.startswith(server.url)  # hypermedia under the host asked
    changed = gh.rest.repos.update(OWNER, REPO, default_branch="main").parsed_data
    assert changed.default_branch == "main"


def test_environments_reviewers_and_branch_policies(gh):
    user = gh.rest.users.get_by_username("mindmate-owner").parsed_data
    env = gh.rest.repos.create_or_update_environment(
        OWNER,
        REPO,
        "production",
        reviewers=[{"type": "User", "id": user.id}],
        deployment_branch_policy={"protected_branches": False, "custom_branch_policies": True},
    ).parsed_data
    assert env.name == "production" and env.protection_rules
    assert gh.rest.repos.get_environment(OWNER, REPO, "production").parsed_data.id == env.id
    listed = gh.rest.repos.get_all_environments(OWNER, REPO).parsed_data
    assert [e.name for e in listed.environments or []] == ["production"]
    created = gh.rest.repos.create_deployment_branch_policy(
        OWNER, REPO, "production", name="main", type="branch"
    ).parsed_data
    assert created.name == "main"
    policies = gh.rest.repos.list_deployment_branch_policies(OWNER, REPO, "production").parsed_data
    assert [p.name for p in policies.branch_policies] == ["main"]


def test_a_duplicate_branch_policy_is_303_to_the_policy(gh):
    gh.rest.repos.create_or_update_environment(
        OWNER, REPO, "staging", deployment_branch_policy={"protected_branches": False, "custom_branch_policies": True}
    )
    first = gh.rest.repos.create_deployment_branch_policy(OWNER, REPO, "staging", name="develop").parsed_data
    again = gh.rest.repos.create_deployment_branch_policy(OWNER, REPO, "staging", name="develop")
    assert [r.status_code for r in again.raw_response.history] == [303]  # followed, as githubkit does
    assert again.parsed_data.id == first.id and again.parsed_data.name == "develop"


def test_environment_secrets(gh, server):
    gh.rest.repos.create_or_update_environment(OWNER, REPO, "secrets-env")
    key = gh.rest.actions.get_environment_public_key(OWNER, REPO, "secrets-env").parsed_data
    put = gh.rest.actions.create_or_update_environment_secret(
        OWNER, REPO, "secrets-env", "RENDER_API_KEY", encrypted_value=sealed(key.key, "rnd_value"), key_id=key.key_id
    )
    assert put.status_code == 201
    names = gh.rest.actions.list_environment_secrets(OWNER, REPO, "secrets-env").parsed_data
    assert [s.name for s in names.secrets] == ["RENDER_API_KEY"]
    assert server.secrets["secrets-env"]["RENDER_API_KEY"] == "rnd_value"  # it opened what was sealed


def test_repository_secrets_and_variables(gh, server):
    key = gh.rest.actions.get_repo_public_key(OWNER, REPO).parsed_data
    gh.rest.actions.create_or_update_repo_secret(
        OWNER, REPO, "SNAPSHOT_KEY", encrypted_value=sealed(key.key, "k"), key_id=key.key_id
    )
    assert "SNAPSHOT_KEY" in [s.name for s in gh.rest.actions.list_repo_secrets(OWNER, REPO).parsed_data.secrets]
    gh.rest.actions.create_repo_variable(OWNER, REPO, name="HOLD_RELEASES", value="false")
    gh.rest.actions.update_repo_variable(OWNER, REPO, "HOLD_RELEASES", value="true")
    assert gh.rest.actions.get_repo_variable(OWNER, REPO, "HOLD_RELEASES").parsed_data.value == "true"


def test_rulesets(gh):
    created = gh.rest.repos.create_repo_ruleset(OWNER, REPO, data=MAIN).parsed_data
    summaries = gh.rest.repos.get_repo_rulesets(OWNER, REPO).parsed_data
    assert [r.name for r in summaries] == ["main"]
    read = gh.rest.repos.get_repo_ruleset(OWNER, REPO, created.id).parsed_data
    assert {r.type for r in read.rules or []} >= {"deletion", "pull_request"}
    updated = gh.rest.repos.update_repo_ruleset(OWNER, REPO, created.id, data={**MAIN, "enforcement": "evaluate"})
    assert updated.parsed_data.enforcement == "evaluate"


def test_workflow_permissions(gh):
    gh.rest.actions.set_github_actions_default_workflow_permissions_repository(
        OWNER, REPO, default_workflow_permissions="read", can_approve_pull_request_reviews=False
    )
    found = gh.rest.actions.get_github_actions_default_workflow_permissions_repository(OWNER, REPO).parsed_data
    assert found.default_workflow_permissions == "read" and found.can_approve_pull_request_reviews is False


def test_branches_pulls_and_artifacts(gh, server):
    main = gh.rest.git.get_ref(OWNER, REPO, "heads/main").parsed_data
    made = gh.rest.git.create_ref(OWNER, REPO, ref="refs/heads/release-test", sha=main.object_.sha).parsed_data
    assert made.ref == "refs/heads/release-test"
    pull = gh.rest.pulls.create(OWNER, REPO, title="Back-merge", head="main", base="develop").parsed_data
    assert pull.number and pull.url.startswith(server.url)
    assert [p.number for p in gh.rest.pulls.list(OWNER, REPO, head=f"{OWNER}:main").parsed_data] == [pull.number]
    server.merged("develop", "main", "c" * 40)
    merged = gh.rest.repos.list_pull_requests_associated_with_commit(OWNER, REPO, "c" * 40)
    assert [p.base.ref for p in merged.parsed_data] == ["main"]
    assert [p["merge_commit_sha"] for p in merged.json()] == ["c" * 40]  # not in githubkit's model: raw
    server.add_artifact("memory-backup-production", "2026-01-05T10:00:00Z")
    artifacts = gh.rest.actions.list_artifacts_for_repo(OWNER, REPO, name="memory-backup-production").parsed_data
    assert artifacts.total_count == 1 and artifacts.artifacts[0].name == "memory-backup-production"


# -- the error paths ----------------------------------------------------------------------------


def test_a_bad_token_is_401(server):
    with client(server, "ghs_wrong") as wrong, pytest.raises(RequestFailed) as failed:
        wrong.rest.repos.get(OWNER, REPO)
    assert failed.value.response.status_code == 401


def test_a_token_without_admin_is_403(server):
    with client(server, READ_ONLY_TOKEN) as read_only, pytest.raises(RequestFailed) as failed:
        read_only.rest.repos.create_or_update_environment(OWNER, REPO, "production")
    assert failed.value.response.status_code == 403


def test_a_missing_environment_is_404(gh):
    with pytest.raises(RequestFailed) as failed:
        gh.rest.actions.get_environment_public_key(OWNER, REPO, "no-such-environment")
    assert failed.value.response.status_code == 404


def test_a_branch_policy_without_custom_policies_is_404(gh):
    gh.rest.repos.create_or_update_environment(OWNER, REPO, "everyone")  # no deployment_branch_policy
    with pytest.raises(RequestFailed) as failed:
        gh.rest.repos.create_deployment_branch_policy(OWNER, REPO, "everyone", name="main")
    assert failed.value.response.status_code == 404


def test_a_duplicate_ruleset_or_pull_request_is_422(gh):
    ruleset = {**MAIN, "name": "twice"}
    gh.rest.repos.create_repo_ruleset(OWNER, REPO, data=ruleset)
    with pytest.raises(RequestFailed) as failed:
        gh.rest.repos.create_repo_ruleset(OWNER, REPO, data=ruleset)
    assert failed.value.response.status_code == 422
    gh.rest.pulls.create(OWNER, REPO, title="once", head="feature/x", base="develop")
    with pytest.raises(RequestFailed) as again:
        gh.rest.pulls.create(OWNER, REPO, title="twice", head="feature/x", base="develop")
    assert again.value.response.status_code == 422
