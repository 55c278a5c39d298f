"""Releases go in order: what production may be moved to, read from Render's deploy history.

Nothing else survives between runs, so every rule here is derived from the deploy list
alone (newest first, as Render returns it):

- **Rejected deploys.** A rollback deploy went away from the deploy that was live just
  before it: that deploy was rejected (a release whose probe failed is rolled back by the
  pipeline, so it is rejected the same way). A deploy whose commit a newer deploy had
  rejected is rejected too: going back to it would bring that code back.
- **Rebuilds are rollbacks too.** When Render no longer keeps the target's build, a rollback
  deploys its commit again (trigger ``api``: Render records nothing else, and its deploy has no
  free-text field to say why: the vendored description's ``deploy`` and ``POST /deploys`` hold
  only ``commitId``, ``clearCache`` and ``imageUrl``). In an environment that keeps release order
  (``rollback_on_failed_probe``: production) such a deploy goes back in release order — its
  commit first went live *before* the commit it replaced — which a forward release never does,
  so it rejects what it replaced just as a rollback does. Staging deploys any commit in any
  order, so there a deploy of an older commit is only that: no rebuild is read from it.
- **``--previous``** is the newest deploy older than the live one that was live at some
  point, was not rejected, and carries another commit.
- **Monotonic production.** An environment that rolls back on a failed probe deploys only
  the live commit or a descendant of it; going back is ``ci-tools rollback``'s job. Its rebuild
  of an older commit is therefore not a release and is not judged by ``check_order``: its
  target is chosen by the rules above (``choose``), and that is the whole check.
- **One change at a time.** A job that changes what production runs first waits for a
  deploy Render is still working on (another job's), then judges against what is live.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ci_tools.clients.render import Deploy, RenderAPI, dashboard_link
from ci_tools.errors import ConfigError, InputError, VerificationError
from ci_tools.settings import Environment

WENT_LIVE = ("live", "deactivated")
# The fewest previous builds any Render plan keeps for rollbacks (a free web service: 2;
# render.com/articles/how-to-rollback-a-broken-deployment-quickly, "Check how far back you can go").
SMALLEST_RETENTION = 2


@dataclass(frozen=True)
class Skipped:
    deploy: Deploy
    why: str

    def line(self) -> str:
        return f"{self.deploy.id} ({str(self.deploy.commit)[:12]}) {self.why}"


def rejected(deploys: Sequence[Deploy], *, ordered: bool = False) -> dict[str, str]:
    """Deploy id → why it was rejected, for every deploy a rollback went away from.

    ``ordered``: the environment keeps release order, so a rollback's rebuild can be told apart.
    """
    found: dict[str, str] = {}
    went_back = rebuilds(deploys, ordered=ordered)
    for index, deploy in enumerate(deploys):
        if (deploy.trigger != "rollback" and deploy.id not in went_back) or deploy.status not in WENT_LIVE:
            continue
        replaced = next((d for d in deploys[index + 1 :] if d.status in WENT_LIVE), None)
        if replaced is not None and replaced.id not in found:
            found[replaced.id] = f"was rolled back from by {deploy.id}" + (
                f" (a rebuild of {str(deploy.commit)[:12]})" if deploy.id in went_back else ""
            )
    commits = {d.commit: (d.id, why) for d in reversed(deploys) if (why := found.get(d.id))}
    for index, deploy in enumerate(deploys):
        if deploy.id in found or deploy.commit not in commits:
            continue
        by, _ = commits[deploy.commit]
        if any(d.id == by for d in deploys[:index]):  # the rejection is newer than this deploy
            found[deploy.id] = f"carries {str(deploy.commit)[:12]}, rejected later in {by}"
    return found


def rebuilds(deploys: Sequence[Deploy], *, ordered: bool = False) -> set[str]:
    """Ids of the deploys that were a rollback's rebuild (trigger ``api``, as Render records it).

    Only where releases go in order (``ordered``): elsewhere an older commit is deployed on
    purpose, and nothing in Render's record tells a rebuild from it, so none is read (the caller
    must say; the default is the environment without a release order).

    Two marks, both needed: the deploy goes back in release order (its commit first went live,
    by a deploy that built it, before the commit it replaced did), and the last deploy that
    *built* its commit (a rollback deploy reuses a build, so it does not count: a rollback to
    the commit's older deploy may lie nearer) lies past the smallest build retention
    (``SMALLEST_RETENTION``): nearer, Render would have rolled back, and the pipeline rebuilds
    only when Render refused.
    """
    if not ordered:
        return set()
    live = [d for d in deploys if d.status in WENT_LIVE]
    # newest first, so the oldest index wins; a Render rollback reuses an older build: no first
    first_built = {d.commit: index for index, d in enumerate(live) if d.trigger != "rollback"}
    found: set[str] = set()
    for index, deploy in enumerate(live[:-1]):
        replaced = live[index + 1]
        if deploy.trigger == "rollback" or deploy.commit == replaced.commit:
            continue
        builds = (i for i in range(index + 1, len(live)) if live[i].trigger != "rollback")
        built = next((i for i in builds if live[i].commit == deploy.commit), None)
        if built is None or built - index <= SMALLEST_RETENTION + 1:
            continue
        if first_built[deploy.commit] > first_built.get(replaced.commit, len(live)):
            found.add(deploy.id)
    return found


def previous_target(deploys: Sequence[Deploy], *, ordered: bool = False) -> tuple[Deploy | None, list[Skipped]]:
    """The deploy ``rollback --previous`` goes back to, and every candidate skipped on the way."""
    live_index = next((i for i, d in enumerate(deploys) if d.status == "live"), None)
    if live_index is None:
        return None, []
    live = deploys[live_index]
    refused = rejected(deploys, ordered=ordered)
    skipped: list[Skipped] = []
    for deploy in deploys[live_index + 1 :]:
        if deploy.status not in WENT_LIVE:
            continue  # never live (failed, cancelled): not a candidate at all
        if deploy.id in refused:
            skipped.append(Skipped(deploy, refused[deploy.id]))
        elif deploy.commit == live.commit:
            skipped.append(Skipped(deploy, "carries the live commit"))
        else:
            return deploy, skipped
    return None, skipped


def choose(api: RenderAPI, to: str | None, on_warning: Callable[[str], None], *, ordered: bool = False) -> Deploy:
    """The deploy to roll back to: ``to`` as given (warned about if rejected), or the previous."""
    deploys = list(api.deploys())
    if to:
        named = next((d for d in deploys if d.id == to), None) or _named(api, to)
        if named.status not in WENT_LIVE:
            raise InputError(
                f"deploy {to} never went live ({named.status}); it cannot be rolled back to",
                hint=f"pick one that was live: {dashboard_link(api.service_id)}",
            )
        if why := rejected(deploys, ordered=ordered).get(named.id):
            on_warning(f"{named.id} ({str(named.commit)[:12]}) {why}: rolling back to it because --to names it")
        return named
    target, skipped = previous_target(deploys, ordered=ordered)
    if target is None:
        listed = "; ".join(s.line() for s in skipped[:5]) or "no earlier deploy went live"
        raise InputError(
            f"no deploy to roll back to: {listed}",
            hint="name one with --to dep-… (a rejected one only on purpose), or fix forward on develop",
        )
    return target


def _named(api: RenderAPI, deploy_id: str) -> Deploy:
    """A deploy older than the listed pages, or one this service never had (exit 2)."""
    try:
        return api.deploy(deploy_id)
    except ConfigError:
        raise InputError(
            f"--to {deploy_id}: this service has no such deploy",
            hint=f"pick a deploy id from {dashboard_link(api.service_id)}",
        ) from None


def settle(api: RenderAPI, deadline: float, on_status: Callable[[str], None], poll: float = 2.0) -> None:
    """Wait while Render is still working on a deploy of this service (another job's)."""
    said = ""
    while (busy := api.in_progress()) is not None:
        if time.monotonic() >= deadline:
            raise VerificationError(
                f"{busy.id} ({str(busy.commit)[:12]}) was still {busy.status} at the deadline, so nothing was changed",
                hint=f"let it finish or cancel it: {dashboard_link(api.service_id, busy.id)}; then run again",
            )
        if busy.id != said:
            on_status(f"{busy.id} ({str(busy.commit)[:12]}) is still {busy.status}: waiting for it first")
            said = busy.id
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def check_order(env: Environment, commit: str, live: str | None, *, cwd: str | None = None) -> None:
    """Refuse (exit 2) a commit that neither is the live one nor descends from it."""
    if not env.rollback_on_failed_probe or not live or live == commit:
        return
    code = subprocess.run(
        ["git", "merge-base", "--is-ancestor", live, commit], cwd=cwd, capture_output=True, check=False
    ).returncode
    if code == 0:
        return
    if code != 1:
        raise ConfigError(
            f"git does not know {live[:12]}, the commit live on {env.name}, so the release order cannot be checked",
            hint="check out with fetch-depth: 0 so the branch history is present",
        )
    raise InputError(
        f"{commit[:12]} does not descend from {live[:12]}, the commit live on {env.name}: "
        "it would replace newer code with older, so nothing was deployed",
        hint=f"to go back on purpose, run ci-tools rollback {env.name} (or dispatch rollback.yml); "
        "to release, merge forward",
    )


def require_commit(commit: str, *, cwd: str | None = None) -> None:
    """Refuse (exit 3) to rebuild a commit this checkout's git does not have.

    Render builds a commit by checking it out of the repository; one that is in no repository any
    more (a rewritten branch) cannot be built, and one missing only here (a shallow checkout) is
    still not a commit anyone can look at before it serves users.
    """
    code = subprocess.run(
        ["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=cwd, capture_output=True, check=False
    ).returncode
    if code != 0:
        raise ConfigError(
            f"git does not have {commit[:12]}, the commit to deploy again, so nothing was changed",
            hint="check out with fetch-depth: 0; if the branch was rewritten, roll back to a deploy of a commit "
            "that still exists (--to dep-…) or fix forward",
        )
