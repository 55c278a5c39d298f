"""Deploy exactly one commit to an environment, exactly once, and wait until it is live.

Two modes, and what each guarantees:

- **API** (``RENDER_API_KEY`` and the service id): ``POST /v1/services/{id}/deploys``
  with ``commitId`` — Render builds that commit and no other. The deploy that
  counts is the one carrying our full SHA; it is followed by its own status.
- **Hook** (only ``RENDER_DEPLOY_HOOK_URL``): the hook takes no ref and deploys
  the head of the branch. ``/healthz`` must then report our commit; if the branch
  moved on meanwhile, the head went live instead and the deploy fails saying so.
  A feature branch on staging needs the API.

Either way the commit must be on the environment's branch (a feature branch may go
to staging on request, never to production), the live deploy it replaces is
recorded (so a failed probe can roll back to it), and a create that got no clear
answer is looked for before it is ever sent again.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from ci_tools.clients.health import NotTheContract, Unreachable, health_of
from ci_tools.clients.render import (
    FAILED,
    IN_PROGRESS,
    Deploy,
    RenderAPI,
    dashboard_link,
    service_id_from_hook,
    trigger_hook,
)
from ci_tools.context import Context
from ci_tools.errors import ConfigError, InputError, RemoteError, VerificationError
from ci_tools.pipeline import blueprint_sync, levels, release_order
from ci_tools.pipeline.levels import Level

if TYPE_CHECKING:
    from ci_tools.pipeline.bake import BakeResult
from ci_tools.settings import Environment

SHA = re.compile(r"^[0-9a-f]{7,40}$")
Status = Callable[[str], None]


class Followed(StrEnum):
    """How a deploy was seen to go live."""

    API = "api"  # Render's API: the deploy carrying our commit, by its own status
    HEALTHZ = "healthz"  # the deploy hook, then the bot's /healthz reporting our commit


@dataclass
class DeployResult:
    deploy_id: str | None
    previous_deploy_id: str | None
    status: str
    commit: str
    waited_s: float
    followed: Followed
    baked: BakeResult | None = None  # the bake window's verdict, once it ran
    finished_at: str | None = None  # Render's finishedAt: when the deploy went live (API mode)


def parse_commit(raw: str, *, cwd: str | None = None) -> str:
    """The full 40-character SHA: a short one is resolved in this checkout, or refused."""
    commit = raw.strip().lower()
    if not SHA.match(commit):
        raise InputError(
            f"--commit {raw!r} is not a commit SHA",
            hint="pass the full 40-character SHA (github.sha)",
        )
    if len(commit) == 40:
        return commit
    found = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        raise InputError(
            f"--commit {raw!r} is short and this checkout cannot resolve it",
            hint="pass the full 40-character SHA (github.sha); Render deploys full SHAs only",
        )
    return found.stdout.strip()


def _git_ok(*args: str, cwd: str | None = None) -> int:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False).returncode


def commit_on_branch(commit: str, branch: str, *, cwd: str | None = None) -> bool:
    """Is ``commit`` reachable from ``origin/<branch>`` (or the local branch)?"""
    for ref in (f"origin/{branch}", branch):
        if _git_ok("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=cwd) != 0:
            continue
        code = _git_ok("merge-base", "--is-ancestor", commit, ref, cwd=cwd)
        if code in (0, 1):
            return code == 0
        raise ConfigError(
            f"git does not know commit {commit[:12]}",
            hint="check out with fetch-depth: 0 so the branch history is present",
        )
    raise ConfigError(f"branch {branch} is not present in this checkout", hint="fetch it (fetch-depth: 0)")


def check_branch(env: Environment, commit: str, *, allow_other_branch: bool) -> bool:
    """True if ``commit`` is on the environment's branch; raise unless another is allowed."""
    if commit_on_branch(commit, env.branch):
        return True
    if allow_other_branch and env.accepts_feature_branches:
        return False
    if allow_other_branch:
        raise InputError(
            f"only an environment with accepts_feature_branches may run a commit from another branch; "
            f"{env.name} deploys {env.branch} only",
            hint=f"merge into {env.branch} first",
        )
    raise InputError(
        f"commit {commit[:12]} is not on {env.branch}, the branch {env.name} deploys",
        hint=f"merge it into {env.branch} first"
        + (
            " (or pass --allow-other-branch to try a feature branch on staging)" if env.accepts_feature_branches else ""
        ),
    )


