"""Roll an environment back to an earlier deploy through the Render API, and wait until live.

Which deploy, and why never a rejected one, is ``ci_tools.pipeline.release_order``'s rule.
A rollback first waits for any deploy Render is still working on, then judges against what
is live *now*: a target already live is left alone (the dispatch was overtaken).

Render rolls back by reusing the target's build, and keeps only the plan's most recent builds
(render.com/docs/rollbacks, "Build retention"). Past that it refuses, and Render's own advice
is to "redeploy a specific commit instead" (render.com/articles/how-to-rollback-a-broken-
deployment-quickly): so a refused rollback deploys the target's commit again (``POST /deploys``
with ``commitId``), followed to live like any deploy. That rebuild is still a rollback: its
target was chosen by ``release_order.choose``, and it is not held to the "only the live commit
or a descendant" rule that forward releases are (``release_order.check_order``). A commit git
does not have (a rewritten branch) is refused before anything is deployed: Render could not
check it out either.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ci_tools.clients.render import BuildNotKept, Deploy, RenderAPI
from ci_tools.context import Context
from ci_tools.pipeline import release_order
from ci_tools.pipeline.deploy import follow
from ci_tools.settings import Environment

Status = Callable[[str], None]


@dataclass(frozen=True)
class RolledBack:
    target: Deploy  # the deploy gone back to
    final: Deploy  # the deploy now live (the rollback's own, or the target when nothing changed)
    changed: bool  # False: the target was live already, nothing was done
    rebuilt: bool = False  # True: Render no longer kept the target's build, so its commit was deployed again
    waited_s: float = 0.0  # from the rollback's start until live

    def how(self) -> str:
        """How the commit came back, for the lines and summaries that report a rollback."""
        commit = str(self.target.commit)[:12]
        if not self.rebuilt:
            return f"rolled back to {commit} ({self.final.id})"
        return f"build no longer kept: redeployed {commit} ({self.final.id}), {_minutes(self.waited_s)}"


def rollback(
    ctx: Context,
    env: Environment,
    *,
    to: str | None,
    timeout: float,
    poll: float = 2.0,
    on_status: Status = lambda status: None,
    on_warning: Callable[[str], None] = lambda warning: None,
) -> RolledBack:
    api_key = ctx.secret("RENDER_API_KEY", purpose="rollback needs the Render API")
    service_id = ctx.secret("RENDER_SERVICE_ID", purpose="the service to roll back")
    started_at = time.monotonic()
    deadline = started_at + timeout
    with ctx.render(api_key, service_id, deadline=deadline) as api:
        release_order.settle(api, deadline, on_status, poll)
        target = release_order.choose(api, to, on_warning, ordered=env.rollback_on_failed_probe)
        live = api.live()
        if live is not None and (live.id == target.id or live.commit == target.commit):
            on_status(f"{str(target.commit)[:12]} is live already ({live.id}): nothing to roll back")
            return RolledBack(target, live, changed=False)
        commit = str(target.commit)
        on_status(f"rolling {env.name} back to {target.id} ({commit[:12]})")
        known = {d.id for d in api.deploys(max_pages=1)}
        try:
            started = api.create_once(
                lambda: api.rollback(target.id),
                lambda: api.created_since(known, commit, "rollback"),
                on_status=on_status,
            )
        except BuildNotKept as gone:
            release_order.require_commit(commit)
            final = _rebuild(api, gone, commit, known, deadline, poll, on_status)
            return RolledBack(target, final, changed=True, rebuilt=True, waited_s=time.monotonic() - started_at)
        assert started is not None  # the rollback endpoint always answers with the deploy
        on_status(f"rollback deploy {started.id}: {started.status}")
        final = follow(api, commit, started.id, known, deadline, poll, on_status)
        return RolledBack(target, final, changed=True, waited_s=time.monotonic() - started_at)


def _rebuild(
    api: RenderAPI, gone: BuildNotKept, commit: str, known: set[str], deadline: float, poll: float, on_status: Status
) -> Deploy:
    """Deploy ``commit`` again, exactly once, and follow it until live (Render builds it anew)."""
    on_status(f"{gone.message.removesuffix('; nothing changed')}: deploying {commit[:12]} again instead")
    created = api.create_once(
        lambda: api.create_deploy(commit),
        lambda: api.created_since(known, commit, "api"),
        on_status=on_status,
    )
    on_status(f"Render accepted {commit[:12]}" + (f" as {created.id}" if created else " (queued)"))
    return follow(api, commit, created.id if created else None, known, deadline, poll, on_status)


def _minutes(seconds: float) -> str:
    """'3 min', or '<1 min' for a rebuild quicker than that (the stand-in's are)."""
    return f"{max(1, round(seconds / 60))} min" if seconds >= 30 else "<1 min"
