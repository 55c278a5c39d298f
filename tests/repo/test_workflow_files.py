"""Every workflow obeys the pipeline's rules; a renamed CLI flag breaks this test, not a release."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from ci_tools.__main__ import COMMANDS, build_parser, chosen
from ci_tools.needs import NOTHING
from tests.support import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((ROOT / ".github" / "actions").glob("*/action.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
# Commands that change a deployed environment: they need a concurrency group and an environment.
DEPLOYING = (
    "deploy",
    "release",
    "rollback",
    "cutover",
    "memory copy",
    "memory restore",
    "memory undo",
)


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    if True in data:  # YAML 1.1 reads the key `on` as the boolean true
        data["on"] = data.pop(True)
    return data


def steps_of(document: dict) -> list[dict]:
    if "runs" in document:
        return document["runs"].get("steps", [])
    return [step for job in document["jobs"].values() for step in job.get("steps", [])]


def ci_tools_calls(script: str) -> list[list[str]]:
    """Each `ci-tools …` invocation in a shell script, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", script)
    calls = []
    for line in joined.splitlines():
        for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line.strip()):
            words = shlex.split(part, comments=True) if part else []
            if words[:1] == ["exec"]:  # the step's shell replaced by the command (a cancel reaches it)
                words = words[1:]
            if words[:1] == ["ci-tools"]:
                calls.append(words[1:])
    return calls


ALL = [pytest.param(p, id=p.relative_to(ROOT).as_posix()) for p in WORKFLOWS + ACTIONS]


def test_the_expected_workflows_exist():
    names = {p.name for p in WORKFLOWS}
    assert {
        "ci.yml",
        "ci-self.yml",
        "branch-flow.yml",
        "back-merge.yml",
        "migrate-memory.yml",
        "staging.yml",
        "production.yml",
        "rollback.yml",
        "cutover.yml",
        "contract-drift.yml",
        "backup.yml",
        "restore-memory.yml",
        "watch.yml",
    } <= names


@pytest.mark.parametrize("path", ALL)
def test_actions_are_pinned_to_commit_shas_with_a_version_comment(path):
    text = path.read_text()
    document = load(path)
    uses = [s["uses"] for s in steps_of(document) if "uses" in s]
    uses += [j["uses"] for j in document.get("jobs", {}).values() if "uses" in j]
    for ref in uses:
        if ref.startswith("./"):
            continue  # this repository's own actions and reusable workflows
        assert PINNED.match(ref), f"{ref} is not pinned to a full commit SHA"
        assert re.search(re.escape(ref) + r"\s+#\s*v\d", text), f"{ref} lacks a # vX.Y.Z comment"


@pytest.mark.parametrize("path", ALL)
def test_no_expressions_inside_run_scripts(path):
    for step in steps_of(load(path)):
        assert "${{" not in step.get("run", ""), f"{step.get('name')}: pass values through env:"


def inputs_of(document: dict) -> dict[str, dict]:
    triggers = document.get("on") or {}
    found: dict[str, dict] = {}
    for trigger in ("workflow_dispatch", "workflow_call"):
        if isinstance(triggers, dict) and isinstance(triggers.get(trigger), dict):
            found |= triggers[trigger].get("inputs") or {}
    return found


