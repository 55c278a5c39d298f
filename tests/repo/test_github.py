"""ci-tools github setup|check against the GitHub REST stand-in."""

from __future__ import annotations

import json
import shutil

import pytest

from ci_tools.__main__ import main
from ci_tools.repo.workflow_files import secrets_by_environment
from sandbox.github import READ_ONLY_TOKEN, FakeGitHub
from tests.support import ROOT, context

REPO = "mindmate/mindmate-release"


@pytest.fixture
def values(monkeypatch):
    """A value for every secret each environment's workflows use, as STAGING_/PRODUCTION_ names."""
    wanted = secrets_by_environment(ROOT, ["staging", "production"])
    given = {
        f"{env.upper()}_{name}": f"value-of-{env}-{name}-0123456789" for env, names in wanted.items() for name in names
    }
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    return given


def run(*args: str) -> int:
    return main(["github", *args, "--repo", REPO])


def test_setup_on_an_empty_repository_then_check_all_pass(github, values, capsys):
    assert run("setup") == 0
    assert "dry run" in capsys.readouterr().out and github.writes == 0  # nothing changed yet
    assert run("setup", "--apply") == 0
    assert run("check") == 0
    out, err = capsys.readouterr()
    assert "✗" not in out and "GitHub is set up as the repository says" in out
    assert github.default_branch == "develop"
    assert github.secrets["production"]["TELEGRAM_BOT_TOKEN"] == values["PRODUCTION_TELEGRAM_BOT_TOKEN"]  # intact
    assert github.branch_policies == {
        "staging": ["develop", "feature/*"],
        "production": ["main"],
        "production-scheduled": ["main"],  # main's backup and watch, dispatched by scheduler.yml
    }
    rules = github.environments["production-scheduled"]["protection_rules"]
    assert [r["type"] for r in rules] == ["branch_policy"]  # no required reviewers: nobody to wait for
    scheduled = github.secrets["production-scheduled"]
    assert scheduled["TELEGRAM_BOT_TOKEN"] == values["PRODUCTION_TELEGRAM_BOT_TOKEN"]  # production's values
    assert "STAGING_TELEGRAM_BOT_TOKEN" not in scheduled  # only what the scheduled jobs read
    for value in values.values():
        assert value not in out + err


def test_setup_twice_changes_nothing_the_second_time(github, values, capsys):
    assert run("setup", "--apply") == 0
    writes = github.writes
    assert run("setup", "--apply") == 0
    assert github.writes == writes
    assert "nothing to change" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("breakage", "item"),
    [
        ("no-reviewer", "environment production: reviewers"),
        ("missing-secret", "environment staging: every secret its workflows use"),
        ("source-in-staging", "environment staging: holds nothing its workflows may not use"),
        ("repository-secret", "no repository secret holds an environment's secret"),
        ("ruleset-not-imported", "ruleset main is imported as in the repository"),
        ("default-branch", "the default branch is develop"),
    ],
)
def test_check_names_each_missing_piece(github, values, capsys, breakage, item):
    assert run("setup", "--apply") == 0
    if breakage == "no-reviewer":
        github.environments["production"]["protection_rules"] = []
    elif breakage == "missing-secret":
        del github.secrets["staging"]["TELEGRAM_BOT_TOKEN"]  # (its RENDER_API_KEY is optional: a deploy hook will do)
    elif breakage == "source-in-staging":  # what an older init gave staging: production's Redis
        github.secrets["staging"]["SOURCE_REDIS_URL"] = values["PRODUCTION_REDIS_URL"]
    elif breakage == "repository-secret":  # an older plan's, which every pushed branch reads
        github.repo_secrets.add("PRODUCTION_REDIS_URL")
    elif breakage == "ruleset-not-imported":
        github.rulesets = {i: r for i, r in github.rulesets.items() if r["name"] != "main"}
    elif breakage == "default-branch":
        github.default_branch = "main"
    capsys.readouterr()
    assert run("check") == 5
    captured = capsys.readouterr()
    assert "1 of " in captured.err and f"items unmet: {item}" in captured.err, captured.err  # only that one


