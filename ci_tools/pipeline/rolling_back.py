"""Roll an environment back to an earlier deploy through the Render API, and wait until live."""

from __future__ import annotations

import time
from collections.abc import Callable

from ci_tools.clients.render import Deploy, RenderAPI, dashboard_link
from ci_tools.context import Context
from ci_tools.errors import InputError
from ci_tools.pipeline.deployment import follow
from ci_tools.settings import Environment


def choose_target(api: RenderAPI, to: str | None) -> Deploy:
    """``to`` as given, or the deploy that was live before the current one."""
    if to:
        target = api.deploy(to)
        if target.status not in ("live", "deactivated"):
            raise InputError(
                f"deploy {to} never went live ({target.status}); it cannot be rolled back to",
                hint=f"pick one that was live: {dashboard_link(api.service_id)}",
            )
        return target
    deploys = list(api.deploys())
    live = next((d for d in deploys if d.status == "live"), None)
    for deploy in deploys:
        if deploy.status == "deactivated" and (live is None or deploy.commit != live.commit):
            return deploy
    raise InputError("no earlier deploy went live; nothing to roll back to", hint=dashboard_link(api.service_id))


def rollback(
    ctx: Context,
    env: Environment,
    *,
    to: str | None,
    timeout: float,
    poll: float = 2.0,
    on_status: Callable[[str], None] = lambda status: None,
) -> tuple[Deploy, Deploy]:
    """Returns (the deploy rolled back to, the new deploy that put it live)."""
    api_key = ctx.secret("RENDER_API_KEY", purpose="rollback needs the Render API")
    service_id = ctx.secret("RENDER_SERVICE_ID", purpose="the service to roll back")
    deadline = time.monotonic() + timeout
    with ctx.render(api_key, service_id, deadline=deadline) as api:
        target = choose_target(api, to)
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
        return target, final