def deploy(
    ctx: Context,
    env: Environment,
    commit: str,
    *,
    timeout: float,
    allow_other_branch: bool = False,
    poll: float = 2.0,
    on_status: Status = lambda status: None,
) -> DeployResult:
    commit = parse_commit(commit)
    on_branch = check_branch(env, commit, allow_other_branch=allow_other_branch)
    started = time.monotonic()
    deadline = started + timeout
    api_key = ctx.optional("RENDER_API_KEY")
    hook = ctx.optional("RENDER_DEPLOY_HOOK_URL")
    service_id = ctx.optional("RENDER_SERVICE_ID") or (service_id_from_hook(hook) if hook else None)
    if api_key and service_id:
        with ctx.render(api_key, service_id, deadline=deadline) as api:
            final, previous = _deploy_by_api(api, env, commit, deadline, poll, on_status)
        return DeployResult(
            final.id,
            previous.id if previous else None,
            final.status,
            commit,
            time.monotonic() - started,
            Followed.API,
            finished_at=final.finished_at,
        )
    if not hook:
        raise ConfigError(
            "neither RENDER_API_KEY with RENDER_SERVICE_ID nor RENDER_DEPLOY_HOOK_URL is set",
            hint="set RENDER_API_KEY and RENDER_SERVICE_ID (deploys the exact commit), or the deploy hook",
        )
    if not on_branch:
        raise ConfigError(
            f"{commit[:12]} is not on {env.branch}, and the deploy hook can only deploy {env.branch}'s head",
            hint="a feature branch on staging needs RENDER_API_KEY and RENDER_SERVICE_ID",
        )
    if env.rollback_on_failed_probe and env.health_url:
        release_order.check_order(env, commit, _live_commit(ctx, env.health_url))
    deploy_id = _deploy_by_hook(ctx, env, hook, commit, deadline, poll, on_status, service_id)
    return DeployResult(deploy_id, None, "live", commit, time.monotonic() - started, Followed.HEALTHZ)


def _deploy_by_api(
    api: RenderAPI, env: Environment, commit: str, deadline: float, poll: float, on_status: Status
) -> tuple[Deploy, Deploy | None]:
    live = api.live()
    # Render's own deploy of this commit (a Blueprint sync) comes first; racing it, one would cancel the other.
    blueprint_sync.wait_for_sync(api, env.branch, commit, live.commit if live else None, deadline, poll, on_status)
    if env.rollback_on_failed_probe:  # releases go in order: judged against what is live now
        release_order.settle(api, deadline, on_status, poll)
    previous = api.live()
    if previous and previous.commit == commit and previous.trigger == "blueprint_sync":
        # The sync put this commit live unprobed: what a failed probe goes back to is what was live before it.
        before, _ = release_order.previous_target(list(api.deploys()), ordered=env.rollback_on_failed_probe)
        on_status(
            f"Render's Blueprint sync put {commit[:12]} live unprobed ({previous.id}); "
            f"if its probe fails it goes back to {before.id if before else 'nothing'}"
        )
        previous = before
    release_order.check_order(env, commit, previous.commit if previous else None)
    known = {d.id for d in api.deploys(max_pages=1)}
    if previous and previous.commit == commit:
        on_status(f"{commit[:12]} is already live ({previous.id}); deploying again anyway")
    created = api.create_once(
        lambda: api.create_deploy(commit),
        lambda: api.created_since(known, commit, "api"),
        on_status=on_status,
    )
    on_status(f"Render accepted {commit[:12]}" + (f" as {created.id}" if created else " (queued)"))
    final = follow(api, commit, created.id if created else None, known, deadline, poll, on_status)
    return final, previous


def follow(
    api: RenderAPI,
    commit: str,
    deploy_id: str | None,
    known: set[str],
    deadline: float,
    poll: float,
    on_status: Status,
) -> Deploy:
    """Follow a deploy of ``commit`` until it is live; without an id, the first new one of it.

    While Render updates the service, its events are read too: a ``server_failed`` (the new
    instance exits, or fails its health check) is named as soon as Render reports it,
    rather than after a silent deadline. At the deadline a deploy still in progress is
    cancelled, so it cannot go live later unprobed; Render keeps the old instance serving.
    """
    last = "not seen yet"
    current: Deploy | None = None
    cause: str | None = None
    while time.monotonic() < deadline:
        if deploy_id:
            current = api.deploy(deploy_id)
        else:  # queued with no body: the newest deploy of our commit that did not exist before
            found = next((d for d in api.deploys() if d.commit == commit and d.id not in known), None)
            if found:
                current, deploy_id = found, found.id
        if current:
            if current.commit != commit:
                raise VerificationError(
                    f"deploy {current.id} carries {str(current.commit)[:12]}, not {commit[:12]}",
                    hint=dashboard_link(api.service_id, current.id),
                )
            if current.status != last:
                on_status(f"{current.id}: {current.status}")
                last = current.status
            if current.status == "live":
                return current
            if current.status == "deactivated" and current.finished_at:
                return current  # it went live, then a newer deploy replaced it
            if current.status in FAILED or current.status == "deactivated":
                # Render may fail the deploy between two polls: its events still say why.
                raise _failure(api, current, commit, cause or _server_failure(api, current))
            if current.status not in IN_PROGRESS:
                on_status(f"{current.id}: unexpected status {current.status!r}, still waiting")
            if current.status == "update_in_progress" and (seen := _server_failure(api, current)) and seen != cause:
                cause = seen
                on_status(f"✗ {cause}; Render keeps the previous instance serving")
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
    if current is not None and current.status in IN_PROGRESS:
        return _cancel_at_deadline(api, current, commit, cause, on_status)
    raise VerificationError(
        f"deploy of {commit[:12]} not live before the deadline; last status: {last}",
        hint=dashboard_link(api.service_id, deploy_id),
    )


