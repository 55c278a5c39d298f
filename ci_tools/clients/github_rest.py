"""GitHub's REST API, the parts the pipeline's own settings live in.

Environments (``PUT /repos/{o}/{r}/environments/{name}``) and their deployment branch
policies, environment secrets (sealed with the environment's public key, as GitHub
requires: libsodium's sealed box), rulesets, the Actions workflow-token settings, the
repository's default branch, and pull requests for the back-merge. Every call goes
through ``ci_tools.http`` (429 and 5xx retried, creates never blindly); lists follow
the ``Link: rel="next"`` header; errors become one line with the fix.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import httpx
from nacl.public import PublicKey, SealedBox

from ci_tools.errors import ConfigError, RemoteError
from ci_tools.http import Contact, request

ACTIONS_APP_ID = 15368  # the GitHub Actions app: required checks pinned to it


@dataclass(frozen=True)
class Repository:
    """``GET /repos/{owner}/{repo}``: the parts the settings are judged on."""

    default_branch: str
    admin: bool  # the token's own permission on it
    private: bool = False

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Repository:
        admin = bool((data.get("permissions") or {}).get("admin"))
        return cls(str(data.get("default_branch")), admin, bool(data.get("private")))


@dataclass(frozen=True)
class Capabilities:
    """What the repository's plan lets setup use (a private repository on GitHub Free: neither)."""

    environments: bool
    rulesets: bool

    @property
    def mode(self) -> str:
        """``CI_TOOLS_GITHUB_MODE``: what the workflows read to know where secrets are and who guards main."""
        words = ["environments" if self.environments else "repository-secrets"]
        return " ".join([*words, *([] if self.rulesets else ["no-rulesets"])])


# GitHub's 403 for a feature the plan lacks, e.g. rulesets in a private repository on Free.
PLAN_LIMIT = "Upgrade to GitHub Pro or make this repository public"


@dataclass(frozen=True)
class Reviewer:
    id: int
    login: str


@dataclass(frozen=True)
class GitHubEnvironment:
    """One deployment environment: its required reviewers and whether it limits its branches."""

    name: str
    reviewers: tuple[Reviewer, ...]
    # Admits only the branches its policies name: custom_branch_policies exactly true. "Protected
    # branches only" (protected_branches true) admits every protected branch, or every branch where
    # none is protected (docs "Managing environments for deployment": deployment branches and tags).
    custom_branches: bool

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> GitHubEnvironment:
        reviewers = tuple(
            Reviewer(int(r["reviewer"]["id"]), str(r["reviewer"]["login"]))
            for rule in data.get("protection_rules") or []
            if rule.get("type") == "required_reviewers"
            for r in rule.get("reviewers") or []
        )
        policy = data.get("deployment_branch_policy") or {}
        return cls(str(data["name"]), reviewers, policy.get("custom_branch_policies") is True)


@dataclass(frozen=True)
class WorkflowPermissions:
    """``GET …/actions/permissions/workflow``: the workflow token's default, and PR creation."""

    default: str  # "read" or "write"
    can_approve_pull_requests: bool

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> WorkflowPermissions:
        return cls(str(data.get("default_workflow_permissions")), bool(data.get("can_approve_pull_request_reviews")))


def seal(public_key: str, value: str) -> str:
    """``value`` encrypted to the environment's public key, base64 — what GitHub stores."""
    box = SealedBox(PublicKey(base64.b64decode(public_key)))
    return base64.b64encode(box.encrypt(value.encode())).decode()


