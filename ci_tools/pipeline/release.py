"""A release: deploy, probe, bake, and in production roll back when the probe or the bake fails.

This is the rule every caller shares — ``ci-tools release`` (what staging.yml and
production.yml run), the rehearsal and the rollback benchmark — so it lives here
once: a production release whose probe fails goes back to the deploy that was live
before, is probed again, and still fails so that a person looks.

Before the deploy the live release's contract level is asked (``ci_tools.pipeline.levels``):
the new one's probe fails, and in production is rolled back, when its bot reaches a lower one.
When the live release gives no answer of its own (looked at a few times), nothing holds the new
one to a level: the release is not blocked for it, and the run's summary says the drop went
unchecked and the level the new one meets.

The probe and the bake judge the new commit by what happened once it served
(``ci_tools.pipeline.serving``): Telegram's delivery errors from Render's overlap, while
the old instance still answered, are not the new commit's. The rollback's own probe
judges the commit gone back to from the moment it serves again, by the same rule.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from ci_tools.context import Context
from ci_tools.errors import FatalError, RemoteError, VerificationError
from ci_tools.pipeline.bake import bake
from ci_tools.pipeline.deploy import DeployResult, deploy
from ci_tools.pipeline.levels import Found, Level, discover
from ci_tools.pipeline.probe import UNJUDGED, Check, Probe, failures, run_probe
from ci_tools.pipeline.rollback import rollback
from ci_tools.pipeline.serving import epoch, serving_since
from ci_tools.settings import Environment

Status = Callable[[str], None]
LIVE_LOOKS, LIVE_POLL = 3, 1.0  # looks at the live release's level before the deploy, seconds apart
ProbeReport = Callable[[str, list[Check]], None]


@dataclass(frozen=True)
class ReleaseRequest:
    env: Environment
    commit: str
    token: str  # the environment's bot token, for the probe
    timeout: float = 900
    deadline: float = 90  # the probe's
    poll: float = 2.0
    allow_other_branch: bool = False
    webhook_secret: str | None = None  # signs the probe's conversation
    conversation: bool = True
    fail_fast: bool = True  # a definite probe failure ends the probe at once
    bake: bool = True  # False: --no-bake (the run warns)
    floor: Level | None = None  # the live release's contract level: the probe fails below it


@dataclass(frozen=True)
class Probed:
    """What a passed probe found: from when the commit was judged (the bake goes on from it), and its level."""

    since: float
    found: Found | None


def probe_or_fail(
    ctx: Context,
    request: ReleaseRequest,
    commit: str,
    since: float,
    title: str,
    report: ProbeReport,
) -> Probe:
    """Probe ``commit``; report the checks; a VerificationError naming each failed one. The probe run."""
    probe = Probe(
        ctx,
        request.env,
        commit,
        request.token,
        since=since,
        deadline=request.deadline,
        webhook_secret=request.webhook_secret,
        conversation=request.conversation,
        fail_fast=request.fail_fast,
        floor=request.floor,
    )
    checks = run_probe(probe)
    report(title, checks)
    failed = failures(checks)
    unanswered = [c for c in failed if c.remote]
    if unanswered and not any(c.definite for c in failed):
        raise RemoteError(
            f"Telegram did not answer the probe of {request.env.name} ({unanswered[0].detail}), so nothing was judged",
            hint="check TELEGRAM_API_URL and the network; the release is live but unprobed: run ci-tools probe again",
        )
    if failed:
        raise VerificationError(
            f"{len(failed)} of {len(checks)} probe checks failed on {request.env.name}: "
            + "; ".join(f"{c.name}: {c.cause or c.detail}" for c in failed)
        )
    return probe


def probe_serving(
    ctx: Context,
    request: ReleaseRequest,
    commit: str,
    finished_at: str | None,
    title: str,
    report: ProbeReport,
    on_status: Status = lambda line: None,
) -> Probed:
    """Probe ``commit`` once it serves (within the probe's deadline); the ``since`` it was
    judged from, which the bake goes on from, and its level. ``finished_at``: Render's, when it went live."""
    started = time.monotonic()
    live_at = max(t for t in (epoch(finished_at), time.time()) if t is not None)
    since = serving_since(ctx, request.env, commit, live_at=live_at, within=request.deadline, on_status=on_status)
    left = max(1.0, request.deadline - (time.monotonic() - started))  # one deadline for both
    probe = probe_or_fail(ctx, dataclasses.replace(request, deadline=left), commit, since, title, report)
    for check in probe.checks:
        if check.ok is None and check.detail.startswith(UNJUDGED):
            on_status(f"⚠ probe: {check.name} {check.detail}; inconclusive, not a failure")
    return Probed(since, probe.found)


def live_level(ctx: Context, env: Environment) -> Found:
    """The live release's level, asked before the deploy: a few looks while the answer is not its
    own (a 5xx from Render's router, no answer), so a blip does not leave the release unheld."""
    for look in range(LIVE_LOOKS):
        if look:
            time.sleep(ctx.poll_seconds(LIVE_POLL))
        live = discover(env, ctx.request_timeout(10))
        if live.definite:
            break
    return live


def release(
    ctx: Context,
    request: ReleaseRequest,
    *,
    on_status: Status = lambda line: None,
    on_probe: ProbeReport = lambda title, checks: None,
    on_rollback: Callable[[str], None] = lambda message: None,
) -> DeployResult:
    env, commit = request.env, request.commit
    live = live_level(ctx, env)  # what a release may not fall below
    if live.definite:
        request = dataclasses.replace(request, floor=live.level)
        on_status(f"the live release meets the {live.level} level")
    else:
        on_status(f"the live release's level is unknown ({live.why}): no level to hold this one to")
    result = deploy(
        ctx,
        env,
        commit,
        timeout=request.timeout,
        allow_other_branch=request.allow_other_branch,
        poll=request.poll,
        on_status=on_status,
    )
    on_status(f"✓ live after {result.waited_s:.0f}s; probing")
    commit = result.commit  # the full SHA
    try:
        probed = probe_serving(
            ctx, request, commit, result.finished_at, f"Probe of {env.name} at {commit[:12]}", on_probe, on_status
        )
    except VerificationError as failure:
        if not env.rollback_on_failed_probe:
            raise
        _roll_back(ctx, request, result, failure.message, "its probe", on_status, on_probe, on_rollback)
    if not live.definite:  # not blocked for it, nor passed as if a level had been held: said where the run is read
        level = f"the {probed.found.level} level" if probed.found else "its level"
        result.unheld = (
            f"the live release's contract level was unknown before the deploy ({live.why}): nothing held "
            f"{commit[:12]} to it, so a drop could not be checked; it meets {level}"
        )
    if request.bake and env.bake_minutes > 0:
        baked = bake(
            ctx,
            env,
            commit,
            request.token,
            probed.since,
            webhook_secret=request.webhook_secret,
            level=probed.found,
            conversation=request.conversation,
            newer=lambda: _newer_release(ctx, result),
            on_status=on_status,
        )
        result.baked = baked
        if baked.unresolved:  # not the commit's to be rolled back for, not a pass either: a person looks
            raise VerificationError(
                f"{commit[:12]} could not be judged in its bake on {env.name}: {baked.detail}; nothing was rolled back",
                hint="if the Key Value answers, roll back (rollback.yml, or ci-tools rollback "
                f"{env.name} --previous); if it is down, {commit[:12]} stays",
            )
        if not baked.passed:
            if not env.rollback_on_failed_probe:
                raise VerificationError(f"{commit[:12]} failed its bake on {env.name}: {baked.detail}")
            _roll_back(ctx, request, result, baked.detail, "its bake", on_status, on_probe, on_rollback)
        if baked.ended_early:
            on_status(f"↷ another commit serves, so the bake {baked.detail}")
        else:
            on_status(
                f"⚠ baked, partly inconclusive: {baked.detail}" if baked.inconclusive else f"✓ baked: {baked.detail}"
            )
    return result


def _roll_back(
    ctx: Context,
    request: ReleaseRequest,
    result: DeployResult,
    why: str,
    what: str,
    on_status: Status,
    on_probe: ProbeReport,
    on_rollback: Callable[[str], None],
) -> NoReturn:
    """The rule a failed probe and a failed bake share: back to the deploy live before, probed
    again, and the run fails so that a person looks."""
    env, commit = request.env, result.commit
    if not result.previous_deploy_id:
        raise VerificationError(
            f"{why}; no earlier deploy was recorded, so nothing was rolled back",
            hint="roll back by hand from the dashboard, or set RENDER_API_KEY so deploys are recorded",
        )
    on_rollback(why)
    on_status(f"✗ {what} failed; rolling back to {result.previous_deploy_id}")
    back = rollback(
        ctx, env, to=result.previous_deploy_id, timeout=request.timeout, poll=request.poll, on_status=on_status
    )
    target, final = back.target, back.final
    try:
        probe_serving(
            ctx,
            dataclasses.replace(request, floor=None),  # the release gone back to is judged on its own
            str(target.commit),
            final.finished_at,
            f"Probe of {env.name} after rollback",
            on_probe,
            on_status,
        )
        after = "the rollback probe passed"
    except VerificationError as second:
        after = f"the probe after rollback failed too: {second.message}"
    rebuilt = f" ({back.how()})" if back.rebuilt else ""
    raise VerificationError(
        f"{commit[:12]} failed {what} on {env.name} and was rolled back to "
        f"{str(target.commit)[:12]} ({final.id}){rebuilt}; {after} [{why}]",
        hint="fix forward on develop; a person must look at this release",
    )


def _newer_release(ctx: Context, result: DeployResult) -> str | None:
    """Another commit serves now (Render's newest ``live`` deploy): the window ends, it is not
    ours to judge any more. A deploy still building does not end it (it may fail, and Render then
    keeps ours serving: render.com/docs/deploys#zero-downtime-deploys), nor does a redeploy of the
    same commit (a deploy hook, a Blueprint sync, an environment change): nobody else bakes it."""
    api_key, service_id = ctx.optional("RENDER_API_KEY"), ctx.optional("RENDER_SERVICE_ID")
    if not api_key or not service_id or not result.deploy_id:
        return None
    try:
        with ctx.render(api_key, service_id, deadline=time.monotonic() + 30) as api:
            serving = next((d for d in api.deploys(max_pages=1) if d.status == "live"), None)
    except FatalError:
        return None
    if serving is None or serving.id == result.deploy_id or serving.commit == result.commit:
        return None
    if serving.trigger == "rollback":
        return f"rolled back while it baked: {str(serving.commit)[:12]} serves now ({serving.id})"
    return f"a newer release serves now ({serving.id}, {str(serving.commit)[:12]})"
