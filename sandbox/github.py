"""A local GitHub REST API on loopback: pull requests, and the repository settings the pipeline owns.

Shapes and errors follow GitHub's REST documentation. Settings: environments
(``PUT /repos/{o}/{r}/environments/{name}`` with reviewers and a custom deployment
branch policy; ``…/deployment-branch-policies``), environment secrets (``…/secrets``,
``…/secrets/public-key``; values arrive sealed to the environment's Curve25519 key and
the stand-in opens them, so tests see what arrived; ``DELETE …/secrets/{name}``), repository
secrets (sealed too; deleted by name),
rulesets (``/rulesets`` list without rules, ``/rulesets/{id}`` with them; a name taken
twice is 422), ``/actions/permissions/workflow``, the repository (``default_branch``,
``permissions.admin``) and users. Lists honour ``per_page``/``page`` with a ``Link``
header. A second, read-only token gets 403 "Resource not accessible by integration"
on everything that needs admin rights.

Workflow dispatch (REST "Create a workflow dispatch event", ``POST
/repos/{o}/{r}/actions/workflows/{workflow_id}/dispatches``): 204 No Content, the run recorded
in ``dispatches`` with the ref it runs on (GitHub runs the workflow file at that ref); 422
"No ref found for: <ref>" for a branch that does not exist; 404 for a workflow the repository
does not have (when ``workflows`` names them); 403 for the read-only token (no ``actions: write``).

Pulls: ``POST
/repos/{owner}/{repo}/pulls`` answers 201 with the pull request, 422 "Validation
Failed" when an open PR for the same head and base exists, 403 when the workflow
token may not open PRs (the repository setting "Allow GitHub Actions to create and
approve pull requests" is off), 401 "Bad credentials"; ``GET`` lists them filtered
by ``head`` (``owner:branch``), ``base`` and ``state``.
"""

from __future__ import annotations

import base64
import copy
import itertools
import re
from typing import Any

from nacl.public import PrivateKey, SealedBox

from sandbox import contract as contracts
from sandbox import shapes
from sandbox.http import Request, Response, StandInServer, fault

_PULLS = re.compile(r"^/repos/(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)/pulls$")
_REPO = re.compile(r"^/repos/(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)(?P<rest>/.*)?$")
READ_ONLY_TOKEN = "ghs_sandboxReadOnly0123456789"  # noqa: S105 - the stand-in's token without admin
# A valid token that was not given this repository (a fine-grained token's "Repository access" naming
# others): GitHub answers 404, not 403, for a private repository it may not see, so as not to confirm
# that it exists (docs.github.com/rest, "Troubleshooting the REST API": 404 for a resource you lack
# access to). Every /repos/ call with it is 404 Not Found.
OTHER_REPOSITORY_TOKEN = "github_pat_sandboxOtherRepository0123"  # noqa: S105 - the stand-in's token for another repo
DOCS = "https://docs.github.com/rest"
REPO_ID = 812_345_678


def error(status: int, message: str) -> Response:
    """GitHub's ``basic-error``."""
    return status, {"message": message, "documentation_url": DOCS, "status": str(status)}, {}


def invalid(message: str, code: str = "custom", field: str | None = None) -> Response:
    """GitHub's ``validation-error`` (422)."""
    detail: dict[str, Any] = {"resource": "PullRequest", "code": code, "message": message}
    if field:
        detail["field"] = field
    return 422, {"message": "Validation Failed", "errors": [detail], "documentation_url": DOCS}, {}


NO_ADMIN = error(403, "Resource not accessible by integration")
NOT_FOUND = error(404, "Not Found")