def variable_samples(document: dict, job: dict, step: dict) -> list[dict[str, str]]:
    """Values a step's env variables can take: each option of a choice input, defaults otherwise."""
    inputs = inputs_of(document)
    env = {**(document.get("env") or {}), **(job.get("env") or {}), **(step.get("env") or {})}
    # A step that runs only `if: inputs.x == 'a' || inputs.x == 'b'` only ever sees those values.
    only: dict[str, set[str]] = {}
    for input_name, value in re.findall(r"inputs\.(\w+)\s*==\s*'([^']*)'", str(step.get("if", ""))):
        only.setdefault(input_name, set()).add(value)
    base: dict[str, str] = {}
    choices: dict[str, list[str]] = {}
    for name, expression in env.items():
        match = re.fullmatch(r"\$\{\{\s*inputs\.(\w+)\s*\}\}", str(expression))
        spec = inputs.get(match[1]) if match else None
        if spec:
            options = [str(o) for o in spec.get("options") or [] if str(o) in only.get(match[1], {str(o)})]
            default = str(spec.get("default") or "")
            base[name] = default if default in options or not options else options[0]
            base[name] = base[name] or "1"
            if len(options) > 1:
                choices[name] = options
        elif picked := re.search(r"&&\s*'([^']*)'\s*\|\|\s*'([^']*)'", str(expression)):
            # `${{ cond && 'a' || 'b' }}`: the variable is one of the two quoted values
            base[name] = picked[1]
            choices[name] = [picked[1], picked[2]]
        elif "${{" not in str(expression):
            base[name] = str(expression)  # a literal: the step always sees exactly that
        else:
            base[name] = "sample-value"
    samples = [base]
    samples += [{**base, name: option} for name, options in choices.items() for option in options]
    return samples


def expand(word: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m[1], m[0]), word)


def all_steps(document: dict) -> list[tuple[dict, dict]]:
    if "runs" in document:
        return [({}, step) for step in document["runs"].get("steps", [])]
    return [(job, step) for job in document["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("path", ALL)
def test_every_ci_tools_call_parses(path):
    parser = build_parser()
    document = load(path)
    for job, step in all_steps(document):
        for argv in ci_tools_calls(step.get("run", "")):
            for values in variable_samples(document, job, step):
                concrete = [expand(word, values) for word in argv]
                try:
                    parser.parse_args(concrete)
                except SystemExit as exc:
                    pytest.fail(f"{path.name}: `ci-tools {' '.join(concrete)}` is refused ({exc})")


@pytest.mark.parametrize("path", ALL)
def test_every_ci_tools_call_parses_as_main_parses_it(path):
    """main() loads only the command it finds first (``chosen``): each call must parse through that
    parser too, so a call whose first word is not its command fails here, not in a job."""
    document = load(path)
    for job, step in all_steps(document):
        for argv in ci_tools_calls(step.get("run", "")):
            for values in variable_samples(document, job, step):
                concrete = [expand(word, values) for word in argv]
                assert chosen(concrete) in COMMANDS, f"{path.name}: `ci-tools {' '.join(concrete)}` names no command"
                try:
                    build_parser([chosen(concrete) or ""]).parse_args(concrete)
                except SystemExit as exc:
                    pytest.fail(f"{path.name}: `ci-tools {' '.join(concrete)}` is refused by main ({exc})")


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in WORKFLOWS])
def test_permissions_are_empty_or_read_only_at_the_top(path):
    permissions = load(path).get("permissions")
    assert permissions is not None, "declare top-level permissions (empty, granted per job)"
    if isinstance(permissions, dict):
        assert set(permissions.values()) <= {"read", "none"}
    else:
        assert permissions in ("read-all", {})


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in WORKFLOWS])
def test_deploying_jobs_are_serialised_and_use_an_environment(path):
    document = load(path)
    for name, job in document["jobs"].items():
        scripts = " ".join(step.get("run", "") for step in job.get("steps", []))
        commands = [" ".join(argv[:2]) for argv in ci_tools_calls(scripts)]
        if not any(c.startswith(d) for c in commands for d in DEPLOYING):
            continue
        concurrency = job.get("concurrency") or document.get("concurrency")
        assert isinstance(concurrency, dict), f"{name}: deploy jobs need a concurrency group"
        assert concurrency.get("cancel-in-progress") is False, f"{name}: never cancel a deploy"
        assert job.get("environment"), f"{name}: deploy jobs run in a GitHub environment"