def test_a_required_check_that_names_no_job_is_caught(github, values, tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / ".github", tmp_path / ".github")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / ".github/rulesets/main.json"
    ruleset = json.loads(path.read_text())
    for rule in ruleset["rules"]:
        if rule["type"] == "required_status_checks":
            rule["parameters"]["required_status_checks"].append(
                {"context": "branch-flow-renamed", "integration_id": 15368}
            )
    path.write_text(json.dumps(ruleset))
    monkeypatch.setenv("CI_TOOLS_CONFIG", str(tmp_path / "pyproject.toml"))
    assert context().config.path.parent == tmp_path
    assert run("setup", "--apply") == 0
    assert run("check") == 5
    assert "no job named ['branch-flow-renamed']" in capsys.readouterr().out


def adopted_repository(tmp_path):
    """The files ci-tools adopt copies, in a repository of their own, with our config."""
    from ci_tools.repo.workflow_files import adopted_set

    for name in adopted_set(ROOT):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_an_adopted_repository_requires_the_checks_it_has(github, values, tmp_path, monkeypatch, capsys):
    """Its rulesets require branch-flow and test, not the pipeline's own lint (no workflow of its
    produces that check, and requiring it would block every merge)."""
    root = adopted_repository(tmp_path)
    monkeypatch.setenv("CI_TOOLS_CONFIG", str(root / "pyproject.toml"))
    assert run("setup", "--apply") == 0
    assert run("check") == 0, capsys.readouterr().out
    for ruleset in github.rulesets.values():
        [rule] = [r for r in ruleset["rules"] if r["type"] == "required_status_checks"]
        assert {c["context"] for c in rule["parameters"]["required_status_checks"]} == {"branch-flow", "test"}
    # A ruleset file that still names the pipeline's lint (an old copy) is named, not imported blind.
    path = root / ".github/rulesets/develop.json"
    path.write_text(
        path.read_text().replace(
            '"required_status_checks": []', '"required_status_checks": [{"context": "lint", "integration_id": 15368}]'
        )
    )
    capsys.readouterr()
    assert run("check") == 5
    assert "no job named ['lint']" in capsys.readouterr().out


