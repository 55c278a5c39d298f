"""``ci-tools hold --on | --off | --check`` against the GitHub REST stand-in, and ``status`` showing it."""

from __future__ import annotations

import json

import pytest

from ci_tools.__main__ import main
from ci_tools.pipeline.hold import HELD_VARIABLE
from sandbox.github import READ_ONLY_TOKEN
from tests.support import use

REPO = "mindmate/mindmate-release"
LINE = "releases held since {since} by owner-on-a-phone (the bot forgets names): dispatch hold.yml with hold off"


def hold(*args: str) -> int:
    return main(["hold", *args, "--repo", REPO])


def test_on_then_check_refuses_in_one_line_then_off_lets_releases_go(github, capsys):
    assert hold("--check") == 0  # nothing held yet
    assert hold("--on", "--by", "owner-on-a-phone", "--reason", "the bot forgets names") == 0
    stored = json.loads(github.variables[HELD_VARIABLE])
    assert stored["by"] == "owner-on-a-phone" and stored["reason"] == "the bot forgets names"
    out = capsys.readouterr().out
    assert LINE.format(since=stored["since"]) in out

    # production.yml's way (vars.CI_TOOLS_RELEASES_HELD as --held) and through the API: the same line
    for check in (("--check", "--held", github.variables[HELD_VARIABLE]), ("--check",)):
        assert hold(*check) == 3
        err = capsys.readouterr().err
        assert err == f"ci-tools: configuration: {LINE.format(since=stored['since'])}\n"

    assert hold("--off") == 0
    assert HELD_VARIABLE not in github.variables
    assert "hold lifted (releases held since" in capsys.readouterr().out
    assert hold("--check") == 0
    assert hold("--check", "--held", "") == 0  # an unset variable reaches the workflow as ""
    assert hold("--off") == 0
    assert "releases were not held: nothing to lift" in capsys.readouterr().out


def test_a_second_hold_replaces_the_first_and_says_so(github, capsys):
    assert hold("--on", "--by", "a", "--reason", "first") == 0
    assert hold("--on", "--by", "b", "--reason", "second") == 0
    assert json.loads(github.variables[HELD_VARIABLE])["reason"] == "second"
    assert "(it replaced: releases held since" in capsys.readouterr().out


def test_a_value_typed_by_hand_still_holds(capsys):
    """Someone set the variable in GitHub's settings page: the hold fails closed, and says what it found."""
    assert main(["hold", "--check", "--held", "yes please"]) == 3
    err = capsys.readouterr().err
    assert "releases held since an unknown time by someone" in err and "'yes please'" in err
    assert "dispatch hold.yml with hold off" in err and err.count("\n") == 1


def test_without_a_token_or_for_staging_it_is_one_line(github, monkeypatch, capsys):
    token = github.token
    monkeypatch.delenv("GITHUB_TOKEN")
    assert hold("--on", "--reason", "x") == 3
    err = capsys.readouterr().err
    assert "missing secret GITHUB_TOKEN" in err and "GITHUB_ADMIN_TOKEN" in err and err.count("\n") == 1
    assert not github.variables
    monkeypatch.setenv("GITHUB_TOKEN", token)
    assert hold("--on", "--env", "staging") == 2
    err = capsys.readouterr().err
    assert "only production's releases can be held" in err and "Traceback" not in err and token not in err
    assert not github.variables


def test_help_names_the_variable_and_the_token(capsys):
    with pytest.raises(SystemExit):
        main(["hold", "--help"])
    text = capsys.readouterr().out
    assert HELD_VARIABLE in text and "GITHUB_TOKEN" in text and "Run workflow" in text


def test_status_shows_the_hold(world, github, monkeypatch, capsys):
    use(monkeypatch, {**world.secrets("production"), "GITHUB_REPOSITORY": REPO})
    assert hold("--on", "--by", "owner-on-a-phone", "--reason", "the bot forgets names") == 0
    capsys.readouterr()
    main(["status", "production", "--json"])
    found = {i["name"]: i for i in json.loads(capsys.readouterr().out)["items"]}
    held = found["production: releases"]
    assert held["detail"].startswith("releases held since") and "owner-on-a-phone" in held["detail"]
    assert held["fix"] == "dispatch hold.yml with hold off"
    assert hold("--off") == 0
    capsys.readouterr()
    main(["status", "production", "--json"])
    found = {i["name"]: i for i in json.loads(capsys.readouterr().out)["items"]}
    assert found["production: releases"]["detail"] == "not held"


def test_a_workflow_token_cannot_write_the_hold_and_is_told_which_permission(github, monkeypatch, capsys):
    """GITHUB_TOKEN has no permission for repository variables: GitHub answers 403."""
    monkeypatch.setenv("GITHUB_TOKEN", READ_ONLY_TOKEN)
    assert hold("--on", "--reason", "x") == 3
    err = capsys.readouterr().err
    assert "GitHub answered 403" in err and "Variables permission" in err and "GITHUB_ADMIN_TOKEN" in err
    assert READ_ONLY_TOKEN not in err and err.count("\n") == 1 and not github.variables


def test_check_again_reads_the_hold_through_the_api_before_the_deploy(github, capsys):
    """production.yml's second check: a hold set after the job started (vars.* were read then) stops it."""
    assert hold("--check", "--again") == 0
    assert "releases are not held (read again before the deploy)" in capsys.readouterr().out
    assert hold("--on", "--by", "owner-on-a-phone", "--reason", "the bot forgets names") == 0
    capsys.readouterr()
    assert hold("--check", "--again") == 3
    err = capsys.readouterr().err
    assert "(the bot forgets names): dispatch hold.yml with hold off" in err and err.count("\n") == 1


def test_check_again_without_a_token_says_the_hold_was_read_at_the_start_only(github, monkeypatch, capsys):
    token = github.token
    monkeypatch.delenv("GITHUB_TOKEN")
    assert hold("--check", "--again") == 0
    out = capsys.readouterr().out
    assert "the hold was read at the job's start only: no GITHUB_ADMIN_TOKEN" in out and token not in out
    assert main(["hold", "--on", "--again"]) == 2  # --again is --check's
