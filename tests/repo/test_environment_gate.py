"""GitHub's environment gate over every workflow: each job's ref must be one its environment
admits, and a schedule's environment has no reviewer (act ignores both)."""

from __future__ import annotations

import shutil

from ci_tools.repo.environment_gate import gate_problems, github_environments, refused
from ci_tools.settings import load_config
from tests.support import ROOT


def test_every_job_passes_the_gate_of_the_environment_it_names():
    assert gate_problems(ROOT, load_config()) == []


def test_a_schedule_that_names_production_is_refused(tmp_path):
    """What backup.yml and watch.yml did: production admits only main, the schedule runs on develop."""
    shutil.copytree(ROOT / ".github", tmp_path / ".github")
    backup = tmp_path / ".github" / "workflows" / "backup.yml"
    backup.write_text(backup.read_text().replace("name: production-scheduled", "name: production"))
    problems = gate_problems(tmp_path, load_config())
    assert any("backup.yml job snapshot: a schedule runs on develop" in p for p in problems), problems
    assert any("would wait for a reviewer of environment production" in p for p in problems), problems


def test_a_push_of_a_branch_its_environment_does_not_admit_is_refused(tmp_path):
    shutil.copytree(ROOT / ".github", tmp_path / ".github")
    staging = tmp_path / ".github" / "workflows" / "staging.yml"
    staging.write_text(staging.read_text().replace("branches: [develop]", "branches: [develop, release/next]"))
    problems = gate_problems(tmp_path, load_config())
    assert any("a push runs on release/next" in p for p in problems), problems


def test_the_scheduled_environment_admits_the_default_branch_and_main_and_waits_for_nobody():
    config = load_config()
    scheduled = github_environments(config)["production-scheduled"]
    assert scheduled.admits("develop") and scheduled.admits("main") and not scheduled.admits("feature/x")
    assert scheduled.reviewers == () and scheduled.values_from == "production"
    assert refused(config, "production", "schedule", "develop") is not None
    assert refused(config, "production-scheduled", "schedule", "develop") is None
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
