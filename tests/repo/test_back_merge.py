"""develop must contain main: checked with real git repositories and a local GitHub API."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_tools.__main__ import main
from ci_tools.errors import ConfigError, RemoteError
from ci_tools.repo.back_merge import backmerge, contains
from sandbox.github import FakeGitHub
from sandbox.world import git
from tests.support import context


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


TOKEN = "ghs_testtoken123"


def test_nothing_to_do_when_develop_contains_main(repo):
    assert contains("origin/develop", "origin/main")
    assert not backmerge(context(), "o/r", TOKEN).needed


def test_opens_the_pr_once(repo, monkeypatch):
    hotfix_on_main(*repo)
    with FakeGitHub(TOKEN) as api:
        monkeypatch.setenv("GITHUB_API_URL", api.url)
        first = backmerge(context(), "o/r", TOKEN)
        second = backmerge(context(), "o/r", TOKEN)
    assert first.pr_url == "https://github.com/o/r/pull/1"
    (pull,) = api.pulls
    assert (pull["head"]["ref"], pull["base"]["ref"]) == ("main", "develop")
    assert second.pr_url == first.pr_url  # GitHub's 422 "already exists": the existing one


def test_explains_what_to_run_when_the_token_may_not_open_prs(repo, monkeypatch, tmp_path, capsys):
    hotfix_on_main(*repo)
    summary = tmp_path / "summary"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    with FakeGitHub(TOKEN, may_open_prs=False) as api:
        monkeypatch.setenv("GITHUB_API_URL", api.url)
        assert main(["flow", "backmerge", "--repo", "o/r"]) == 0
    text = summary.read_text()
    assert "may not open PRs" in text
    assert "git merge --no-ff origin/main" in text
    assert TOKEN not in text + capsys.readouterr().out


def test_without_a_token_it_says_what_to_run(repo):
    hotfix_on_main(*repo)
    result = backmerge(context(), None, None)
    assert result.needed
    assert "git switch -c backmerge/main-into-develop origin/develop" in result.message


def test_api_failure_is_a_remote_error_with_the_manual_steps(repo, monkeypatch):
    hotfix_on_main(*repo)
    monkeypatch.setenv("CI_TOOLS_TIMEOUT", "1")  # GitHub answers 500 to everything: retries end soon
    with FakeGitHub(TOKEN) as api:
        api.fail_with = 500
        monkeypatch.setenv("GITHUB_API_URL", api.url)
        with pytest.raises(RemoteError, match=r"HTTP 500; no back-merge PR was opened.*git fetch origin"):
            backmerge(context(), "o/r", TOKEN)


def test_missing_branches_are_a_config_error(repo):
    with pytest.raises(ConfigError, match="fetch-depth: 0"):
        contains("origin/nope", "origin/main")
