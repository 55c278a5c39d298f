"""A local GitHub REST API on loopback: pull requests, and the repository settings the pipeline owns.

Shapes and errors follow GitHub's REST documentation. Settings: environments
(``PUT /repos/{o}/{r}/environments/{name}`` with reviewers and a custom deployment
branch policy; ``…/deployment-branch-policies``), environment secrets (``…/secrets``,
``…/secrets/public-key``; values arrive sealed to the environment's Curve25519 key and
the stand-in opens them, so tests see what arrived), repository secrets names,
rulesets (``/rulesets`` list without rules, ``/rulesets/{id}`` with them; a name taken
twice is 422), ``/actions/permissions/workflow``, the repository (``default_branch``,
``permissions.admin``) and users. Lists honour ``per_page``/``page`` with a ``Link``
header. A second, read-only token gets 403 "Resource not accessible by integration"
on everything that needs admin rights.

Pulls: ``POST
/repos/{owner}/{repo}/pulls`` answers 201 with the pull request, 422 "Validation
Failed" when an open PR for the same head and base exists, 403 when the workflow
token may not open PRs (the repository setting "Allow GitHub Actions to create and
approve pull requests" is off), 401 "Bad credentials"; ``GET`` lists them filtered
by ``head`` (``owner:branch``), ``base`` and ``state``.
"""

from __future__ import annotations

import base64
import itertools
import re
from typing import Any

from nacl.public import PrivateKey, SealedBox

from ci_tools.sandbox.http import Request, Response, StandInServer

_PULLS = re.compile(r"^/repos/(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)/pulls$")
_REPO = re.compile(r"^/repos/(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)(?P<rest>/.*)?$")
READ_ONLY_TOKEN = "ghs_sandboxReadOnly0123456789"  # noqa: S105 - the stand-in's token without admin
NO_ADMIN: Response = (
    403,
    {"message": "Resource not accessible by integration", "status": "403"},
    {},
)


