"""Roll an environment back to an earlier deploy through the Render API, and wait until live.

Which deploy, and why never a rejected one, is ``ci_tools.pipeline.release_order``'s rule.
A rollback first waits for any deploy Render is still working on, then judges against what
is live *now*: a target already live is left alone (the dispatch was overtaken).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ci_tools.clients.render import Deploy
from ci_tools.context import Context
from ci_tools.pipeline import release_order
from ci_tools.pipeline.deploy import follow
from ci_tools.settings import Environment


@dataclass(frozen=True)
class RolledBack:
    target: Deploy  # the deploy gone back to
    final: Deploy  # the deploy now live (the rollback's own, or the target when nothing changed)
    changed: bool  # False: the target was live already, nothing was done


def rollback(
    ctx: Context,
    env: Environment,
    *,
    to: str | None,
    timeout: float,
    poll: float = 2.0,
    on_status: Callable[[str], None] = lambda status: None,
    on_warning: Callable[[str], None] = lambda warning: None,
) -> RolledBack:
    api_key = ctx.secret("RENDER_API_KEY", purpose="rollback needs the Render API")
    service_id = ctx.secret("RENDER_SERVICE_ID", purpose="the service to roll back")
    deadline = time.monotonic() + timeout
    with ctx.render(api_key, service_id, deadline=deadline) as api:
        release_order.settle(api, deadline, on_status, poll)
        target = release_order.choose(api, to, on_warning)
        live = api.live()
        if live is not None and (live.id == target.id or live.commit == target.commit):
            on_status(f"{str(target.commit)[:12]} is live already ({live.id}): nothing to roll back")
            return RolledBack(target, live, changed=False)
        commit = str(target.commit)
        on_status(f"rolling {env.name} back to {target.id} ({commit[:12]})")
        known = {d.id for d in api.deploys(max_pages=1)}
        started = api.create_once(
            lambda: api.rollback(target.id),
            lambda: api.created_since(known, commit, "rollback"),
            on_status=on_status,
        )
        assert started is not None  # the rollback endpoint always answers with the deploy
        on_status(f"rollback deploy {started.id}: {started.status}")
        final = follow(api, commit, started.id, known, deadline, poll, on_status)
        return RolledBack(target, final, changed=True)
