"""Deploy a commit to an environment and wait until it is live at that commit.

Refuses a commit that is not on the environment's branch (a feature branch may go
to staging on request, never to production), records the live deploy it replaces
(so a failed probe can roll back to it), calls the deploy hook with ``ref=SHA``,
and follows the deploy: through the Render API when a key is given, otherwise by
polling ``/healthz`` until it reports the commit.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from ci_tools.config import Environment, optional_secret, require_secret
from ci_tools.errors import ConfigError, InputError, VerificationError
from ci_tools.render import (
    FAILED,
    IN_PROGRESS,
    Deploy,
    RenderAPI,
    dashboard_link,
    service_id_from_hook,
    trigger,
)

SHA = re.compile(r"^[0-9a-f]{7,40}$")


@dataclass
class DeployResult:
    deploy_id: str | None
    previous_deploy_id: str | None
    status: str
    commit: str
    waited_s: float
    followed: str  # "api" or "healthz"


def parse_commit(raw: str) -> str:
    commit = raw.strip().lower()
    if not SHA.match(commit):
        raise InputError(
            f"--commit {raw!r} is not a commit SHA",
            hint="pass the full 40-character SHA (github.sha)",
        )
    return commit


def commit_on_branch(commit: str, branch: str, *, cwd: str | None = None) -> bool:
    """Is ``commit`` reachable from ``origin/<branch>`` (or the local branch)?"""
    for ref in (f"origin/{branch}", branch):
        found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                               cwd=cwd, capture_output=True, text=True, check=False)  # fmt: skip
        if found.returncode != 0:
            continue
        result = subprocess.run(["git", "merge-base", "--is-ancestor", commit, ref],
                                cwd=cwd, capture_output=True, text=True, check=False)  # fmt: skip
        if result.returncode in (0, 1):
            return result.returncode == 0
        raise ConfigError(
            f"git does not know commit {commit[:12]}",
            hint="check out with fetch-depth: 0 so the branch history is present",
        )
    raise ConfigError(
        f"branch {branch} is not present in this checkout", hint="fetch it (fetch-depth: 0)"
    )


def check_branch(env: Environment, commit: str, *, allow_other_branch: bool) -> None:
    if commit_on_branch(commit, env.branch):
        return
    if allow_other_branch and env.name == "staging":
        return
    if allow_other_branch:
        raise InputError(
            f"only staging may run a commit from another branch; {env.name} deploys {env.branch} only",
            hint=f"merge into {env.branch} first",
        )
    raise InputError(
        f"commit {commit[:12]} is not on {env.branch}, the branch {env.name} deploys",
        hint=f"merge it into {env.branch} first"
        + (
            " (or pass --allow-other-branch to try a feature branch on staging)"
            if env.name == "staging"
            else ""
        ),
    )


def deploy(
    env: Environment,
    commit: str,
    *,
    timeout: float,
    allow_other_branch: bool = False,
    poll: float = 2.0,
    on_status: Callable[[str], None] = lambda status: None,
) -> DeployResult:
    check_branch(env, commit, allow_other_branch=allow_other_branch)
    hook = require_secret("RENDER_DEPLOY_HOOK_URL", purpose="to start a deploy")
    started = time.monotonic()
    deadline = started + timeout
    api_key = optional_secret("RENDER_API_KEY")
    service_id = optional_secret("RENDER_SERVICE_ID") or service_id_from_hook(hook)
    api = RenderAPI(api_key, service_id, deadline=deadline) if api_key else None
    try:
        known = {d.id for d in api.deploys(max_pages=1)} if api else set()
        previous = api.live() if api else None
        if previous and previous.commit == commit:
            on_status(f"{commit[:12]} is already live ({previous.id}); deploying again anyway")
        deploy_id = trigger(hook, commit, deadline=deadline)
        on_status(f"deploy hook accepted {commit[:12]}" + (f" as {deploy_id}" if deploy_id else ""))
        if api:
            final = _follow_api(api, commit, deploy_id, known, deadline, poll, on_status)
            return DeployResult(final.id, previous.id if previous else None, final.status, commit,
                                time.monotonic() - started, "api")  # fmt: skip
        _follow_health(env, commit, deadline, poll, on_status, service_id)
        return DeployResult(deploy_id, None, "live", commit, time.monotonic() - started, "healthz")
    finally:
        if api:
            api.close()


def _follow_api(
    api: RenderAPI,
    commit: str,
    deploy_id: str | None,
    known: set[str],
    deadline: float,
    poll: float,
    on_status: Callable[[str], None],
) -> Deploy:
    last = "not seen yet"
    current: Deploy | None = None
    while time.monotonic() < deadline:
        if deploy_id:
            current = api.deploy(deploy_id)
        else:  # the hook said no id: the newest deploy of our commit that did not exist before
            found = next(
                (d for d in api.deploys() if d.commit == commit and d.id not in known), None
            )
            if found:
                current, deploy_id = found, found.id
        if current:
            if current.status != last:
                on_status(f"{current.id}: {current.status}")
                last = current.status
            if current.status == "live":
                return current
            if current.status == "deactivated" and current.commit == commit and current.finished_at:
                return current  # it went live, then a newer deploy replaced it
            if current.status in FAILED or current.status == "deactivated":
                raise _failure(api, current, commit)
            if current.status not in IN_PROGRESS:
                on_status(f"{current.id}: unexpected status {current.status!r}, still waiting")
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
    raise VerificationError(
        f"deploy of {commit[:12]} not live before the deadline; last status: {last}",
        hint=dashboard_link(api.service_id, deploy_id),
    )


def _failure(api: RenderAPI, deploy: Deploy, commit: str) -> VerificationError:
    link = dashboard_link(api.service_id, deploy.id)
    if deploy.status == "canceled":
        newer = next(
            (
                d
                for d in api.deploys()
                if d.commit != commit and (d.created_at or "") > (deploy.created_at or "")
            ),
            None,
        )
        if newer:
            return VerificationError(
                f"deploy {deploy.id} of {commit[:12]} was canceled: a newer commit {str(newer.commit)[:12]} superseded it ({newer.id}, {newer.status})",
                hint=f"that newer deploy carries on; {link}",
            )
    return VerificationError(
        f"deploy {deploy.id} of {commit[:12]} ended {deploy.status}", hint=f"see the logs: {link}"
    )


def _follow_health(
    env: Environment,
    commit: str,
    deadline: float,
    poll: float,
    on_status: Callable[[str], None],
    service_id: str | None,
) -> None:
    last = "no answer yet"
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline:
            try:
                response = client.get(env.health_url)
                body = response.json()
                seen = f"HTTP {response.status_code}, commit {str(body.get('commit'))[:12]}"
                if response.status_code == 200 and body.get("commit") == commit:
                    on_status(f"{env.health_url} reports {commit[:12]}")
                    return
            except (httpx.HTTPError, ValueError, AttributeError) as exc:
                seen = type(exc).__name__
            if seen != last:
                on_status(f"/healthz: {seen}")
                last = seen
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
    raise VerificationError(
        f"{env.health_url} did not report {commit[:12]} before the deadline; last: {last}",
        hint=f"set RENDER_API_KEY for the deploy's own status; {dashboard_link(service_id)}",
    )