class FakeGitHub(StandInServer):
    name = "github-stand-in"
    contract = contracts.GITHUB

    def __init__(
        self,
        token: str = "ghs_sandboxToken0123456789",  # noqa: S107 - the stand-in's own token
        *,
        may_open_prs: bool = True,
        private: bool = False,
        plan: str = "free",
    ) -> None:
        super().__init__()
        self.token = token
        self.may_open_prs = may_open_prs
        # What the owner's plan allows (docs.github.com, "GitHub's plans"; "Managing environments
        # for deployment"): in a private repository, environments, their secrets and deployment
        # branches need Pro, Team or Enterprise; required reviewers need Enterprise; rulesets
        # need a paid plan. A public repository has them all, on every plan.
        self.private = private
        self.plan = plan
        self.repo_secret_values: dict[str, str] = {}  # repository secrets, as they arrived
        self.variables: dict[str, str] = {}
        self.fail_with: int | None = None  # fault: every call answers this status
        self.pulls: list[dict[str, Any]] = []
        self._numbers = itertools.count(1)
        self._ids = itertools.count(100)
        self.default_branch = "main"
        # Branch heads. A repository made from a clone of main alone has no develop yet: a test pops it.
        self.branches: dict[str, str] = {"main": "a" * 40, "develop": "a" * 40}
        self.environments: dict[str, dict[str, Any]] = {}
        self.branch_policies: dict[str, list[str]] = {}
        self.secrets: dict[str, dict[str, str]] = {}  # environment → name → the value that arrived
        self.repo_secrets: set[str] = set()
        self.rulesets: dict[int, dict[str, Any]] = {}
        self.workflow_permissions = {
            "default_workflow_permissions": "write",
            "can_approve_pull_request_reviews": False,
        }
        self.users = {"mindmate-owner": 5001}
        self.artifacts: list[dict[str, Any]] = []  # add_artifact(): what runs kept, newest first
        self.writes = 0  # every change a call made: setup twice must not add any
        self.dispatches: list[dict[str, Any]] = []  # workflow_dispatch runs started: workflow, ref, inputs
        self.workflows: set[str] | None = None  # the workflow files on every branch (None: any name)
        self._policy_ids: dict[tuple[str, str], int] = {}
        self._keys: dict[str, PrivateKey] = {}

    def handle(self, request: Request) -> Response:
        """The answer, every API URL in it pointing at the host the client asked.

        GitHub's answers are hypermedia: ``url`` and ``*_url`` fields and the ``Link`` and
        ``Location`` headers are there so that clients need not build URLs themselves
        (docs.github.com/rest, "Getting started with the REST API", Hypermedia), and clients
        follow them (PyGithub reads every object from its ``url``). GitHub Enterprise Server
        answers them under its own host (``https://HOSTNAME/api/v3``), so they name the API
        that was asked, never a fixed one: here, the stand-in as the request's Host names it.
        """
        status, payload, headers = self._answer(request)
        base = f"http://{request.headers['Host']}" if request.headers.get("Host") else self.url
        return status, _pointed_at(payload, base), {k: _pointed_at(v, base) for k, v in headers.items()}

    def _answer(self, request: Request) -> Response:
        admin = request.headers.get("Authorization") in (
            f"Bearer {self.token}",
            f"token {self.token}",
        )
        # GitHub takes a token under either scheme, "Bearer" or "token" (docs.github.com/rest,
        # "Authenticating to the REST API"); githubkit and gh send "token".
        if request.headers.get("Authorization") in (f"Bearer {READ_ONLY_TOKEN}", f"token {READ_ONLY_TOKEN}"):
            return self._settings(request, admin=False)
        if request.headers.get("Authorization") in (
            f"Bearer {OTHER_REPOSITORY_TOKEN}",
            f"token {OTHER_REPOSITORY_TOKEN}",
        ):
            return NOT_FOUND if request.path.startswith("/repos/") else self._settings(request, admin=False)
        if request.headers.get("Authorization") not in (
            f"Bearer {self.token}",
            f"token {self.token}",
        ):
            return error(401, "Bad credentials")
        if self.fail_with:  # an outage: GitHub documents 5xx on few operations
            return fault(self.fail_with, {"message": "Server Error"}, "a GitHub outage")
        match = _PULLS.match(request.path)
        if not match:
            return self._settings(request, admin=admin)
        full_name = f"{match['owner']}/{match['repo']}"
        if request.method == "GET":
            return (
                200,
                [self._pull(p, simple=True) for p in self._list(full_name, request.query)],
                {},
            )
        if request.method == "POST":
            return self._create(full_name, match["owner"], request.json() or {})
        return NOT_FOUND

    def _list(self, full_name: str, query: dict[str, str]) -> list[dict[str, Any]]:
        state = query.get("state", "open")
        head = query.get("head")
        return [
            p
            for p in self.pulls
            if p["base"]["repo"]["full_name"] == full_name
            and (state == "all" or p["state"] == state)
            and (not head or head == p["head"]["label"])
            and (not query.get("base") or query["base"] == p["base"]["ref"])
        ]

    def _create(self, full_name: str, owner: str, body: dict[str, Any]) -> Response:
        if not self.may_open_prs:
            return error(403, "GitHub Actions is not permitted to create or approve pull requests.")
        head, base = str(body.get("head", "")), str(body.get("base", ""))
        if not head or not base or not body.get("title"):
            return invalid("head, base and title are required", "missing_field")
        label = head if ":" in head else f"{owner}:{head}"
        if any(p["state"] == "open" and p["head"]["label"] == label and p["base"]["ref"] == base for p in self.pulls):
            return invalid(f"A pull request already exists for {label}.")
        number = next(self._numbers)
        pull = {
            "number": number,
            "state": "open",
            "title": body["title"],
            "body": body.get("body"),
            "head": {"ref": label.split(":", 1)[1], "label": label},
            "base": {"ref": base, "repo": {"full_name": full_name}},
        }
        with self.lock:
            self.pulls.append(pull)
        return 201, self._pull(pull), {}

    def merged(self, head: str, base: str, sha: str, full_name: str = "mindmate/mindmate-release") -> None:
        """A PR from ``head`` into ``base`` that GitHub merged as commit ``sha``."""
        number = next(self._numbers)
        owner = full_name.split("/")[0]
        self.pulls.append(
            {
                "number": number,
                "state": "closed",
                "title": f"{head} into {base}",
                "body": None,
                "head": {"ref": head, "label": f"{owner}:{head}"},
                "base": {"ref": base, "repo": {"full_name": full_name}},
                "merged_at": shapes.CREATED,
                "merge_commit_sha": sha,
            }
        )

    def _pull(self, pull: dict[str, Any], *, simple: bool = False) -> dict[str, Any]:
        """The stored PR as GitHub answers it (``pull-request``, or ``-simple`` in lists)."""
        full_name, number = pull["base"]["repo"]["full_name"], pull["number"]
        owner = self._user(full_name.split("/")[0])
        repo = self._repository(full_name)
        url = f"{shapes.API}/repos/{full_name}/pulls/{number}"
        links = {k: {"href": f"{url}/{k}"} for k in ("comments", "commits", "review_comments", "statuses")}
        links |= {
            "self": {"href": url},
            "html": {"href": f"https://github.com/{full_name}/pull/{number}"},
            "issue": {"href": f"{url}/issue"},
            "review_comment": {"href": f"{url}/comments{{/number}}"},
        }
        given = {
            "id": 2_000_000 + number,
            "node_id": f"PR_kwDO{number:08d}",
            "url": url,
            "html_url": f"https://github.com/{full_name}/pull/{number}",
            "number": number,
            "state": pull["state"],
            "locked": False,
            "title": pull["title"],
            "body": pull["body"],
            "user": owner,
            "labels": [],
            "head": {
                "label": pull["head"]["label"],
                "ref": pull["head"]["ref"],
                "sha": "0" * 40,
                "user": owner,
                "repo": repo,
            },
            "base": {
                "label": f"{full_name.split('/')[0]}:{pull['base']['ref']}",
                "ref": pull["base"]["ref"],
                "sha": "0" * 40,
                "user": owner,
                "repo": repo,
            },
            "_links": links,
            "author_association": "OWNER",
            "draft": False,
            "created_at": shapes.CREATED,
            "updated_at": shapes.CREATED,
            "merged_at": pull.get("merged_at"),
            "merge_commit_sha": pull.get("merge_commit_sha"),
        }
        return shapes.complete("pull-request-simple" if simple else "pull-request", given)

    def _user(self, login: str) -> dict[str, Any]:
        return shapes.complete("simple-user", shapes.user(login, self.users.get(login, 1001)))

    @property
    def environments_available(self) -> bool:
        return not self.private or self.plan in ("pro", "team", "enterprise")

    @property
    def rulesets_available(self) -> bool:
        return not self.private or self.plan != "free"

    def _repository(self, full_name: str, *, admin: bool = True) -> dict[str, Any]:
        owner = self._user(full_name.split("/")[0])
        permissions = {
            "admin": admin,
            "maintain": admin,
            "push": True,
            "triage": True,
            "pull": True,
        }
        found = shapes.repository(
            full_name, REPO_ID, owner, default_branch=self.default_branch, permissions=permissions
        )
        found |= {"private": self.private, "visibility": "private" if self.private else "public"}
        return shapes.complete("full-repository", found)

    def add_artifact(self, name: str, created_at: str, *, run_id: int = 9001, expired: bool = False) -> None:
        """An artifact a workflow run kept (the artifact store is GitHub's, not the runner's)."""
        number = next(self._ids)
        url = f"{shapes.API}/repos/mindmate/mindmate-release/actions/artifacts/{number}"
        with self.lock:
            self.artifacts.insert(
                0,
                {
                    "id": number,
                    "node_id": f"MDg6QXJ0aWZhY3Q{number}",
                    "name": name,
                    "size_in_bytes": 2048,
                    "url": url,
                    "archive_download_url": f"{url}/zip",
                    "expired": expired,
                    "created_at": created_at,
                    "updated_at": created_at,
                    "expires_at": None,
                    "digest": None,
                    "workflow_run": {
                        "id": run_id,
                        "repository_id": REPO_ID,
                        "head_repository_id": REPO_ID,
                        "head_branch": "main",
                        "head_sha": "0" * 40,
                    },
                },
            )

    # -- repository settings -------------------------------------------------------------
    def sealed_key(self, env: str) -> PrivateKey:
        return self._keys.setdefault(env, PrivateKey.generate())

    def _page(self, request: Request, items: list[Any], key: str | None = None) -> Response:
        per_page = max(1, min(100, int(request.query.get("per_page", 30))))
        page = max(1, int(request.query.get("page", 1)))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            headers["Link"] = f'<{shapes.API}{request.path}?per_page={per_page}&page={page + 1}>; rel="next"'
        body: Any = {"total_count": len(items), key: chunk} if key else chunk
        return 200, body, headers

    def _settings(self, request: Request, *, admin: bool) -> Response:
        if match := re.fullmatch(r"/users/([\w-]+)", request.path):
            found = self.users.get(match[1])
            if not found:
                return NOT_FOUND
            public = {**shapes.user(match[1], found), "user_view_type": "public"}
            return 200, shapes.complete("public-user", public), {}
        match = _REPO.match(request.path)
        if not match:
            return NOT_FOUND
        full, rest, method = (
            f"{match['owner']}/{match['repo']}",
            match["rest"] or "",
            request.method,
        )
        if rest == "" and method == "GET":
            return 200, self._repository(full, admin=admin), {}
        if m := re.fullmatch(r"/actions/workflows/([\w.-]+)/dispatches", rest):
            return self._dispatch(m[1], request, admin=admin)
        if rest == "/actions/artifacts" and method == "GET":
            wanted = request.query.get("name")
            listed = [a for a in self.artifacts if wanted in (None, a["name"])]
            return self._page(request, listed, "artifacts")
        if not admin:
            return NO_ADMIN
        if rest == "" and method == "PATCH":
            wanted = str((request.json() or {}).get("default_branch", self.default_branch))
            if wanted not in self.branches:  # GitHub: 422 for a default branch that does not exist
                return invalid(
                    f"The branch {wanted} was not found. Please push that ref first or create it via the Git Data API.",
                    "invalid",
                    "default_branch",
                )
            self.default_branch = wanted
            self.writes += 1
            return 200, self._repository(full), {}
        if (m := re.fullmatch(r"/git/ref/heads/([\w./-]+)", rest)) and method == "GET":
            return (200, self._ref(full, m[1]), {}) if m[1] in self.branches else NOT_FOUND
        if rest == "/git/refs" and method == "POST":
            body = request.json() or {}
            branch = str(body.get("ref", "")).removeprefix("refs/heads/")
            if branch in self.branches:
                return invalid("Reference already exists", "already_exists", "ref")
            self.branches[branch] = str(body.get("sha", ""))
            self.writes += 1
            return 201, self._ref(full, branch), {}
        if rest.startswith("/environments") and not self.environments_available:
            return NOT_FOUND  # a private repository on GitHub Free has no environments
        if rest.startswith("/rulesets") and not self.rulesets_available:
            return error(403, "Upgrade to GitHub Pro or make this repository public to enable this feature.")
        if rest == "/actions/secrets/public-key" and method == "GET":
            key = self.sealed_key("").public_key.encode()
            return 200, {"key_id": "key-repository", "key": base64.b64encode(key).decode()}, {}
        if (m := re.fullmatch(r"/actions/secrets/([\w-]+)", rest)) and method == "PUT":
            body = request.json() or {}
            if body.get("key_id") != "key-repository":
                return invalid("bad key_id", field="key_id")
            value = SealedBox(self.sealed_key("")).decrypt(base64.b64decode(body["encrypted_value"]))
            created = m[1] not in self.repo_secrets
            self.repo_secrets.add(m[1])
            self.repo_secret_values[m[1]] = value.decode()
            self.writes += 1
            return (201, {}, {}) if created else (204, None, {})
        if (m := re.fullmatch(r"/actions/secrets/([\w-]+)", rest)) and method == "DELETE":
            # REST "Delete a repository secret": 204 No Content; a name it does not hold, 404
            if m[1] not in self.repo_secrets:
                return NOT_FOUND
            self.repo_secrets.discard(m[1])
            self.repo_secret_values.pop(m[1], None)
            self.writes += 1
            return 204, None, {}
        if m := re.fullmatch(r"/actions/variables(?:/([\w-]+))?", rest):
            return self._variable(m[1], request)
        if (m := re.fullmatch(r"/commits/([0-9a-f]{7,40})/pulls", rest)) and method == "GET":
            merged = [p for p in self.pulls if p.get("merge_commit_sha") == m[1]]
            return 200, [self._pull(p, simple=True) for p in merged], {}
        if rest == "/environments" and method == "GET":
            return self._page(request, [self._env(n, full) for n in self.environments], "environments")
        if m := re.fullmatch(r"/environments/([\w-]+)", rest):
            return self._environment(m[1], request)
        if (m := re.fullmatch(r"/environments/([\w-]+)/deployment-branch-policies/(\d+)", rest)) and method == "DELETE":
            return self._delete_branch_policy(m[1], int(m[2]))
        if m := re.fullmatch(r"/environments/([\w-]+)/deployment-branch-policies(?:/(\d+))?", rest):
            return self._branch_policy(m[1], request, int(m[2]) if m[2] else None)
        if m := re.fullmatch(r"/environments/([\w-]+)/secrets(?:/([\w-]+))?", rest):
            return self._secret(m[1], m[2], request)
        if rest == "/actions/secrets" and method == "GET":
            return self._page(request, [self._secret_item(n) for n in sorted(self.repo_secrets)], "secrets")
        if rest.startswith("/rulesets"):
            return self._ruleset(full, rest, request)
        if rest == "/actions/permissions/workflow":
            if method == "PUT":
                self.workflow_permissions.update(request.json() or {})
                self.writes += 1
                return 204, None, {}
            return 200, dict(self.workflow_permissions), {}
        return NOT_FOUND

    def _dispatch(self, workflow: str, request: Request, *, admin: bool) -> Response:
        """A workflow_dispatch event: the run it starts uses the workflow file on ``ref``."""
        if request.method != "POST":
            return NOT_FOUND
        if not admin:
            return NO_ADMIN  # a token without actions: write
        if self.workflows is not None and workflow not in self.workflows:
            return NOT_FOUND
        body = request.json() or {}
        ref = str(body.get("ref", "")).removeprefix("refs/heads/")
        if ref not in self.branches:
            return 422, {"message": f"No ref found for: {ref}", "documentation_url": DOCS, "status": "422"}, {}
        with self.lock:
            self.dispatches.append({"workflow": workflow, "ref": ref, "inputs": dict(body.get("inputs") or {})})
        return 204, None, {}

    def _env(self, name: str, full: str) -> dict[str, Any]:
        """A stored environment as GitHub answers it: its rules get ids and users in full."""
        stored = self.environments[name]
        url = f"{shapes.API}/repos/{full}/environments/{name}"
        return {
            **stored,
            "node_id": f"EN_kwDO{stored['id']:08d}",
            "url": url,
            "html_url": f"https://github.com/{full}/deployments/activity_log?environments_filter={name}",
            "created_at": shapes.CREATED,
            "updated_at": shapes.CREATED,
        }

    def _variable(self, name: str | None, request: Request) -> Response:
        """Repository variables (``actions-variable``), what the workflows read as ``vars.NAME``."""
        if name and request.method == "GET":
            if name not in self.variables:
                return NOT_FOUND
            found = {"name": name, "value": self.variables[name], "created_at": shapes.CREATED}
            return 200, {**found, "updated_at": shapes.CREATED}, {}
        body = request.json() or {}
        if name is None and request.method == "POST":
            if body.get("name") in self.variables:
                return invalid("Already exists", "already_exists", "name")
            self.variables[str(body.get("name"))] = str(body.get("value"))
            self.writes += 1
            return 201, {}, {}
        if name and request.method == "PATCH" and name in self.variables:
            self.variables[name] = str(body.get("value", self.variables[name]))
            self.writes += 1
            return 204, None, {}
        # "Delete a repository variable" (actions/delete-repo-variable): 204, no body; an unknown
        # name is GitHub's 404 like every other variable call.
        if name and request.method == "DELETE" and name in self.variables:
            del self.variables[name]
            self.writes += 1
            return 204, None, {}
        return NOT_FOUND

    def _secret_item(self, name: str) -> dict[str, str]:
        return {"name": name, "created_at": shapes.CREATED, "updated_at": shapes.CREATED}

    def _environment(self, name: str, request: Request) -> Response:
        full = "/".join(request.path.split("/")[2:4])
        if request.method == "GET":
            return (200, self._env(name, full), {}) if name in self.environments else NOT_FOUND
        if request.method != "PUT":
            return NOT_FOUND
        body = request.json() or {}
        reviewers = []
        for reviewer in body.get("reviewers") or []:
            login = next((u for u, i in self.users.items() if i == reviewer.get("id")), None)
            if reviewer.get("type") != "User" or login is None:
                return invalid("invalid reviewer", field="reviewers")
            reviewers.append({"type": "User", "reviewer": self._user(login)})
        rules: list[dict[str, Any]] = []
        if reviewers:
            rule_id = next(self._ids)
            rules.append(
                {
                    "id": rule_id,
                    "node_id": f"GA_kwDO{rule_id:08d}",
                    "type": "required_reviewers",
                    "prevent_self_review": False,
                    "reviewers": reviewers,
                }
            )
        policy = body.get("deployment_branch_policy")
        if policy:
            rule_id = next(self._ids)
            rules.append({"id": rule_id, "node_id": f"GA_kwDO{rule_id:08d}", "type": "branch_policy"})
        self.environments[name] = {
            "id": self.environments.get(name, {}).get("id") or next(self._ids),
            "name": name,
            "protection_rules": rules,
            "deployment_branch_policy": policy,
        }
        self.branch_policies.setdefault(name, [])
        self.writes += 1
        return 200, self._env(name, "/".join(request.path.split("/")[2:4])), {}

    def _branch_policy(self, env: str, request: Request, policy_id: int | None = None) -> Response:
        if env not in self.environments:
            return NOT_FOUND
        items = [
            {"id": i, "node_id": f"MDE2OkdhdGVCcmFuY2hQb2xpY3k{i}", "name": n, "type": "branch"}
            for n in self.branch_policies[env]
            for i in [self._policy_id(env, n)]
        ]
        if policy_id is not None:  # "Get a deployment branch policy", where a duplicate's 303 points
            found = next((item for item in items if item["id"] == policy_id), None)
            return (200, found, {}) if found and request.method == "GET" else NOT_FOUND
        if request.method == "GET":
            return self._page(request, items, "branch_policies")
        # GitHub's description of "Create a deployment branch policy": 404 when the environment's
        # deployment_branch_policy.custom_branch_policies is false (or it has no policy at all), 303
        # "if the same branch name pattern already exists", pointing at that policy.
        if not (self.environments[env].get("deployment_branch_policy") or {}).get("custom_branch_policies"):
            return NOT_FOUND
        name = str((request.json() or {}).get("name", ""))
        existing = next((item for item in items if item["name"] == name), None)
        if existing is not None:
            return 303, None, {"Location": f"{shapes.API}{request.path}/{existing['id']}"}
        self.branch_policies[env].append(name)
        self.writes += 1
        number = self._policy_id(env, name)
        return (
            200,
            {
                "id": number,
                "node_id": f"MDE2OkdhdGVCcmFuY2hQb2xpY3k{number}",
                "name": name,
                "type": "branch",
            },
            {},
        )

    def _policy_id(self, env: str, name: str) -> int:
        """A policy's id, stable for its life (GitHub's ids are never reused)."""
        return self._policy_ids.setdefault((env, name), next(self._ids))

    def _delete_branch_policy(self, env: str, policy_id: int) -> Response:
        """REST "Delete a deployment branch policy": 204 No Content."""
        found = [n for n in self.branch_policies.get(env, []) if self._policy_ids.get((env, n)) == policy_id]
        if env not in self.environments or not found:
            return NOT_FOUND
        self.branch_policies[env].remove(found[0])
        del self._policy_ids[(env, found[0])]
        self.writes += 1
        return 204, None, {}

    def _secret(self, env: str, name: str | None, request: Request) -> Response:
        if env not in self.environments:
            return NOT_FOUND
        stored = self.secrets.setdefault(env, {})
        if name == "public-key" and request.method == "GET":
            key = self.sealed_key(env).public_key.encode()
            return 200, {"key_id": f"key-{env}", "key": base64.b64encode(key).decode()}, {}
        if name is None and request.method == "GET":
            return self._page(request, [self._secret_item(n) for n in sorted(stored)], "secrets")
        if name and request.method == "PUT":
            body = request.json() or {}
            if body.get("key_id") != f"key-{env}":  # not documented for this operation; GitHub does answer 422
                return invalid("bad key_id", field="key_id")
            value = SealedBox(self.sealed_key(env)).decrypt(base64.b64decode(body["encrypted_value"]))
            created = name not in stored
            stored[name] = value.decode()
            self.writes += 1
            return (201, {}, {}) if created else (204, None, {})
        if name and name != "public-key" and request.method == "DELETE":
            # REST "Delete an environment secret": 204 No Content; a name it does not hold, 404
            if name not in stored:
                return NOT_FOUND
            del stored[name]
            self.writes += 1
            return 204, None, {}
        return NOT_FOUND

    def _ruleset(self, full: str, rest: str, request: Request) -> Response:
        if rest == "/rulesets" and request.method == "GET":
            summaries = [
                {
                    k: v
                    for k, v in self._answer_ruleset(r, full).items()
                    if k not in ("rules", "conditions", "bypass_actors")
                }
                for r in self.rulesets.values()
            ]
            return self._page(request, summaries)
        if rest == "/rulesets" and request.method == "POST":
            body = request.json() or {}
            if any(r["name"] == body.get("name") for r in self.rulesets.values()):
                return invalid("Name must be unique", "already_exists", "name")
            ruleset = {**body, "id": next(self._ids)}
            self.rulesets[ruleset["id"]] = ruleset
            self.writes += 1
            return 201, self._answer_ruleset(ruleset, full), {}
        if (m := re.fullmatch(r"/rulesets/(\d+)", rest)) and int(m[1]) in self.rulesets:
            if request.method == "PUT":
                self.rulesets[int(m[1])] = {**(request.json() or {}), "id": int(m[1])}
                self.writes += 1
            return 200, self._answer_ruleset(self.rulesets[int(m[1])], full), {}
        return NOT_FOUND

    def _ref(self, full: str, branch: str) -> dict[str, Any]:
        """``git-ref``: a branch head."""
        sha = self.branches[branch]
        return {
            "ref": f"refs/heads/{branch}",
            "node_id": f"REF_kwDO{abs(hash(branch)) % 10**8:08d}",
            "url": f"{shapes.API}/repos/{full}/git/refs/heads/{branch}",
            "object": {"type": "commit", "sha": sha, "url": f"{shapes.API}/repos/{full}/git/commits/{sha}"},
        }

    def _answer_ruleset(self, ruleset: dict[str, Any], full: str) -> dict[str, Any]:
        """``repository-ruleset``: what was stored with GitHub's defaults filled in, plus where it
        lives and who may bypass it. GitHub answers a ruleset with the parameters a request left
        out at their defaults (REST "Get a repository ruleset": a pull_request rule reads back with
        ``required_reviewers: []`` and every merge method allowed, a status-check rule with
        ``do_not_enforce_on_create: false``), so a comparison of exact JSON never matches."""
        url = f"{shapes.API}/repos/{full}/rulesets/{ruleset['id']}"
        return {
            **_with_defaults(ruleset),
            "node_id": f"RRS_lACkVXNlcs{ruleset['id']:08d}",
            "source_type": "Repository",
            "source": full,
            "current_user_can_bypass": "never",
            "created_at": shapes.CREATED,
            "updated_at": shapes.CREATED,
            "_links": {
                "self": {"href": url},
                "html": {"href": f"https://github.com/{full}/rules/{ruleset['id']}"},
            },
        }


