"""GitHub's environment gate, held statically: which ref each job runs on, and whether its
environment admits it.

GitHub runs a job that names an environment only when the environment's deployment branches
admit the job's ref, and holds it for a required reviewer first (docs.github.com, "Managing
environments for deployment": deployment branches and tags, required reviewers). A schedule
runs on the default branch ("Events that trigger workflows": schedule), a push on the
pushed branch, a dispatch on the ref the person picks, a ``workflow_run`` on the default branch,
and a ``pull_request_target`` on the pull request's *base* branch, whoever opened it, forks
included (same page: "GITHUB_REF: PR base branch"). So a pull_request_target job passes the gate
of any environment that admits the base branch: with no reviewer there, the secrets are handed to
a run any pull request starts. A ``pull_request`` job runs on ``refs/pull/<n>/merge``, which no
deployment branch pattern admits. act ignores all of it, so
``tests/repo/test_environment_gate.py`` and the act harness (``tests/workflows/act.py``) ask
this module instead: a schedule that names an environment only ``main`` may use would never
run on GitHub, and the tests now say so.

The GitHub environments are the config's, plus one for the scheduled work of the cutover target
(``<production>-scheduled``): it admits the cutover target's branch (``main``) alone, has no
reviewer (nobody is there to approve a nightly run), and holds only the secrets the scheduled
jobs read. A schedule itself runs on the default branch (``develop``, unreviewed code), so no
scheduled job holds production's secrets: ``scheduler.yml`` runs on the schedule with nothing but
``GITHUB_TOKEN`` (``actions: write``) and dispatches ``main``'s ``backup.yml`` and ``watch.yml``,
which run the workflow file and code of the ref they are dispatched on (docs.github.com, "Events
that trigger workflows": workflow_dispatch; "Triggering a workflow from a workflow": a
workflow_dispatch made with ``GITHUB_TOKEN`` does start a run).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_tools.repo.flow import matches
from ci_tools.repo.workflow_files import job_environments, load_workflows
from ci_tools.settings import Config

SCHEDULED = "-scheduled"


@dataclass(frozen=True)
class ConfiguredEnvironment:
    """An environment as ``github setup`` creates it."""

    name: str
    deploy_branches: tuple[str, ...]
    reviewers: tuple[str, ...]
    values_from: str  # whose <ENV>_<NAME> values its secrets take (.env, github setup)

    def admits(self, branch: str) -> bool:
        return any(matches(pattern, branch) for pattern in self.deploy_branches)


def github_environments(config: Config) -> dict[str, ConfiguredEnvironment]:
    found = {
        env.name: ConfiguredEnvironment(env.name, env.deploy_branches, env.reviewers, env.name)
        for env in config.environments.values()
    }
    target = config.role("cutover_target")
    name = scheduled_environment(config)
    found[name] = ConfiguredEnvironment(name, (target.branch,), (), target.name)
    return found


def scheduled_environment(config: Config) -> str:
    return config.role("cutover_target").name + SCHEDULED


def _triggers(document: dict[str, Any], config: Config) -> Iterator[tuple[str, str | None]]:
    """(event, ref) pairs a workflow runs on; ref None where a person picks it (a dispatch). A
    pull_request_target without ``branches`` runs for a pull request into any branch: every
    branch the flow merges into stands for it."""
    on = document.get("on") or {}
    if isinstance(on, str | list):
        on = {event: {} for event in ([on] if isinstance(on, str) else on)}
    for event, spec in on.items():
        if event == "schedule":
            yield event, config.default_branch
        elif event == "push":
            for branch in (spec or {}).get("branches", []):
                yield event, str(branch)
        elif event == "workflow_dispatch":
            yield event, None
        elif event == "workflow_run":
            yield event, config.default_branch
        elif event == "pull_request":
            yield event, "refs/pull/1/merge"
        elif event == "pull_request_target":
            bases = (spec or {}).get("branches") or sorted(config.flow)
            for branch in bases:
                yield event, str(branch)


def gate_problems(root: Path, config: Config) -> list[str]:
    """Every job GitHub's gate would refuse or hold, named with its workflow, trigger and fix."""
    environments = github_environments(config)
    problems = unreviewed_production(config)
    for workflow, document in load_workflows(root).items():
        for job_id, job in (document.get("jobs") or {}).items():
            for env_name in job_environments(job, document, list(config.environments)):
                env = environments.get(env_name)
                where = f"{workflow} job {job_id}"
                if env is None:
                    problems.append(f"{where}: environment {env_name!r} is none that github setup creates")
                    continue
                for event, ref in _triggers(document, config):
                    problems += _judge(where, event, ref, env)
    return problems


def unreviewed_branches(config: Config) -> list[str]:
    """Branches no reviewer saw: the default branch (where schedules run) and an example of each
    branch that merges into it (``feature/*`` as ``feature/x``), the cutover target's aside."""
    target = config.role("cutover_target")
    heads = (head.replace("*", "x") for head in config.flow.get(config.default_branch, ()))
    return [branch for branch in (config.default_branch, *heads) if branch != target.branch]


def admits_unreviewed(config: Config, env: ConfiguredEnvironment) -> bool:
    """Does this environment run code no reviewer saw (staging: develop, feature/*)? What it
    holds, every such branch's workflow can read."""
    return any(env.admits(branch) for branch in unreviewed_branches(config))


def unreviewed_production(config: Config) -> list[str]:
    """Every environment holding the cutover target's secrets that admits a branch no reviewer
    saw: the default branch (where schedules run) or a branch that merges into it."""
    target = config.role("cutover_target")
    return [
        f"environment {env.name} holds {target.name}'s secrets and admits {branch}, which no reviewer saw"
        for env in github_environments(config).values()
        if env.values_from == target.name
        for branch in unreviewed_branches(config)
        if env.admits(branch)
    ]


def _judge(where: str, event: str, ref: str | None, env: ConfiguredEnvironment) -> list[str]:
    if ref is None:  # a dispatch: some ref must be admitted (the README says which to pick)
        if not env.deploy_branches:
            return [f"{where}: a dispatch can never pass environment {env.name} (it admits no branch)"]
        return []
    problems = []
    if not env.admits(ref):
        problems.append(
            f"{where}: a {event} runs on {ref}, which environment {env.name} does not admit "
            f"(it deploys only {list(env.deploy_branches)})"
        )
    if event == "schedule" and env.reviewers:
        problems.append(f"{where}: a schedule would wait for a reviewer of environment {env.name} that never comes")
    if event == "pull_request_target" and env.admits(ref) and not env.reviewers:
        problems.append(
            f"{where}: a pull_request_target runs on {ref} for any pull request, forks included, and environment "
            f"{env.name} has no reviewer to stop it: use pull_request, or give the environment a required reviewer"
        )
    return problems


def refused(config: Config, env_name: str, event: str, ref: str) -> str | None:
    """GitHub's answer to one job (for the act harness): None when it would run."""
    env = github_environments(config).get(env_name)
    if env is None:
        return f"environment {env_name!r} does not exist"
    if not env.admits(ref):
        return f'Branch "{ref}" is not allowed to deploy to {env_name} due to environment protection rules.'
    if event == "schedule" and env.reviewers:
        return f"{env_name} waits for a required reviewer, and a schedule has none"
    return None