class FakeGitHub(StandInServer):
    name = "github-stand-in"

    def __init__(
        self,
        token: str = "ghs_sandboxToken0123456789",  # noqa: S107 - the stand-in's own token
        *,
        may_open_prs: bool = True,
    ) -> None:
        super().__init__()
        self.token = token
        self.may_open_prs = may_open_prs
        self.fail_with: int | None = None  # fault: every call answers this status
        self.pulls: list[dict[str, Any]] = []
        self._numbers = itertools.count(1)
        self._ids = itertools.count(100)
        self.default_branch = "main"
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
        self.writes = 0  # every change a call made: setup twice must not add any
        self._keys: dict[str, PrivateKey] = {}

    def handle(self, request: Request) -> Response:
        admin = request.headers.get("Authorization") in (
            f"Bearer {self.token}",
            f"token {self.token}",
        )
        if request.headers.get("Authorization") in (f"Bearer {READ_ONLY_TOKEN}",):
            return self._settings(request, admin=False)
        if request.headers.get("Authorization") not in (
            f"Bearer {self.token}",
            f"token {self.token}",
        ):
            return 401, {"message": "Bad credentials", "status": "401"}, {}
        if self.fail_with:
            return self.fail_with, {"message": "Server Error"}, {}
        match = _PULLS.match(request.path)
        if not match:
            return self._settings(request, admin=admin)
        full_name = f"{match['owner']}/{match['repo']}"
        if request.method == "GET":
            return 200, self._list(full_name, request.query), {}
        if request.method == "POST":
            return self._create(full_name, match["owner"], request.json() or {})
        return 404, {"message": "Not Found"}, {}

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
            return 403, {"message": "GitHub Actions is not permitted to create or approve pull requests.", "status": "403"}, {}  # fmt: skip
        head, base = str(body.get("head", "")), str(body.get("base", ""))
        if not head or not base or not body.get("title"):
            return 422, {"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "missing_field"}]}, {}  # fmt: skip
        label = head if ":" in head else f"{owner}:{head}"
        if any(
            p["state"] == "open" and p["head"]["label"] == label and p["base"]["ref"] == base
            for p in self.pulls
        ):
            return 422, {"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom", "message": f"A pull request already exists for {label}."}]}, {}  # fmt: skip
        number = next(self._numbers)
        pull = {
            "number": number,
            "state": "open",
            "title": body["title"],
            "body": body.get("body"),
            "html_url": f"https://github.com/{full_name}/pull/{number}",
            "head": {"ref": label.split(":", 1)[1], "label": label},
            "base": {"ref": base, "repo": {"full_name": full_name}},
        }
        with self.lock:
            self.pulls.append(pull)
        return 201, pull, {}

    # -- repository settings -------------------------------------------------------------
    def sealed_key(self, env: str) -> PrivateKey:
        return self._keys.setdefault(env, PrivateKey.generate())

    def _page(self, request: Request, items: list[Any], key: str | None = None) -> Response:
        per_page = max(1, min(100, int(request.query.get("per_page", 30))))
        page = max(1, int(request.query.get("page", 1)))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            headers["Link"] = (
                f'<{self.url}{request.path}?per_page={per_page}&page={page + 1}>; rel="next"'
            )
        body: Any = {"total_count": len(items), key: chunk} if key else chunk
        return 200, body, headers

    def _settings(self, request: Request, *, admin: bool) -> Response:
        if match := re.fullmatch(r"/users/([\w-]+)", request.path):
            found = self.users.get(match[1])
            return (
                (200, {"login": match[1], "id": found, "type": "User"}, {})
                if found
                else (404, {"message": "Not Found"}, {})
            )
        match = _REPO.match(request.path)
        if not match:
            return 404, {"message": "Not Found", "status": "404"}, {}
        full, rest, method = (
            f"{match['owner']}/{match['repo']}",
            match["rest"] or "",
            request.method,
        )
        if rest == "" and method == "GET":
            return 200, {"full_name": full, "default_branch": self.default_branch,
                         "permissions": {"admin": admin, "push": True, "pull": True}}, {}  # fmt: skip
        if not admin:
            return NO_ADMIN
        if rest == "" and method == "PATCH":
            self.default_branch = str(
                (request.json() or {}).get("default_branch", self.default_branch)
            )
            self.writes += 1
            return 200, {"full_name": full, "default_branch": self.default_branch}, {}
        if rest == "/environments" and method == "GET":
            return self._page(request, list(self.environments.values()), "environments")
        if m := re.fullmatch(r"/environments/([\w-]+)", rest):
            return self._environment(m[1], request)
        if m := re.fullmatch(r"/environments/([\w-]+)/deployment-branch-policies", rest):
            return self._branch_policy(m[1], request)
        if m := re.fullmatch(r"/environments/([\w-]+)/secrets(?:/([\w-]+))?", rest):
            return self._secret(m[1], m[2], request)
        if rest == "/actions/secrets" and method == "GET":
            return self._page(request, [{"name": n} for n in sorted(self.repo_secrets)], "secrets")
        if rest.startswith("/rulesets"):
            return self._ruleset(rest, request)
        if rest == "/actions/permissions/workflow":
            if method == "PUT":
                self.workflow_permissions.update(request.json() or {})
                self.writes += 1
                return 204, None, {}
            return 200, dict(self.workflow_permissions), {}
        return 404, {"message": "Not Found", "status": "404"}, {}

    def _environment(self, name: str, request: Request) -> Response:
        if request.method == "GET":
            env = self.environments.get(name)
            return (200, env, {}) if env else (404, {"message": "Not Found"}, {})
        if request.method != "PUT":
            return 404, {"message": "Not Found"}, {}
        body = request.json() or {}
        reviewers = []
        for reviewer in body.get("reviewers") or []:
            login = next((u for u, i in self.users.items() if i == reviewer.get("id")), None)
            if reviewer.get("type") != "User" or login is None:
                return (
                    422,
                    {"message": "Validation Failed", "errors": [{"message": "invalid reviewer"}]},
                    {},
                )
            reviewers.append({"type": "User", "reviewer": {"login": login, "id": reviewer["id"]}})
        rules: list[dict[str, Any]] = []
        if reviewers:
            rules.append(
                {"id": next(self._ids), "type": "required_reviewers", "reviewers": reviewers}
            )
        policy = body.get("deployment_branch_policy")
        if policy:
            rules.append({"id": next(self._ids), "type": "branch_policy"})
        self.environments[name] = {"id": self.environments.get(name, {}).get("id") or next(self._ids), "name": name,
                                   "protection_rules": rules, "deployment_branch_policy": policy}  # fmt: skip
        self.branch_policies.setdefault(name, [])
        self.writes += 1
        return 200, self.environments[name], {}

    def _branch_policy(self, env: str, request: Request) -> Response:
        if env not in self.environments:
            return 404, {"message": "Not Found"}, {}
        if request.method == "GET":
            items = [
                {"id": i, "name": n, "type": "branch"}
                for i, n in enumerate(self.branch_policies[env], 1)
            ]
            return self._page(request, items, "branch_policies")
        name = str((request.json() or {}).get("name", ""))
        if name in self.branch_policies[env]:
            return 303, None, {"Location": request.path}  # GitHub: the policy exists already
        self.branch_policies[env].append(name)
        self.writes += 1
        return 200, {"id": len(self.branch_policies[env]), "name": name, "type": "branch"}, {}

    def _secret(self, env: str, name: str | None, request: Request) -> Response:
        if env not in self.environments:
            return 404, {"message": "Not Found"}, {}
        stored = self.secrets.setdefault(env, {})
        if name == "public-key" and request.method == "GET":
            key = self.sealed_key(env).public_key.encode()
            return 200, {"key_id": f"key-{env}", "key": base64.b64encode(key).decode()}, {}
        if name is None and request.method == "GET":
            return self._page(request, [{"name": n} for n in sorted(stored)], "secrets")
        if name and request.method == "PUT":
            body = request.json() or {}
            if body.get("key_id") != f"key-{env}":
                return (
                    422,
                    {"message": "Validation Failed", "errors": [{"message": "bad key_id"}]},
                    {},
                )
            value = SealedBox(self.sealed_key(env)).decrypt(
                base64.b64decode(body["encrypted_value"])
            )
            created = name not in stored
            stored[name] = value.decode()
            self.writes += 1
            return (201, {}, {}) if created else (204, None, {})
        return 404, {"message": "Not Found"}, {}

    def _ruleset(self, rest: str, request: Request) -> Response:
        if rest == "/rulesets" and request.method == "GET":
            summaries = [
                {k: v for k, v in r.items() if k != "rules"} for r in self.rulesets.values()
            ]
            return self._page(request, summaries)
        if rest == "/rulesets" and request.method == "POST":
            body = request.json() or {}
            if any(r["name"] == body.get("name") for r in self.rulesets.values()):
                return 422, {"message": "Validation Failed", "errors": ["Name must be unique"]}, {}
            ruleset = {**body, "id": next(self._ids), "source_type": "Repository"}
            self.rulesets[ruleset["id"]] = ruleset
            self.writes += 1
            return 201, ruleset, {}
        if (m := re.fullmatch(r"/rulesets/(\d+)", rest)) and int(m[1]) in self.rulesets:
            if request.method == "PUT":
                self.rulesets[int(m[1])] = {
                    **(request.json() or {}),
                    "id": int(m[1]),
                    "source_type": "Repository",
                }
                self.writes += 1
            return 200, self.rulesets[int(m[1])], {}
        return 404, {"message": "Not Found"}, {}
