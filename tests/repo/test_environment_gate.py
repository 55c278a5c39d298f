"""GitHub's environment gate over every workflow: each job's ref must be one its environment
admits, and a schedule's environment has no reviewer (act ignores both)."""

from __future__ import annotations

import shutil

from ci_tools.repo.environment_gate import gate_problems, github_environments, refused, unreviewed_production
from ci_tools.repo.scheduler import dispatch_ref
from ci_tools.settings import load_config
from tests.support import ROOT


def test_every_job_passes_the_gate_of_the_environment_it_names():
    assert gate_problems(ROOT, load_config()) == []


def test_a_scheduled_production_job_cannot_run_on_develop(tmp_path):
    """What backup.yml and watch.yml did: a schedule (it runs on develop, the default branch) in an
    environment holding production's secrets. production-scheduled now admits main alone."""
    shutil.copytree(ROOT / ".github", tmp_path / ".github")
    for name, cron in (("backup.yml", "17 3 * * *"), ("watch.yml", "*/30 * * * *")):
        path = tmp_path / ".github" / "workflows" / name
        path.write_text(path.read_text().replace("on:\n", f'on:\n  schedule:\n    - cron: "{cron}"\n', 1))
    problems = gate_problems(tmp_path, load_config())
    for where in ("backup.yml job snapshot", "watch.yml job production"):
        expected = f"{where}: a schedule runs on develop, which environment production-scheduled does not admit"
        assert any(p.startswith(expected) for p in problems), problems
    backup = tmp_path / ".github" / "workflows" / "backup.yml"
    backup.write_text(backup.read_text().replace("name: production-scheduled", "name: production"))
    problems = gate_problems(tmp_path, load_config())
    assert any("would wait for a reviewer of environment production" in p for p in problems), problems


def test_a_scheduled_job_dispatched_on_develop_is_refused_and_on_main_admitted():
    """The scheduler dispatches main's backup.yml and watch.yml; a dispatch on develop (or a
    feature branch) would run unreviewed code with production's secrets, and GitHub refuses it."""
    config = load_config()
    assert refused(config, "production-scheduled", "workflow_dispatch", "main") is None
    for ref in ("develop", "feature/x"):
        assert refused(config, "production-scheduled", "workflow_dispatch", ref) == (
            f'Branch "{ref}" is not allowed to deploy to production-scheduled due to environment protection rules.'
        )
    assert dispatch_ref(config) == "main"


def test_no_environment_holding_production_secrets_admits_an_unreviewed_branch():
    config = load_config()
    assert unreviewed_production(config) == []
    production = {n: e for n, e in github_environments(config).items() if e.values_from == "production"}
    assert set(production) == {"production", "production-scheduled"}
    for env in production.values():
        assert not any(env.admits(b) for b in ("develop", "feature/x", "fix/y")), env


def test_a_push_of_a_branch_its_environment_does_not_admit_is_refused(tmp_path):
    shutil.copytree(ROOT / ".github", tmp_path / ".github")
    staging = tmp_path / ".github" / "workflows" / "staging.yml"
    staging.write_text(staging.read_text().replace("branches: [develop]", "branches: [develop, release/next]"))
    problems = gate_problems(tmp_path, load_config())
    assert any("a push runs on release/next" in p for p in problems), problems


def test_the_scheduled_environment_admits_main_alone_and_waits_for_nobody():
    config = load_config()
    scheduled = github_environments(config)["production-scheduled"]
    assert scheduled.deploy_branches == ("main",) and not scheduled.admits("develop")
    assert scheduled.reviewers == () and scheduled.values_from == "production"
    assert refused(config, "production", "schedule", "develop") is not None
    assert refused(config, "production-scheduled", "schedule", "develop") is not None
    assert refused(config, "staging", "push", "feature/x") is None


def test_every_secret_an_environment_job_reads_falls_back_to_its_repository_secret():
    """Where the plan has no environments, secrets.<NAME> is empty and <ENV>_<NAME> holds it."""
    import re

    from ci_tools.repo.workflow_files import load_workflows

    primary = re.compile(r"(?<![\w.])(?<!\|\| )(?<!&& )secrets\.([A-Z][A-Z0-9_]*)")
    missing = []
    for workflow, document in load_workflows(ROOT).items():
        for job_id, job in document["jobs"].items():
            if not job.get("environment"):
                continue
            for step in job.get("steps", []):
                for key, value in {**(job.get("env") or {}), **(step.get("env") or {})}.items():
                    for name in primary.findall(str(value)):
                        if name != "GITHUB_TOKEN" and f"_{name}" not in str(value).split(f"secrets.{name}", 1)[1]:
                            missing.append(f"{workflow} {job_id} {key}: secrets.{name}")
    assert not missing, missing


def test_pull_request_triggers_run_on_the_refs_github_gives_them(tmp_path):
    """GitHub's "Events that trigger workflows": workflow_run runs on the default branch (develop,
    unreviewed), pull_request on refs/pull/<n>/merge (no deployment pattern admits it), and
    pull_request_target on the base branch for any pull request — a staging environment with no
    reviewer would hand its secrets to a fork's pull request."""
    shutil.copytree(ROOT / ".github", tmp_path / ".github")
    workflows = tmp_path / ".github" / "workflows"
    job = "    runs-on: ubuntu-24.04\n    environment: {env}\n    steps:\n      - run: echo hi\n"
    (workflows / "after.yml").write_text(
        "name: after\non:\n  workflow_run:\n    workflows: [staging]\n    types: [completed]\npermissions: {}\n"
        "jobs:\n  after:\n" + job.format(env="production-scheduled")
    )
    (workflows / "pr.yml").write_text(
        "name: pr\non: pull_request\npermissions: {}\njobs:\n  pr:\n" + job.format(env="staging")
    )
    (workflows / "prt.yml").write_text(
        "name: prt\non: pull_request_target\npermissions: {}\njobs:\n  prt:\n" + job.format(env="staging")
    )
    problems = gate_problems(tmp_path, load_config())
    assert any(p.startswith("after.yml job after: a workflow_run runs on develop, which") for p in problems), problems
    assert any(p.startswith("pr.yml job pr: a pull_request runs on refs/pull/1/merge") for p in problems), problems
    assert any(
        p.startswith("prt.yml job prt: a pull_request_target runs on develop for any pull request") for p in problems
    ), problems
    assert not any("runs on main for any pull request" in p for p in problems), problems  # staging refuses main
