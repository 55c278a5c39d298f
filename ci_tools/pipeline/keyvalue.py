"""Let this runner reach Render's private Key Value instances for one job, then close them again.

``render.yaml`` keeps both instances at ``ipAllowList: []`` (internal access only), so
a GitHub-hosted runner cannot connect. For the memory migration the pipeline adds
the runner's own address (``/32``) to each instance's allow list through Render's
API, and removes it again afterwards — from the state file it wrote before the first
change, so a later step (``if: always()``, which also runs on a cancelled run) can
close it even if the copy was killed.

The allow list is shared: a release's snapshot, the nightly backup and a memory copy may
hold it open at once, and Render's API replaces the whole list on every PATCH. So every
entry a run adds carries a description naming that run, and closing re-reads the list and
removes only that run's own entries (repeating it is safe); putting back "the list as it
was" would drop another run's entry mid-snapshot, or re-admit a finished run for good.
After each change the list is read again, and an entry of ours that a concurrent change
dropped is added back (open) or removed again (close).

Why this route and not a one-off Render job on the service: the snapshot and the
backup must outlive the job (a Render job's disk does not) and reach the run as
encrypted artifacts for ``mode: undo``; the copy's output and step summary belong in
the run; and the bot's build carries none of ci-tools' libraries. The exposure is one
address for a few minutes, behind the instance's password and TLS.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ci_tools.clients.render import RenderAPI, monotonic_deadline, public_address
from ci_tools.context import Context
from ci_tools.errors import InputError, RemoteError
from ci_tools.pipeline import blueprint_sync
from ci_tools.pipeline.status import stale_entry

Status = Callable[[str], None]


def runner_ip(ctx: Context, given: str | None) -> str:
    """The address to admit: ``given``, or what an IP echo service sees (``IP_ECHO_URL``)."""
    if given:
        try:
            return str(ipaddress.ip_address(given))
        except ValueError:
            raise InputError(f"--ip {given!r} is not an IP address", hint="e.g. --ip 203.0.113.7") from None
    return public_address(ctx.services.ip_echo, ctx.request_timeout(10))


def open_for(
    ctx: Context,
    api_key: str,
    env_names: list[str],
    ip: str,
    state: Path,
    note: str,
    on_status: Status = lambda line: None,
    *,
    commit: str | None = None,
    sync_wait: float = 600,
) -> list[str]:
    """Add this run's entry (``ip``/32, described by ``note``) to each environment's allow list.

    First, a Blueprint sync that is running, or that ``commit`` (changing render.yaml) is about to
    start, is waited for: it re-applies ``ipAllowList: []`` and would shut this run out mid-job."""
    block = f"{ip}/32" if ":" not in ip else f"{ip}/128"
    ours = {"cidrBlock": block, "description": note}
    saved: dict[str, dict[str, object]] = json.loads(state.read_text()) if state.is_file() else {}
    opened = []
    with ctx.render(api_key, deadline=monotonic_deadline(60)) as api:
        for branch in sorted({ctx.config.env(name).branch for name in env_names}):
            until = time.monotonic() + sync_wait
            api.deadline = until + 30  # each call's own budget outlasts the wait
            blueprint_sync.wait_for_sync(api, branch, commit, None, until, ctx.poll_seconds(2.0), on_status)
            api.deadline = monotonic_deadline(60)
        for name in env_names:
            kv = api.find_key_value(ctx.config.env(name).key_value)
            saved[kv["id"]] = {"name": kv["name"], "added": [ours]}
            state.parent.mkdir(parents=True, exist_ok=True)
            state.write_text(json.dumps(saved, indent=2))  # before the change: the close step needs it
            _converge(
                api,
                kv["id"],
                lambda entries: [*entries, ours] if ours not in entries else entries,
                ctx.poll_seconds(SETTLE),
            )
            opened.append(str(kv["name"]))
            on_status(f"{kv['name']} admits {block} for this run ({note})")
    return opened


def close(ctx: Context, api_key: str, state: Path, on_status: Status = lambda line: None) -> list[str]:
    """Remove this run's own entries from each allow list it opened; every other entry stays."""
    if not state.is_file():
        on_status("no allow list was changed by this run")
        return []
    saved = json.loads(state.read_text())
    closed = []
    with ctx.render(api_key, deadline=monotonic_deadline(60)) as api:
        for kv_id, entry in saved.items():
            added = [dict(e) for e in entry.get("added", [])]
            left = _converge(api, kv_id, functools.partial(_without, gone=added), ctx.poll_seconds(SETTLE))
            closed.append(str(entry["name"]))
            on_status(f"{entry['name']}: this run's entry removed ({len(left)} other entries left as they are)")
    state.unlink()
    return closed


# Seconds: longer than another run's read-then-PATCH takes against Render's API (CI_TOOLS_POLL,
# when set, replaces it: against the workflow tests' local stand-in that takes milliseconds).
SETTLE = 2.0


def _converge(
    api: RenderAPI, kv_id: str, change: Callable[[list[dict[str, str]]], list[dict[str, str]]], settle: float
) -> list[dict[str, str]]:
    """Apply ``change`` to the list as it is now; then, after ``settle`` (``SETTLE``), read it back, until it holds.

    Render's PATCH replaces the whole list and takes no precondition, so another run that read
    the list before our write and writes after it undoes our change. Any such write lands
    within ``SETTLE`` of ours (a write that reads after ours keeps it), so a change still
    there one ``SETTLE`` later stays; one that is not is applied again.
    """
    for _ in range(8):
        current = _entries(api.key_value(kv_id))
        wanted = change(current)
        if wanted == current:
            return current
        api.set_ip_allow_list(kv_id, wanted)
        time.sleep(settle)
    raise RemoteError(
        f"the allow list of {kv_id} kept changing under this run: others changed it 8 times meanwhile",
        hint="run the same keyvalue command again",
    )


def _without(entries: list[dict[str, str]], gone: list[dict[str, str]]) -> list[dict[str, str]]:
    return [e for e in entries if e not in gone]


def _entries(kv: dict[str, object]) -> list[dict[str, str]]:
    raw = kv.get("ipAllowList") or []
    assert isinstance(raw, list)
    return [{"cidrBlock": str(e.get("cidrBlock")), "description": str(e.get("description", ""))} for e in raw]


def sweep(
    ctx: Context,
    api_key: str,
    env_names: list[str],
    older_than: timedelta,
    on_status: Status = lambda line: None,
) -> list[str]:
    """Remove the entries our runs added (their note says so, and when) longer ago than
    ``older_than``: what a run killed before its close step left open. Others stay."""
    now = datetime.now(UTC)
    removed = []
    with ctx.render(api_key, deadline=monotonic_deadline(12), timeout=6) as api:  # a look first: fail fast
        for name in env_names:
            kv = api.find_key_value(ctx.config.env(name).key_value)
            stale = [e for e in _entries(kv) if stale_entry(e["description"], now, older_than)]
            if not stale:
                on_status(f"{kv['name']}: nothing stale")
                continue
            _converge(api, kv["id"], functools.partial(_without, gone=stale), ctx.poll_seconds(SETTLE))
            for entry in stale:
                removed.append(f"{kv['name']} {entry['cidrBlock']}")
                on_status(f"{kv['name']}: removed {entry['cidrBlock']} ({entry['description']})")
    return removed