class GitHubAPI:
    def __init__(
        self, token: str, repo: str, *, base_url: str, timeout: float = 20, budget: float | None = None
    ) -> None:
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise ConfigError(f"--repo {repo!r} is not OWNER/NAME", hint="e.g. --repo mindmate/mindmate-release")
        self.repo = repo
        self.contact = Contact()
        if budget is not None:  # a read-only look: a GitHub that is down is said fast
            timeout = min(timeout, budget)
        self.budget = budget if budget is not None else 3 * timeout
        self.client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            timeout=timeout,
        )

    def __enter__(self) -> GitHubAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def send(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        """One request through the retry rules; the answer as it came (the caller reads it).
        A POST may have created something, so it is never blindly sent twice."""
        response = request(
            self.client,
            method,
            path,
            deadline=self.contact.deadline(time.monotonic() + self.budget),
            what=f"GitHub API, {what}",
            idempotent=method != "POST",
            **{**self.contact.options(), **kwargs},
        )
        self.contact.answered = True
        return response

    def call(self, method: str, path: str, what: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        response = self.send(method, path, what, **kwargs)
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code == 401:
            raise ConfigError(
                "GitHub refused the token (401 Bad credentials)",
                hint="set GITHUB_TOKEN or GH_TOKEN",
            )
        if response.status_code == 403 and PLAN_LIMIT in _message(response):
            raise ConfigError(
                f"{what}: GitHub's plan does not allow it in this private repository ({_message(response)})",
                hint="make the repository public or upgrade it; `ci-tools github setup` uses what the plan has",
            )
        if response.status_code in (403, 404):
            message = _message(response)
            raise ConfigError(
                f"{what}: GitHub answered {response.status_code} ({message})",
                hint=f"the token needs admin rights on {self.repo} (a fine-grained token with "
                "Administration, Environments and Secrets: read and write)",
            )
        if response.status_code >= 400:
            raise RemoteError(f"{what}: HTTP {response.status_code} {_message(response)}")
        return response.json() if response.content else None

    def pages(self, path: str, what: str, key: str | None = None) -> list[Any]:
        """Every item of a list endpoint, following ``Link: rel="next"``."""
        items: list[Any] = []
        url: str | None = f"{path}{'&' if '?' in path else '?'}per_page=100"
        while url:
            response = request(
                self.client,
                "GET",
                url,
                deadline=self.contact.deadline(time.monotonic() + self.budget),
                what=f"GitHub API, {what}",
                **self.contact.options(),
            )
            self.contact.answered = True
            if response.status_code >= 400:
                self.call("GET", url, what)  # raises the right error
            body = response.json()
            items += body[key] if key else body
            url = response.links.get("next", {}).get("url")
        return items

    # -- the facts -------------------------------------------------------------------------
    def repository(self) -> Repository:
        return Repository.from_api(self.call("GET", f"/repos/{self.repo}", "reading the repository"))

    def capabilities(self) -> Capabilities:
        """Probe the plan: environments answer 404 and rulesets 403 where it lacks them."""
        environments = self.send("GET", f"/repos/{self.repo}/environments", "probing environments")
        rulesets = self.send("GET", f"/repos/{self.repo}/rulesets", "probing rulesets")
        return Capabilities(
            environments=environments.status_code != 404,
            rulesets=not (rulesets.status_code == 403 and PLAN_LIMIT in _message(rulesets)),
        )

    def put_repo_secret(self, name: str, value: str) -> None:
        """A repository secret: where the plan has no environments, ``<ENV>_<NAME>``."""
        key = self.call("GET", f"/repos/{self.repo}/actions/secrets/public-key", "the repository's public key")
        body = {"encrypted_value": seal(key["key"], value), "key_id": key["key_id"]}
        self.call("PUT", f"/repos/{self.repo}/actions/secrets/{name}", f"setting repository secret {name}", json=body)

    def variable(self, name: str) -> str | None:
        found = self.call("GET", f"/repos/{self.repo}/actions/variables/{name}", f"reading {name}", missing_ok=True)
        return None if found is None else str(found.get("value"))

    def set_variable(self, name: str, value: str) -> None:
        if self.variable(name) is None:
            body = {"name": name, "value": value}
            self.call("POST", f"/repos/{self.repo}/actions/variables", f"creating {name}", json=body)
        else:
            self.call("PATCH", f"/repos/{self.repo}/actions/variables/{name}", f"setting {name}", json={"value": value})

    def delete_variable(self, name: str) -> None:
        """REST "Delete a repository variable" (204); one already gone is not an error."""
        self.call("DELETE", f"/repos/{self.repo}/actions/variables/{name}", f"deleting {name}", missing_ok=True)

    def dispatch_workflow(self, workflow: str, ref: str) -> None:
        """Start ``workflow`` on ``ref`` (REST "Create a workflow dispatch event": 204 No Content).
        The run uses the workflow file and code at ``ref``; a dispatch made with ``GITHUB_TOKEN``
        starts a run (docs "Triggering a workflow from a workflow"). Sent once: it may have started one."""
        what = f"dispatching {workflow} on {ref}"
        path = f"/repos/{self.repo}/actions/workflows/{workflow}/dispatches"
        response = self.send("POST", path, what, json={"ref": ref})
        if response.status_code in (403, 404, 422):
            raise ConfigError(
                f"{what}: GitHub answered {response.status_code} ({_message(response)})",
                hint=f"the job needs permissions actions: write, and {workflow} on {ref} a workflow_dispatch trigger",
            )
        if response.status_code == 401:
            raise ConfigError(
                "GitHub refused the token (401 Bad credentials)", hint="pass GITHUB_TOKEN: ${{ github.token }}"
            )
        if response.status_code >= 400:
            raise RemoteError(f"{what}: HTTP {response.status_code} {_message(response)}")

    def pulls_of_commit(self, sha: str) -> list[dict[str, Any]]:
        """The pull requests a commit belongs to (a merge commit: the PR it merged)."""
        return list(self.call("GET", f"/repos/{self.repo}/commits/{sha}/pulls", f"reading the PRs of {sha[:7]}"))

    def environments(self) -> dict[str, GitHubEnvironment]:
        found = self.pages(f"/repos/{self.repo}/environments", "listing environments", "environments")
        return {e["name"]: GitHubEnvironment.from_api(e) for e in found}

    def branch_policies(self, env: str) -> list[str]:
        """Each policy's pattern; one that is not a branch policy says its type (``main (tag)``)."""
        return sorted(name if kind == "branch" else f"{name} ({kind})" for name, kind in self.branch_policy_ids(env))

    def branch_policy_ids(self, env: str) -> dict[tuple[str, str], int]:
        """Each deployment policy of ``env``, keyed by (pattern, type), with its id (what a delete
        names). A policy is a branch or a tag policy (REST "List deployment branch policies":
        ``type``, default ``branch``): a tag policy ``main`` admits a tag, not the branch."""
        found = self.pages(
            f"/repos/{self.repo}/environments/{env}/deployment-branch-policies",
            f"reading {env}'s deployment branches",
            "branch_policies",
        )
        return {(str(p["name"]), str(p.get("type") or "branch")): int(p["id"]) for p in found}

    def delete_branch_policy(self, env: str, policy_id: int) -> None:
        """A pattern the environment must no longer admit (an older setup's ``develop``)."""
        self.call(
            "DELETE",
            f"/repos/{self.repo}/environments/{env}/deployment-branch-policies/{policy_id}",
            f"removing deployment branch policy {policy_id} of {env}",
        )

    def secret_names(self, env: str) -> set[str]:
        found = self.pages(f"/repos/{self.repo}/environments/{env}/secrets", f"listing {env}'s secrets", "secrets")
        return {s["name"] for s in found}

    def repo_secret_names(self) -> set[str]:
        found = self.pages(f"/repos/{self.repo}/actions/secrets", "listing repository secrets", "secrets")
        return {s["name"] for s in found}

    def artifacts(self) -> list[dict[str, Any]]:
        """The repository's workflow artifacts, newest first (expired ones included, marked)."""
        return list(self.pages(f"/repos/{self.repo}/actions/artifacts", "listing artifacts", "artifacts"))

    def rulesets(self) -> dict[str, dict[str, Any]]:
        summaries = self.pages(f"/repos/{self.repo}/rulesets", "listing rulesets")
        return {
            s["name"]: dict(self.call("GET", f"/repos/{self.repo}/rulesets/{s['id']}", f"reading ruleset {s['name']}"))
            for s in summaries
        }

    def workflow_permissions(self) -> WorkflowPermissions:
        return WorkflowPermissions.from_api(
            self.call("GET", f"/repos/{self.repo}/actions/permissions/workflow", "reading Actions settings")
        )

    def user_id(self, login: str) -> int:
        user = self.call("GET", f"/users/{login}", f"finding user {login}", missing_ok=True)
        if user is None:
            raise ConfigError(
                f"no GitHub user {login!r}",
                hint="fix reviewers in [tool.ci_tools.environments.production]",
            )
        return int(user["id"])

    # -- the changes -------------------------------------------------------------------------
    def put_environment(self, env: str, reviewer_ids: list[int]) -> None:
        body = {
            "reviewers": [{"type": "User", "id": i} for i in reviewer_ids],
            "deployment_branch_policy": {
                "protected_branches": False,
                "custom_branch_policies": True,
            },
        }
        self.call(
            "PUT",
            f"/repos/{self.repo}/environments/{env}",
            f"setting up environment {env}",
            json=body,
        )

    def add_branch_policy(self, env: str, pattern: str) -> None:
        self.call(
            "POST",
            f"/repos/{self.repo}/environments/{env}/deployment-branch-policies",
            f"allowing {pattern} to deploy to {env}",
            json={"name": pattern, "type": "branch"},
        )

    def put_secret(self, env: str, name: str, value: str) -> None:
        key = self.call(
            "GET",
            f"/repos/{self.repo}/environments/{env}/secrets/public-key",
            f"{env}'s public key",
        )
        body = {"encrypted_value": seal(key["key"], value), "key_id": key["key_id"]}
        self.call(
            "PUT",
            f"/repos/{self.repo}/environments/{env}/secrets/{name}",
            f"setting {env}'s {name}",
            json=body,
        )

    def delete_secret(self, env: str, name: str) -> None:
        """REST "Delete an environment secret" (204): what an environment must no longer hold."""
        self.call(
            "DELETE",
            f"/repos/{self.repo}/environments/{env}/secrets/{name}",
            f"deleting {env}'s {name}",
        )

    def delete_repo_secret(self, name: str) -> None:
        """REST "Delete a repository secret" (204): what every pushed branch must no longer read."""
        self.call("DELETE", f"/repos/{self.repo}/actions/secrets/{name}", f"deleting repository secret {name}")

    def save_ruleset(self, ruleset: dict[str, Any], existing_id: int | None) -> None:
        if existing_id is None:
            self.call(
                "POST",
                f"/repos/{self.repo}/rulesets",
                f"creating ruleset {ruleset['name']}",
                json=ruleset,
            )
        else:
            self.call(
                "PUT", f"/repos/{self.repo}/rulesets/{existing_id}", f"updating ruleset {ruleset['name']}", json=ruleset
            )

    def set_workflow_permissions(self, default: str, can_approve: bool) -> None:
        self.call(
            "PUT",
            f"/repos/{self.repo}/actions/permissions/workflow",
            "changing Actions settings",
            json={"default_workflow_permissions": default, "can_approve_pull_request_reviews": can_approve},
        )

    def branch_sha(self, branch: str) -> str | None:
        """The branch's head commit, or None when the branch does not exist."""
        ref = self.call("GET", f"/repos/{self.repo}/git/ref/heads/{branch}", f"reading {branch}", missing_ok=True)
        return None if ref is None else str(ref["object"]["sha"])

    def create_branch(self, branch: str, from_branch: str) -> None:
        sha = self.branch_sha(from_branch)
        if sha is None:
            raise ConfigError(f"{from_branch} does not exist on GitHub", hint=f"push {from_branch} first")
        self.call(
            "POST",
            f"/repos/{self.repo}/git/refs",
            f"creating {branch} from {from_branch}",
            json={"ref": f"refs/heads/{branch}", "sha": sha},
        )

    def set_default_branch(self, branch: str) -> None:
        self.call(
            "PATCH",
            f"/repos/{self.repo}",
            "changing the default branch",
            json={"default_branch": branch},
        )


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))
    except ValueError:
        return response.reason_phrase