RULE_DEFAULTS: dict[str, dict[str, Any]] = {
    "pull_request": {"required_reviewers": [], "allowed_merge_methods": ["merge", "squash", "rebase"]},
    "required_status_checks": {"do_not_enforce_on_create": False},
}


def _with_defaults(ruleset: dict[str, Any]) -> dict[str, Any]:
    answered = copy.deepcopy(ruleset)
    for rule in answered.get("rules") or []:
        defaults = RULE_DEFAULTS.get(rule.get("type", ""))
        if defaults:
            rule["parameters"] = {**copy.deepcopy(defaults), **(rule.get("parameters") or {})}
    ref_name = (answered.get("conditions") or {}).get("ref_name")
    if isinstance(ref_name, dict):
        ref_name.setdefault("exclude", [])
    return answered


def _pointed_at(value: Any, base: str) -> Any:
    """``value`` with every URL under GitHub's API host moved under ``base`` (lists, objects,
    strings; anything else as is)."""
    if isinstance(value, str):
        return (
            base + value[len(shapes.API) :]
            if value.startswith(shapes.API)
            else value.replace(f"<{shapes.API}", f"<{base}")
        )
    if isinstance(value, dict):
        return {key: _pointed_at(item, base) for key, item in value.items()}
    if isinstance(value, list):
        return [_pointed_at(item, base) for item in value]
    return value
