"""Render's Blueprint auto-sync, as a release and a memory job meet it.

When ``render.yaml`` is linked as a Blueprint with auto-sync, every push to the Blueprint's
branch that changes the file is applied by Render itself (render.com/docs/infrastructure-as-code):
it redeploys the services the file names and re-applies their settings, ``ipAllowList: []``
of each Key Value included. So a release of such a commit meets two deploys of it — Render's
sync deploy and its own — and by Render's default overlapping-deploy policy the newer cancels
the older; and a memory job that admitted its runner to a Key Value is shut out mid-job.

The rule here: before anything changes, wait until Render has synced the commit (and no sync
is running), then go on. The release then waits for the sync's deploy like any other deploy in
progress, and if that deploy put the commit live unprobed, the rollback target is the deploy
live before it, not the sync's. A sync that fails or never comes stops the job with the fix.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from ci_tools.clients.render import Blueprint, BlueprintSync, RenderAPI
from ci_tools.errors import ConfigError, RemoteError, VerificationError

BLUEPRINT_FILE = "render.yaml"
Status = Callable[[str], None]


def auto_syncing(api: RenderAPI, branch: str | None = None) -> Blueprint | None:
    """The Blueprint that auto-syncs ``branch`` (any branch when None), if there is one."""
    return next((b for b in api.blueprints() if b.auto_sync and branch in (None, b.branch)), None)


def describe(api: RenderAPI, branch: str) -> tuple[bool | None, str]:
    """For preflight and status: is auto-sync on for ``branch``, and one line saying what follows."""
    try:
        found = [b for b in api.blueprints() if b.branch == branch]
    except (RemoteError, ConfigError) as exc:
        return None, f"Blueprints could not be read ({exc.message})"
    syncing = next((b for b in found if b.auto_sync), None)
    if syncing is not None:
        return True, (
            f"Blueprint {syncing.name} auto-syncs {branch}: a commit that changes {BLUEPRINT_FILE} is "
            "redeployed by Render itself and re-applies ipAllowList; releases wait for that sync"
        )
    if found:
        return False, f"Blueprint {found[0].name} is linked to {branch} with auto-sync off: sync it by hand"
    return False, f"no Blueprint is linked to {branch}"


def changes_blueprint(commit: str, base: str | None, *, cwd: str | None = None) -> bool:
    """Does ``commit`` change render.yaml since ``base`` (its first parent when None)?"""
    code = subprocess.run(
        ["git", "diff", "--quiet", base or f"{commit}^1", commit, "--", BLUEPRINT_FILE],
        cwd=cwd,
        capture_output=True,
        check=False,
    ).returncode
    return code == 1  # 0 unchanged; anything else (an unknown base, a root commit): nothing to wait for


def _covers(sync: BlueprintSync, commit: str, *, cwd: str | None = None) -> bool:
    """Did ``sync`` apply ``commit``'s render.yaml (it synced the commit or a later one)?"""
    if sync.commit == commit:
        return True
    return (
        subprocess.run(
            ["git", "merge-base", "--is-ancestor", commit, sync.commit], cwd=cwd, capture_output=True, check=False
        ).returncode
        == 0
    )


def wait_for_sync(
    api: RenderAPI,
    branch: str,
    commit: str | None,
    base: str | None,
    deadline: float,
    poll: float,
    on_status: Status,
) -> BlueprintSync | None:
    """Until no sync is running and, if ``commit`` changes render.yaml, Render has synced it.

    Returns the sync that applied ``commit`` (None when none was needed). Raises when that
    sync failed, or when it has not come by ``deadline``: nothing was changed then.
    """
    try:
        blueprint = auto_syncing(api, branch)
    except (RemoteError, ConfigError) as exc:
        on_status(f"⚠ Render's Blueprints could not be read ({exc.message}); going on without waiting for a sync")
        return None
    if blueprint is None:
        return None
    expected = commit is not None and changes_blueprint(commit, base)
    said = ""
    while True:
        syncs = api.blueprint_syncs(blueprint.id)
        running = next((s for s in syncs if not s.done), None)
        mine = next((s for s in syncs if commit is not None and _covers(s, commit)), None) if expected else None
        if running is None and (mine is not None or not expected):
            if mine is not None and mine.state == "error":
                raise VerificationError(
                    f"Render's Blueprint sync {mine.id} of {str(commit)[:12]} failed, so nothing was deployed",
                    hint=f"fix {BLUEPRINT_FILE} (the dashboard's Blueprint page names the error), then release again",
                )
            if mine is not None:
                on_status(f"Render's Blueprint sync {mine.id} applied {BLUEPRINT_FILE} of {str(commit)[:12]}")
            return mine
        waiting_for = running.id if running else f"a sync of {str(commit)[:12]}"
        if time.monotonic() >= deadline:
            raise VerificationError(
                f"Blueprint {blueprint.name} auto-syncs {branch}, and {waiting_for} did not finish before the "
                "deadline: Render would redeploy and re-apply settings while this job runs, so nothing was changed",
                hint="let the sync finish (or run it from the dashboard's Blueprint page), then run again; "
                "or turn Blueprint auto-sync off so the pipeline is the only deployer",
            )
        if waiting_for != said:
            on_status(
                f"Blueprint {blueprint.name} auto-syncs {branch}: waiting for {waiting_for} before anything changes"
            )
            said = waiting_for
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