def _server_failure(api: RenderAPI, deploy: Deploy) -> str | None:
    """What the newest ``server_failed`` since this deploy began says, with Render's name for it."""
    since = deploy.created_at or datetime.now(UTC).isoformat()
    failed = api.events(since=since, kinds=("server_failed",), limit=20)
    return f"{failed[0].failure()} (server_failed)" if failed else None


def _cancel_at_deadline(api: RenderAPI, deploy: Deploy, commit: str, cause: str | None, on_status: Status) -> Deploy:
    """Cancel a deploy that did not get live in time; the old instance is still serving."""
    api.deadline = time.monotonic() + 30  # the cancel's own budget, past the follow's deadline
    why = cause or f"still {deploy.status}"
    try:
        cancelled = api.cancel(deploy.id)
    except RemoteError:
        now = api.deploy(deploy.id)
        if now.status == "live":  # it went live as we gave up: live it is, and the probe judges it
            return now
        raise
    on_status(f"cancelled {deploy.id} ({cancelled.status}) at the deadline")
    raise VerificationError(
        f"deploy {deploy.id} of {commit[:12]} did not get healthy before the deadline ({why}); "
        "it was cancelled, and the previous deploy still serves",
        hint=f"see its logs: {dashboard_link(api.service_id, deploy.id)}",
    )


def _failure(api: RenderAPI, deploy: Deploy, commit: str, cause: str | None = None) -> VerificationError:
    link = dashboard_link(api.service_id, deploy.id)
    if deploy.status == "canceled":
        newer = next(
            (d for d in api.deploys() if d.commit != commit and (d.created_at or "") > (deploy.created_at or "")),
            None,
        )
        if newer:
            return VerificationError(
                f"deploy {deploy.id} of {commit[:12]} was canceled: a newer commit "
                f"{str(newer.commit)[:12]} superseded it ({newer.id}, {newer.status})",
                hint=f"that newer deploy carries on; {link}",
            )
    why = f" ({cause})" if cause else ""
    return VerificationError(
        f"deploy {deploy.id} of {commit[:12]} ended {deploy.status}{why}", hint=f"see the logs: {link}"
    )


def _live_commit(ctx: Context, health_url: str) -> str | None:
    """Without the API, what ``/healthz`` says is live (None if it does not answer or say)."""
    try:
        return health_of(health_url, ctx.request_timeout(10)).commit
    except (Unreachable, NotTheContract):
        return None


def _moved_past(commit: str, seen: str) -> bool:
    """Is ``seen`` a later commit that contains ``commit`` (the branch moved on)?"""
    return seen != commit and _git_ok("merge-base", "--is-ancestor", commit, seen) == 0


def _deploy_by_hook(
    ctx: Context,
    env: Environment,
    hook: str,
    commit: str,
    deadline: float,
    poll: float,
    on_status: Status,
    service_id: str | None,
) -> str | None:
    live = levels.discover(env, ctx.request_timeout(10))
    if env.health_url is None or (live.definite and live.level is Level.BASE):
        # The hook says nothing of what it deployed; only the bot's health answer could (asked before
        # anything is triggered, so nothing is deployed unconfirmable).
        raise ConfigError(
            f"{env.name}'s bot gives no health answer ({live.why}), so a deploy through the hook cannot be confirmed",
            hint="set RENDER_API_KEY and RENDER_SERVICE_ID (Render's own deploy status), "
            "or give the bot a health endpoint",
        )
    deploy_id = trigger_hook(hook, base=ctx.services.render, timeout=ctx.request_timeout(30), deadline=deadline)
    on_status(f"deploy hook accepted (it deploys {env.branch}'s head)" + (f" as {deploy_id}" if deploy_id else ""))
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            health = health_of(env.health_url, ctx.request_timeout(10))
            seen = f"HTTP {health.http_status}, commit {str(health.commit)[:12]}"
            if health.commit == commit and health.http_status == 200:
                on_status(f"{env.health_url} reports {commit[:12]}")
                return deploy_id
            if health.commit and _moved_past(commit, health.commit):
                raise VerificationError(
                    f"{env.branch} moved past {commit[:12]}: the hook deployed its head "
                    f"{health.commit[:12]}, which is now live instead",
                    hint="the hook deploys the branch's head; set RENDER_API_KEY and "
                    "RENDER_SERVICE_ID to deploy an exact commit, or release the newer one",
                )
        except Unreachable as exc:
            seen = exc.kind
        except NotTheContract:
            seen = "NotTheContract"
        if seen != last:
            on_status(f"{env.health_path}: {seen}")
            last = seen
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
    raise VerificationError(
        f"{env.health_url} did not report {commit[:12]} before the deadline; last: {last}",
        hint=f"set RENDER_API_KEY for the deploy's own status; {dashboard_link(service_id)}",
    )
