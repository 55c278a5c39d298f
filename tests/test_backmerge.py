"""develop must contain main: checked with real git repositories and a local GitHub API."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_tools.__main__ import main
from ci_tools.backmerge import backmerge, contains
from ci_tools.errors import ConfigError, RemoteError
from ci_tools.sandbox.http import Request, Response, StandInServer
from ci_tools.sandbox.world import git


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A clone whose origin has main and develop, develop up to date with main."""
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    git(origin, "commit", "-q", "--allow-empty", "-m", "one")
    git(origin, "branch", "develop")
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    monkeypatch.chdir(clone)
    return origin, clone


def hotfix_on_main(origin: Path, clone: Path) -> None:
    git(origin, "commit", "-q", "--allow-empty", "-m", "hotfix")
    git(clone, "fetch", "-q")


class FakeGitHub(StandInServer):
    """POST /repos/{repo}/pulls as GitHub answers it: 201, 422 when one exists, 403 when barred."""

    def __init__(self, mode: str = "create") -> None:
        super().__init__()
        self.mode = mode
        self.created: list[dict] = []

    def handle(self, request: Request) -> Response:
        if request.headers.get("Authorization") != "Bearer ghs_testtoken123":
            return 401, {"message": "Bad credentials"}, {}
        if request.method == "GET":
            return 200, [{"html_url": "https://github.com/o/r/pull/7"}], {}
        if self.mode == "forbidden":
            return (
                403,
                {"message": "GitHub Actions is not permitted to create or approve pull requests."},
                {},
            )
        if self.mode == "exists" or self.created:
            return (
                422,
                {
                    "message": "Validation Failed",
                    "errors": [{"message": "A pull request already exists for o:main."}],
                },
                {},
            )
        if self.mode == "broken":
            return 500, {"message": "oops"}, {}
        self.created.append(request.json())
        return 201, {"html_url": "https://github.com/o/r/pull/8"}, {}


def test_nothing_to_do_when_develop_contains_main(repo):
    assert contains("origin/develop", "origin/main")
    assert not backmerge("o/r", "ghs_testtoken123").needed


def test_opens_the_pr_once(repo, monkeypatch):
    hotfix_on_main(*repo)
    with FakeGitHub() as api:
        monkeypatch.setenv("GITHUB_API_URL", api.url)
        first = backmerge("o/r", "ghs_testtoken123")
        second = backmerge("o/r", "ghs_testtoken123")
    assert first.pr_url == "https://github.com/o/r/pull/8"
    assert api.created == [api.created[0]]
    assert api.created[0]["head"] == "main"
    assert api.created[0]["base"] == "develop"
    assert second.pr_url == "https://github.com/o/r/pull/7"  # the existing one, not a new one


def test_explains_what_to_run_when_the_token_may_not_open_prs(repo, monkeypatch, tmp_path, capsys):
    hotfix_on_main(*repo)
    summary = tmp_path / "summary"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_testtoken123")
    with FakeGitHub("forbidden") as api:
        monkeypatch.setenv("GITHUB_API_URL", api.url)
        assert main(["flow", "backmerge", "--repo", "o/r"]) == 0
    text = summary.read_text()
    assert "may not open PRs" in text
    assert "git merge --no-ff origin/main" in text
    assert "ghs_testtoken123" not in text + capsys.readouterr().out


def test_without_a_token_it_says_what_to_run(repo):
    hotfix_on_main(*repo)
    result = backmerge(None, None)
    assert result.needed
    assert "git switch -c backmerge/main-into-develop origin/develop" in result.message


def test_api_failure_is_a_remote_error_with_the_manual_steps(repo, monkeypatch):
    hotfix_on_main(*repo)
    with FakeGitHub("broken") as api:
        monkeypatch.setenv("GITHUB_API_URL", api.url)
        with pytest.raises(RemoteError, match=r"HTTP 500.*git fetch origin"):
            backmerge("o/r", "ghs_testtoken123")


def test_missing_branches_are_a_config_error(repo):
    with pytest.raises(ConfigError, match="fetch-depth: 0"):
        contains("origin/nope", "origin/main")
