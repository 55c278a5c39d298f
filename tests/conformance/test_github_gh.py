"""``gh api`` (the GitHub CLI, a Go client we did not write) against the GitHub stand-in.

gh streams ``--input -`` as a chunked body, follows ``Link`` pages and redirects as Go's HTTP
client does, and sends its token as ``token …``: the stand-in must hold under all three. gh
talks HTTPS to any host but ``github.localhost``, which it reaches as
``http://api.github.localhost/`` (cli/cli, internal/ghinstance); the stand-in plays that host
as gh's HTTP proxy, and so also answers the absolute-form request target proxies receive.

gh is a system package (``apt-get install gh``), not a Python one: without it this module is
skipped, and githubkit's module covers the same operations.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nacl.public import PublicKey, SealedBox

from sandbox.github import READ_ONLY_TOKEN, FakeGitHub
from tests.support import ROOT

pytestmark = pytest.mark.skipif(
    shutil.which("gh") is None, reason="gh (the GitHub CLI) is not installed: apt-get install gh"
)

TOKEN = "ghs_sandboxToken0123456789"
REPO = "repos/mindmate/mindmate-release"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGitHub]:
    with FakeGitHub(TOKEN) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gh-home")


class Gh:
    def __init__(self, server: FakeGitHub, home: Path, token: str = TOKEN) -> None:
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "GH_CONFIG_DIR": str(home),
            "GH_TOKEN": token,
            "GH_HOST": "github.localhost",
            "HTTP_PROXY": server.url,
            "GH_NO_UPDATE_NOTIFIER": "1",
            "GH_PROMPT_DISABLED": "1",
        }

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["gh", "api", *args], env=self.env, input=stdin, capture_output=True, text=True, timeout=60, check=False
        )

    def __call__(self, *args: str, stdin: str | None = None) -> Any:
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None


@pytest.fixture
def gh(server: FakeGitHub, home: Path) -> Gh:
    return Gh(server, home)


def sealed(public_key: str, value: str) -> str:
    return base64.b64encode(SealedBox(PublicKey(base64.b64decode(public_key))).encrypt(value.encode())).decode()


CUSTOM = {"protected_branches": False, "custom_branch_policies": True}


def test_repository_and_hypermedia(gh):
    repo = gh(REPO)
    assert repo["url"] == "http://api.github.localhost/repos/mindmate/mindmate-release"  # the host gh asked
    assert gh("-X", "PATCH", REPO, "-f", "default_branch=main")["default_branch"] == "main"


def test_environment_put_from_stdin_is_chunked_and_kept(gh, server):
    body = {"reviewers": [{"type": "User", "id": gh("users/mindmate-owner")["id"]}], "deployment_branch_policy": CUSTOM}
    gh("-X", "PUT", f"{REPO}/environments/production", "--input", "-", stdin=json.dumps(body))
    stored = server.environments["production"]
    assert [r["type"] for r in stored["protection_rules"]] == ["required_reviewers", "branch_policy"]
    assert gh(f"{REPO}/environments/production")["name"] == "production"
    assert "production" in [e["name"] for e in gh(f"{REPO}/environments")["environments"]]


def test_branch_policies_paged_and_a_duplicate_followed(gh):
    gh(
        "-X",
        "PUT",
        f"{REPO}/environments/staging",
        "--input",
        "-",
        stdin=json.dumps({"deployment_branch_policy": CUSTOM}),
    )
    first = gh("-X", "POST", f"{REPO}/environments/staging/deployment-branch-policies", "-f", "name=develop")
    gh("-X", "POST", f"{REPO}/environments/staging/deployment-branch-policies", "-f", "name=feature/*")
    again = gh("-X", "POST", f"{REPO}/environments/staging/deployment-branch-policies", "-f", "name=develop")
    assert again == first  # the 303 followed to the policy that exists
    listed = gh.run(
        "--paginate",
        f"{REPO}/environments/staging/deployment-branch-policies?per_page=1",
        "--jq",
        ".branch_policies[].name",
    )
    assert listed.stdout.split() == ["develop", "feature/*"]  # both pages, through the Link header


def test_secrets_and_variables(gh, server):
    gh("-X", "PUT", f"{REPO}/environments/secrets-env", "--input", "-", stdin="{}")
    key = gh(f"{REPO}/environments/secrets-env/secrets/public-key")
    value = sealed(key["key"], "rnd_value")
    gh(
        "-X",
        "PUT",
        f"{REPO}/environments/secrets-env/secrets/RENDER_API_KEY",
        "-f",
        f"encrypted_value={value}",
        "-f",
        f"key_id={key['key_id']}",
    )
    assert [s["name"] for s in gh(f"{REPO}/environments/secrets-env/secrets")["secrets"]] == ["RENDER_API_KEY"]
    assert server.secrets["secrets-env"]["RENDER_API_KEY"] == "rnd_value"
    repo_key = gh(f"{REPO}/actions/secrets/public-key")
    gh(
        "-X",
        "PUT",
        f"{REPO}/actions/secrets/SNAPSHOT_KEY",
        "-f",
        f"encrypted_value={sealed(repo_key['key'], 'k')}",
        "-f",
        f"key_id={repo_key['key_id']}",
    )
    assert "SNAPSHOT_KEY" in [s["name"] for s in gh(f"{REPO}/actions/secrets")["secrets"]]
    gh("-X", "POST", f"{REPO}/actions/variables", "-f", "name=HOLD_RELEASES", "-f", "value=false")
    gh("-X", "PATCH", f"{REPO}/actions/variables/HOLD_RELEASES", "-f", "value=true")
    assert gh(f"{REPO}/actions/variables/HOLD_RELEASES")["value"] == "true"


def test_rulesets_and_workflow_permissions(gh):
    main = (ROOT / ".github/rulesets/main.json").read_text()
    created = gh("-X", "POST", f"{REPO}/rulesets", "--input", "-", stdin=main)
    assert [r["name"] for r in gh(f"{REPO}/rulesets")] == ["main"]
    assert gh(f"{REPO}/rulesets/{created['id']}")["rules"]
    changed = gh(
        "-X",
        "PUT",
        f"{REPO}/rulesets/{created['id']}",
        "--input",
        "-",
        stdin=json.dumps({**json.loads(main), "enforcement": "evaluate"}),
    )
    assert changed["enforcement"] == "evaluate"
    gh(
        "-X",
        "PUT",
        f"{REPO}/actions/permissions/workflow",
        "-f",
        "default_workflow_permissions=read",
        "-F",
        "can_approve_pull_request_reviews=false",
    )
    assert gh(f"{REPO}/actions/permissions/workflow")["default_workflow_permissions"] == "read"


def test_refs_pulls_and_artifacts(gh, server):
    main = gh(f"{REPO}/git/ref/heads/main")
    gh("-X", "POST", f"{REPO}/git/refs", "-f", "ref=refs/heads/release-gh", "-f", f"sha={main['object']['sha']}")
    pull = gh("-X", "POST", f"{REPO}/pulls", "-f", "title=Back-merge", "-f", "head=main", "-f", "base=develop")
    assert [p["number"] for p in gh(f"{REPO}/pulls?head=mindmate:main")] == [pull["number"]]
    server.merged("develop", "main", "e" * 40)
    assert [p["merge_commit_sha"] for p in gh(f"{REPO}/commits/{'e' * 40}/pulls")] == ["e" * 40]
    server.add_artifact("memory-backup-production", "2026-01-05T10:00:00Z")
    assert gh(f"{REPO}/actions/artifacts?name=memory-backup-production")["total_count"] == 1


# -- the error paths: gh exits 1 and names GitHub's status --------------------------------------


def test_error_statuses(gh, server, home):
    assert "HTTP 401" in Gh(server, home, "ghs_wrong").run(REPO).stderr
    assert (
        "HTTP 403"
        in Gh(server, home, READ_ONLY_TOKEN)
        .run("-X", "PUT", f"{REPO}/environments/x", "--input", "-", stdin="{}")
        .stderr
    )
    assert "HTTP 404" in gh.run(f"{REPO}/environments/no-such-environment/secrets/public-key").stderr
    gh("-X", "PUT", f"{REPO}/environments/everyone", "--input", "-", stdin="{}")
    refused = gh.run("-X", "POST", f"{REPO}/environments/everyone/deployment-branch-policies", "-f", "name=main")
    assert refused.returncode == 1 and "HTTP 404" in refused.stderr
    gh("-X", "POST", f"{REPO}/pulls", "-f", "title=once", "-f", "head=feature/y", "-f", "base=develop")
    twice = gh.run("-X", "POST", f"{REPO}/pulls", "-f", "title=twice", "-f", "head=feature/y", "-f", "base=develop")
    assert twice.returncode == 1 and "HTTP 422" in twice.stderr