def test_a_token_without_admin_rights_is_named(github, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_TOKEN", READ_ONLY_TOKEN)
    assert run("check") == 5
    assert "no admin scope" in capsys.readouterr().out
    assert run("setup", "--apply") == 3
    err = capsys.readouterr().err
    assert "403" in err and "admin rights" in err and READ_ONLY_TOKEN not in err


def test_a_wrong_token_is_one_line(github, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_wrongWrongWrong0123456789")
    assert run("check") == 5
    out = capsys.readouterr().out
    assert "the token can read the repository" in out and "Bad credentials" in out


def test_rulesets_read_back_with_githubs_defaults_still_hold(github, values, capsys):
    """GitHub adds server fields and default parameters; only what the file sets is compared."""
    assert run("setup", "--apply") == 0
    answered = github._answer_ruleset(next(iter(github.rulesets.values())), "o/r")
    assert answered["source"] and answered["_links"]
    rules = {r["type"]: r for r in answered["rules"]}
    assert rules["pull_request"]["parameters"]["required_reviewers"] == []
    writes = github.writes
    assert run("setup", "--apply") == 0 and github.writes == writes  # no ruleset rewritten
    assert run("check") == 0
    assert "differs" not in capsys.readouterr().out


def test_a_ruleset_changed_by_hand_differs_again(github, values, capsys):
    assert run("setup", "--apply") == 0
    stored = next(r for r in github.rulesets.values() if r["name"] == "main")
    for rule in stored["rules"]:
        if rule["type"] == "pull_request":
            rule["parameters"]["dismiss_stale_reviews_on_push"] = False
    stored["rules"].append({"type": "required_linear_history"})  # a rule the file does not name
    capsys.readouterr()
    assert run("check") != 0
    assert "differs" in capsys.readouterr().out
    assert run("setup", "--apply") == 0
    assert run("check") == 0


def test_the_subset_rule_itself():
    from ci_tools.repo.github import ruleset_holds

    wanted = {
        "rules": [{"type": "deletion"}, {"type": "pull_request", "parameters": {"a": 1}}],
        "enforcement": "active",
    }
    found = {
        "rules": [{"type": "pull_request", "parameters": {"a": 1, "added": []}}, {"type": "deletion"}],
        "enforcement": "active",
        "source": "o/r",
    }
    assert ruleset_holds(wanted, found)
    assert not ruleset_holds(wanted, {**found, "enforcement": "evaluate"})
    assert not ruleset_holds(wanted, {**found, "rules": found["rules"][:1]})
    assert not ruleset_holds({"conditions": {"include": ["a"]}}, {"conditions": {"include": ["a", "b"]}})


def test_setup_creates_develop_from_main_before_making_it_the_default(github, values, capsys):
    """A repository pushed with main alone: GitHub refuses a default branch that does not exist."""
    github.branches.pop("develop")
    assert run("setup") == 0
    out = capsys.readouterr().out
    assert out.index("branch develop created from main") < out.index("default branch main → develop")
    assert run("setup", "--apply") == 0
    assert github.branches["develop"] == github.branches["main"] and github.default_branch == "develop"


def test_check_says_a_back_merge_pr_from_github_token_runs_no_checks(github, values, capsys):
    assert run("setup", "--apply") == 0
    capsys.readouterr()
    assert run("check", "--json") == 0  # a warning, not a failure
    items = {i["name"]: i for i in json.loads(capsys.readouterr().out)["items"]}
    item = items["the back-merge PR runs its checks"]
    assert item["warning"] and "BACKMERGE_TOKEN" in item["fix"]
    github.repo_secrets.add("BACKMERGE_TOKEN")
    assert run("check", "--json") == 0
    assert "the back-merge PR runs its checks" not in capsys.readouterr().out


@pytest.fixture
def private_free(monkeypatch):
    """A private repository on GitHub Free: no environments (404), no rulesets (403)."""
    with FakeGitHub(private=True, plan="free") as server:
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        monkeypatch.setenv("GITHUB_TOKEN", server.token)
        yield server


def test_on_private_free_setup_withholds_productions_secrets_and_check_names_the_plans_limits(
    private_free, values, capsys
):
    """No environments: every pushed branch's workflow reads every repository secret, so production's
    stay out of the repository unless the owner says otherwise."""
    assert run("setup", "--apply") == 0
    out = capsys.readouterr().out
    assert "the token needs admin rights" not in out
    assert "production's secrets are withheld" in out and "--production-secrets-in-repository" in out
    stored = private_free.repo_secret_values
    assert stored["STAGING_RENDER_API_KEY"] == values["STAGING_RENDER_API_KEY"]  # decrypts to it
    assert not [name for name in stored if name.startswith("PRODUCTION_")], sorted(stored)
    assert not private_free.environments and not private_free.rulesets
    assert private_free.variables["CI_TOOLS_GITHUB_MODE"] == "repository-secrets no-rulesets"
    assert run("check", "--json") == 0
    items = {i["name"]: i for i in json.loads(capsys.readouterr().out)["items"]}
    plan = items["what GitHub's plan protects"]
    assert plan["warning"] and "private repository on GitHub Free: no environments, no rulesets" in plan["detail"]
    assert "every pushed branch's workflows read every repository secret" in plan["detail"]
    assert "the flow is enforced when production deploys" in plan["detail"]
    assert items["staging's secrets are repository secrets <ENV>_<NAME>"]["ok"]
    held = items["production's secrets and every pushed branch"]
    assert held["warning"] and "withheld from the repository" in held["detail"]
    writes = private_free.writes
    assert run("setup", "--apply") == 0 and private_free.writes == writes  # nothing left to change
    for value in values.values():
        assert value not in out


def test_on_private_free_the_owner_may_accept_productions_secrets_in_the_repository(private_free, values, capsys):
    assert run("setup", "--apply", "--production-secrets-in-repository") == 0
    stored = private_free.repo_secret_values
    assert stored["PRODUCTION_TELEGRAM_BOT_TOKEN"] == values["PRODUCTION_TELEGRAM_BOT_TOKEN"]
    capsys.readouterr()
    assert run("check", "--json") == 0
    items = {i["name"]: i for i in json.loads(capsys.readouterr().out)["items"]}
    assert (
        "any pushed branch's workflow can read them" in items["production's secrets and every pushed branch"]["detail"]
    )


def test_on_pro_a_private_repository_keeps_environments_and_rulesets(monkeypatch, values, capsys):
    with FakeGitHub(private=True, plan="pro") as server:
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        monkeypatch.setenv("GITHUB_TOKEN", server.token)
        assert run("setup", "--apply") == 0
        assert set(server.environments) == {"staging", "production", "production-scheduled"}
        assert server.rulesets and server.variables["CI_TOOLS_GITHUB_MODE"] == "environments"


def test_a_plan_limit_is_named_for_what_it_is(private_free, capsys):
    ctx = context(GITHUB_API_URL=private_free.url)
    with ctx.github(private_free.token, REPO) as api, pytest.raises(Exception, match="GitHub's plan does not allow it"):
        api.rulesets()


def test_dispatch_starts_mains_workflow_for_the_cron_that_fired(github, monkeypatch, capsys):
    """scheduler.yml's step: the nightly cron starts backup.yml on main (204, validated against
    GitHub's description of "Create a workflow dispatch event")."""
    monkeypatch.delenv("GH_TOKEN", raising=False)
    assert run("dispatch", "--schedule", "17 3 * * *") == 0
    assert github.dispatches == [{"workflow": "backup.yml", "ref": "main", "inputs": {}}]
    assert "dispatched backup.yml on main" in capsys.readouterr().out
    assert run("dispatch", "--schedule", "*/30 * * * *") == 0
    assert github.dispatches[-1] == {"workflow": "watch.yml", "ref": "main", "inputs": {}}


def test_dispatch_of_a_cron_nobody_scheduled_or_without_actions_write_is_one_line(github, monkeypatch, capsys):
    assert run("dispatch", "--schedule", "0 0 * * *") == 2
    err = capsys.readouterr().err
    assert "the schedule '0 0 * * *' starts none of the scheduled workflows" in err and "Traceback" not in err
    monkeypatch.setenv("GITHUB_TOKEN", READ_ONLY_TOKEN)
    assert run("dispatch", "--workflow", "backup.yml") == 3
    err = capsys.readouterr().err
    assert "GitHub answered 403" in err and "actions: write" in err and READ_ONLY_TOKEN not in err
    assert err.count("\n") == 1 and not github.dispatches


def test_setup_takes_develop_back_from_an_older_production_scheduled(github, values, capsys):
    """What setup made before: production-scheduled admitted develop, where schedules run."""
    assert run("setup", "--apply") == 0
    github.branch_policies["production-scheduled"].insert(0, "develop")
    capsys.readouterr()
    assert run("check") == 5
    assert "environment production-scheduled: deploys only ['main']" in capsys.readouterr().err
    assert run("setup", "--apply") == 0
    assert "environment production-scheduled: develop may no longer deploy" in capsys.readouterr().out
    assert github.branch_policies["production-scheduled"] == ["main"]
    assert run("check") == 0


def test_a_secrets_file_value_that_is_not_ascii_is_named_before_anything_changes(github, tmp_path, capsys):
    """A .env line pasted with a curly quote: sealed and stored, it would break every later request."""
    value = "rnd_pasted\u201d0123456789"
    dotenv = tmp_path / "secrets.env"
    dotenv.write_text(f"STAGING_RENDER_API_KEY='{value}'\n")
    assert run("setup", "--apply", "--secrets-file", str(dotenv)) == 3
    err = capsys.readouterr().err
    assert "STAGING_RENDER_API_KEY holds a character that is not ASCII" in err and value not in err
    assert github.writes == 0


def test_a_secrets_file_without_stagings_values_deletes_nothing_of_stagings(github, values, monkeypatch, tmp_path):
    """setup deletes from staging what .env no longer names; a file that names none of staging's
    (production's values alone) says nothing about staging, so nothing there goes."""
    assert run("setup", "--apply") == 0
    held = dict(github.secrets["staging"])
    only_production = tmp_path / "production.env"
    only_production.write_text("".join(f"{k}='{v}'\n" for k, v in values.items() if k.startswith("PRODUCTION_")))
    for name in values:
        if name.startswith("STAGING_"):
            monkeypatch.delenv(name)
    assert run("setup", "--apply", "--secrets-file", str(only_production)) == 0
    assert github.secrets["staging"] == held
