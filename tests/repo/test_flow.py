"""Every allowed and refused branch pair, table-driven."""

from __future__ import annotations

import pytest

from ci_tools.__main__ import main
from ci_tools.repo.flow import check_name, check_pair
from ci_tools.settings import DEFAULT_FLOW, load_config
from sandbox.github import FakeGitHub

FLOW = load_config().flow
REPO = "owner/mindmate"

ALLOWED = [
    ("develop", "feature/memory-export"),
    ("develop", "fix/typo-in-greeting"),
    ("develop", "main"),  # back-merge after a release or hotfix
    ("main", "develop"),
    ("main", "hotfix/token-refresh"),
    ("develop", "dependabot/pip/develop/python-4c2a"),  # '**' crosses '/'
    ("release/1.0", "anything-goes"),  # bases outside the flow are not governed
]
REFUSED = [
    ("main", "feature/memory-export", "retarget this PR to develop"),
    ("main", "fix/typo", "retarget this PR to develop"),
    ("main", "dependabot/pip/main/python-4c2a", "retarget this PR to develop"),
    ("develop", "hotfix/urgent", "retarget this PR to main"),
    ("develop", "feature/", "not a valid branch name"),
    ("develop", "Feature/X", "did you mean feature/x?"),
    ("develop", "feature/x/../main", "not a valid branch name"),
    ("develop", "feature/a/b", "matches no branch"),  # '*' never crosses '/'
    ("main", "main", "retarget this PR to develop"),
    ("develop", "develop", "retarget this PR to main"),
    ("main", "release/1.0", "matches no branch"),
    ("develop", "feature/x y", "not a valid branch name"),
    ("develop", "feature/.hidden", "not a valid branch name"),
    ("develop", "feature/x.lock", "not a valid branch name"),
    ("develop", "/feature/x", "not a valid branch name"),
]


@pytest.mark.parametrize(("base", "head"), ALLOWED)
def test_allowed_pairs(base, head):
    verdict = check_pair(FLOW, base, head, head_repo=REPO, repo=REPO)
    assert verdict.allowed, verdict.message


@pytest.mark.parametrize(("base", "head", "why"), REFUSED)
def test_refused_pairs_explain_the_right_target(base, head, why):
    verdict = check_pair(FLOW, base, head, head_repo=REPO, repo=REPO)
    assert not verdict.allowed
    assert why in verdict.message


@pytest.mark.parametrize("base", ["main", "develop"])
def test_fork_heads_never_go_straight_in(base):
    verdict = check_pair(FLOW, base, "feature/from-fork", head_repo="stranger/mindmate", repo=REPO)
    assert not verdict.allowed
    assert "fork stranger/mindmate" in verdict.message
    # the same branch name from this repository is fine when the base is right
    assert check_pair(FLOW, "develop", "feature/from-fork", head_repo=REPO, repo=REPO.upper()).allowed


def test_retargeted_pr_is_rechecked_against_its_new_base():
    """Retargeting fires only `edited`; the check is stateless, so the new base decides."""
    assert check_pair(FLOW, "develop", "feature/x").allowed
    retargeted = check_pair(FLOW, "main", "feature/x")
    assert not retargeted.allowed
    assert "retarget this PR to develop" in retargeted.message


def test_default_flow_matches_the_documented_one():
    assert {k: tuple(v) for k, v in FLOW.items()} == DEFAULT_FLOW


@pytest.mark.parametrize(
    ("branch", "ok"),
    [
        ("feature/memory-export", True),
        ("fix/a1", True),
        ("hotfix/token-refresh", True),
        ("main", True),
        ("develop", True),
        ("feature/", False),
        ("Feature/X", False),
        ("feature/My_Thing", False),
        ("feature/x/../main", False),
        ("feature/-leading", False),
        ("feature/double--dash", False),
        ("wip", False),
        ("feature/a/b", False),
    ],
)
def test_branch_names(branch, ok):
    assert check_name(branch).allowed is ok


def test_name_suggestions():
    assert "feature/my-thing" in check_name("feature/My_Thing").message
    assert "hotfix/urgent-fix" in check_name("hotfix/Urgent Fix").message
    assert "feature/wip" in check_name("wip").message


def test_cli_exit_codes_and_summary(capsys, tmp_path, monkeypatch):
    assert main(["flow", "check", "--base", "develop", "--head", "feature/x"]) == 0
    assert "follows the flow" in capsys.readouterr().out
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary"))
    assert main(["flow", "check", "--base", "main", "--head", "feature/x"]) == 5
    captured = capsys.readouterr()
    assert captured.err.strip().endswith("develop, hotfix/* → main)")
    assert captured.out.startswith("::error title=ci-tools flow")
    assert "retarget this PR to develop" in (tmp_path / "summary").read_text()
    assert main(["flow", "check", "--base", "", "--head", "feature/x"]) == 2
    assert main(["flow", "name", "feature/ok-name"]) == 0
    assert main(["flow", "name", "Feature/X"]) == 5
    assert main(["flow", "name", " "]) == 2


@pytest.mark.parametrize("mode", ["", "   ", "environmnets"])
def test_flow_arrived_fails_closed_when_the_mode_is_unset_or_unknown(mode, monkeypatch, capsys):
    """production.yml passes vars.CI_TOOLS_GITHUB_MODE: unset (github setup never ran) or unknown,
    nobody knows whether a ruleset guards main, so nothing deploys."""
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    assert main(["flow", "arrived", "--commit", "a" * 40, "--base", "main", "--mode", mode]) == 3
    err = capsys.readouterr().err
    assert "CI_TOOLS_GITHUB_MODE" in err and "ci-tools github setup --apply" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_flow_arrived_checks_the_pr_only_where_no_ruleset_guards_main(monkeypatch, capsys):
    sha = "b" * 40
    with FakeGitHub(private=True, plan="free") as github:
        monkeypatch.setenv("GITHUB_API_URL", github.url)
        monkeypatch.setenv("GITHUB_TOKEN", github.token)
        arrived = ["flow", "arrived", "--commit", sha, "--repo", "mindmate/mindmate-release"]
        assert main([*arrived, "--mode", "environments"]) == 0  # rulesets held it: nothing asked
        assert "rulesets guard main" in capsys.readouterr().out
        assert main([*arrived, "--mode", "repository-secrets no-rulesets"]) == 5
        github.merged("develop", "main", sha)
        assert main([*arrived, "--mode", "repository-secrets no-rulesets"]) == 0
