"""A local GitHub REST API: the pull-request endpoints the back-merge uses, on loopback.

Shapes and errors follow GitHub's REST documentation for "Pulls": ``POST
/repos/{owner}/{repo}/pulls`` answers 201 with the pull request, 422 "Validation
Failed" when an open PR for the same head and base exists, 403 when the workflow
token may not open PRs (the repository setting "Allow GitHub Actions to create and
approve pull requests" is off), 401 "Bad credentials"; ``GET`` lists them filtered
by ``head`` (``owner:branch``), ``base`` and ``state``.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from ci_tools.sandbox.http import Request, Response, StandInServer

_PULLS = re.compile(r"^/repos/(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)/pulls$")


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

    def handle(self, request: Request) -> Response:
        if request.headers.get("Authorization") not in (
            f"Bearer {self.token}",
            f"token {self.token}",
        ):
            return 401, {"message": "Bad credentials", "status": "401"}, {}
        if self.fail_with:
            return self.fail_with, {"message": "Server Error"}, {}
        match = _PULLS.match(request.path)
        if not match:
            return 404, {"message": "Not Found", "status": "404"}, {}
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