def production_jobs_in_the_wrong_environment(document: dict) -> list[str]:
    """Jobs that act on production (a ci-tools call names it, or they read secrets in a workflow
    that production's branch triggers) but whose environment cannot be production."""
    triggers = document.get("on") or {}
    pushes = triggers.get("push") if isinstance(triggers, dict) else None
    on_main = isinstance(pushes, dict) and "main" in (pushes.get("branches") or [])
    wrong = []
    for name, job in document["jobs"].items():
        calls = [argv for step in job.get("steps", []) for argv in ci_tools_calls(step.get("run", ""))]
        names_production = any("production" in argv for argv in calls)
        reads_secrets = bool(_SECRET_USE.search(yaml.safe_dump(job)))
        if not (names_production or (on_main and reads_secrets)):
            continue
        environment = job.get("environment")
        env_name = str(environment.get("name") if isinstance(environment, dict) else environment or "")
        if "production" not in env_name and "${{" not in env_name:
            wrong.append(f"{name} (environment {env_name or 'none'})")
    return wrong


# Any secret but the built-in token and BACKMERGE_TOKEN, a repository secret that opens a PR
# and changes nothing that production runs.
_SECRET_USE = re.compile(r"secrets\.(?!GITHUB_TOKEN\b|BACKMERGE_TOKEN\b)[A-Z]")


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in WORKFLOWS])
def test_production_jobs_use_the_production_environment(path):
    assert production_jobs_in_the_wrong_environment(load(path)) == []


def test_the_production_environment_check_fails_on_the_mutation_it_names():
    document = load(ROOT / ".github/workflows/production.yml")
    document["jobs"]["release"]["environment"] = {"name": "staging"}  # a release that reads staging's secrets
    assert production_jobs_in_the_wrong_environment(document) == ["release (environment staging)"]
    backup = load(ROOT / ".github/workflows/backup.yml")
    del backup["jobs"]["snapshot"]["environment"]
    assert production_jobs_in_the_wrong_environment(backup) == ["snapshot (environment none)"]


def test_checkout_never_persists_credentials():
    for path in WORKFLOWS:
        for step in steps_of(load(path)):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, path.name


def test_branch_flow_runs_on_retargeting_and_its_job_is_the_required_check():
    document = load(ROOT / ".github/workflows/branch-flow.yml")
    trigger = document["on"]["pull_request"]
    assert set(trigger["types"]) == {"opened", "reopened", "synchronize", "edited"}
    assert set(trigger["branches"]) == {"main", "develop"}
    assert document["permissions"] == {}
    assert [job["name"] for job in document["jobs"].values()] == ["branch-flow"]


def job_names_on_pull_requests(root: Path = ROOT) -> set[str]:
    """Independent of workflow_files: every job of every workflow with a pull_request trigger."""
    names = set()
    for path in sorted((root / ".github" / "workflows").glob("*.yml")):
        document = load(path)
        if "pull_request" in (document["on"] or {}):
            names |= {job.get("name", key) for key, job in document["jobs"].items()}
    return names


def required_contexts(ruleset: dict) -> set[str]:
    rules = {rule["type"]: rule.get("parameters", {}) for rule in ruleset["rules"]}
    return {c["context"] for c in rules["required_status_checks"]["required_status_checks"]}


@pytest.mark.parametrize("branch", ["main", "develop"])
def test_rulesets_require_prs_checks_and_forbid_force_push_and_deletion(branch):
    from ci_tools.repo.github import rulesets

    ruleset = json.loads((ROOT / f".github/rulesets/{branch}.json").read_text())
    assert ruleset["conditions"]["ref_name"]["include"] == [f"refs/heads/{branch}"]
    assert ruleset["enforcement"] == "active"
    rules = {rule["type"]: rule.get("parameters", {}) for rule in ruleset["rules"]}
    assert {"deletion", "non_fast_forward", "pull_request", "required_status_checks"} <= set(rules)
    # The file names no check of its own: github setup requires what the workflows produce.
    assert required_contexts(ruleset) == set()
    [imported] = [r for r in rulesets(ROOT) if r["name"] == branch]
    assert required_contexts(imported) == {"branch-flow", "lint", "pipeline-tests", "test"}
    assert required_contexts(imported) <= job_names_on_pull_requests(), "a required check no workflow produces"
    if branch == "main":  # squash would cut develop's ancestry and force a back-merge every time
        assert rules["pull_request"]["allowed_merge_methods"] == ["merge"]


def test_dependabot_updates_both_ecosystems_grouped_with_cooldown():
    config = yaml.safe_load((ROOT / ".github/dependabot.yml").read_text())
    ecosystems = {u["package-ecosystem"]: u for u in config["updates"]}
    assert set(ecosystems) == {"uv", "github-actions"}
    assert "/.github/actions/*" in ecosystems["github-actions"]["directories"]
    for update in ecosystems.values():
        assert update["groups"]
        assert update["cooldown"]["default-days"] >= 1
        assert update["target-branch"] == "develop"


def test_the_parser_in_this_test_catches_a_renamed_flag():
    """Guard against a test that cannot fail: a wrong flag must be refused."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(ci_tools_calls('ci-tools flow check --bse "$B" --head "$H"')[0])
    assert ci_tools_calls("echo x && ci-tools flow name \\\n  feature/x # why") == [["flow", "name", "feature/x"]]


def test_pushes_release_from_a_job_that_names_its_environment():
    """No reusable deploy workflow: its jobs would get no environment secrets (actions/runner#4453)."""
    groups = set()
    for name, env, branch in (
        ("production.yml", "production", "main"),
        ("staging.yml", "staging", "develop"),
        ("rollback.yml", "${{ inputs.environment }}", None),
    ):
        document = load(ROOT / ".github/workflows" / name)
        if branch:
            assert document["on"]["push"]["branches"] == [branch]
        (job,) = document["jobs"].values()
        assert "uses" not in job and job["environment"]["name"] == env
        assert job["concurrency"]["cancel-in-progress"] is False
        groups.add(job["concurrency"]["group"].replace(env, "ENV"))
    # apart on purpose: a push must never displace a pending rollback (tests/repo/test_concurrency.py)
    assert groups == {"release-ENV", "rollback-ENV"}
    for path in WORKFLOWS:
        assert "workflow_call" not in (load(path)["on"] or {}), f"{path.name} is a reusable workflow"


def step_env_names(document: dict, job: dict, step: dict) -> set[str]:
    return {*(document.get("env") or {}), *(job.get("env") or {}), *(step.get("env") or {})}


def undeclared_in(document: dict) -> list[str]:
    """Each step calling a ci-tools command that does not pass a secret the command declares."""
    parser = build_parser()
    problems = []
    for job, step in all_steps(document):
        provided = step_env_names(document, job, step)
        for argv in ci_tools_calls(step.get("run", "")):
            for values in variable_samples(document, job, step):
                args = parser.parse_args([expand(word, values) for word in argv])
                missing = set(getattr(args, "needs", NOTHING).in_workflows) - provided
                if missing:
                    command = " ".join(argv[:2])
                    problems.append(f"{step.get('name')}: ci-tools {command} needs {sorted(missing)}")
    return problems


@pytest.mark.parametrize("path", ALL)
def test_every_step_passes_the_secrets_its_command_declares(path):
    assert undeclared_in(load(path)) == []


def test_a_step_that_omits_a_declared_secret_is_caught():
    """The cutover bug: its probe needed a token the step never passed."""
    document = load(ROOT / ".github/workflows/cutover.yml")
    for _, step in all_steps(document):
        (step.get("env") or {}).pop("NEW_TELEGRAM_BOT_TOKEN", None)
    assert any("NEW_TELEGRAM_BOT_TOKEN" in problem for problem in undeclared_in(document))


def test_a_command_reading_an_undeclared_secret_fails_in_the_tests():
    from ci_tools.context import build
    from ci_tools.needs import Needs, UndeclaredSecret

    environ = {"TELEGRAM_BOT_TOKEN": "123:abc", "RENDER_API_KEY": "rnd_x"}
    with pytest.raises(UndeclaredSecret):
        build(environ, Needs(required=("RENDER_API_KEY",))).secret("TELEGRAM_BOT_TOKEN")
    assert build(environ).secret("TELEGRAM_BOT_TOKEN") == "123:abc"  # no declaration: the rehearsal's


def test_the_setup_action_installs_ci_tools_as_its_pylock_pins_it():
    """Into a virtual environment of its own, from pylock.toml beside it: no uv.lock, uv sync or
    project extra of the repository it runs in, and only the ci-tools command on PATH."""
    action = load(ROOT / ".github/actions/setup-ci-tools/action.yml")
    scripts = " ".join(step.get("run", "") for step in action["runs"]["steps"])
    assert 'uv pip install --quiet --no-config --python "$venv/bin/python" -r "$lock"' in scripts
    assert 'lock="$GITHUB_ACTION_PATH/pylock.toml"' in scripts
    assert 'ln -sf "$venv/bin/ci-tools" "$bin/ci-tools"' in scripts and '"$venv/bin" >>' not in scripts
    assert "uv sync" not in scripts and "uv.lock" not in scripts and "--extra" not in scripts
    assert "inputs" not in action, "the pin lives in pylock.toml, nowhere else"
    [setup_uv] = [step for step in action["runs"]["steps"] if step.get("uses", "").startswith("astral-sh/setup-uv@")]
    assert "python-version" not in setup_uv["with"], "setup-uv would export UV_PYTHON to the bot's own steps"
    assert setup_uv["with"]["cache-dependency-glob"] == ".github/actions/setup-ci-tools/pylock.toml"


def test_every_job_that_runs_ci_tools_sets_it_up_and_only_ours_install_the_dev_tools():
    from ci_tools.repo.workflow_files import OURS_ONLY

    for path in WORKFLOWS:
        for name, job in load(path)["jobs"].items():
            steps = job.get("steps", [])
            scripts = [s.get("run", "") for s in steps]
            uses = [s.get("uses") for s in steps]
            if any(ci_tools_calls(script) for script in scripts):
                assert "./.github/actions/setup-ci-tools" in uses, f"{path.name}: {name}"
            if any(re.search(r"\b(ruff|pytest|mypy|actionlint|zizmor)\b", script) for script in scripts):
                assert path.name in OURS_ONLY, f"{path.name}: {name} runs the pipeline's own dev tools"
                assert any("uv sync --locked" in script for script in scripts), f"{path.name}: {name}"
            assert not any("pip install" in script for script in scripts), f"{path.name}: {name}"


def test_the_scheduler_starts_backup_and_watch_when_the_config_says():
    """scheduler.yml's crons are nightly_at and the watch's interval; backup.yml and watch.yml have
    no schedule of their own (a schedule runs develop's code), only the dispatch it sends."""
    from ci_tools.repo.scheduler import due
    from ci_tools.settings import load_config

    config = load_config()
    on = load(ROOT / ".github/workflows/scheduler.yml")["on"]
    crons = [s["cron"] for s in on["schedule"]]
    assert crons == [config.memory_backup.cron(), config.watch.cron()], (
        f"scheduler.yml's crons must be nightly_at = {config.memory_backup.nightly_at!r} "
        f"and the watch's every {config.watch.interval_minutes} minutes"
    )
    assert [due(config, cron) for cron in crons] == [["backup.yml"], ["watch.yml"]]
    for name in ("backup.yml", "watch.yml"):
        assert list(load(ROOT / ".github/workflows" / name)["on"]) == ["workflow_dispatch"], name


def test_the_scheduler_holds_no_secret_and_no_environment():
    """It runs develop's code: its only power is GITHUB_TOKEN, allowed to dispatch workflows."""
    document = load(ROOT / ".github/workflows/scheduler.yml")
    text = (ROOT / ".github/workflows/scheduler.yml").read_text()
    assert "secrets." not in text and "vars." not in text
    [job] = document["jobs"].values()
    assert "environment" not in job
    assert job["permissions"] == {"contents": "read", "actions": "write"}
    assert document["permissions"] == {}
