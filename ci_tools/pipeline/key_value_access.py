"""Let this runner reach Render's private Key Value instances for one job, then close them again.

``render.yaml`` keeps both instances at ``ipAllowList: []`` (internal access only), so
a GitHub-hosted runner cannot connect. For the memory migration the pipeline adds
the runner's own address (``/32``) to each instance's allow list through Render's
API, and puts back exactly the list it found afterwards — from the state file it
wrote before the first change, so a later step (``if: always()``, which also runs on
a cancelled run) can restore it even if the copy was killed.

Why this route and not a one-off Render job on the service: the snapshot and the
backup must outlive the job (a Render job's disk does not) and reach the run as
encrypted artifacts for ``mode: undo``; the copy's output and step summary belong in
the run; and the bot's build carries none of ci-tools' libraries. The exposure is one
address for a few minutes, behind the instance's password and TLS.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from ci_tools.clients.render import monotonic_deadline
from ci_tools.context import Context
from ci_tools.errors import InputError, RemoteError

Status = Callable[[str], None]


def runner_ip(ctx: Context, given: str | None) -> str:
    """The address to admit: ``given``, or what an IP echo service sees (``IP_ECHO_URL``)."""
    if given:
        try:
            return str(ipaddress.ip_address(given))
        except ValueError:
            raise InputError(f"--ip {given!r} is not an IP address", hint="e.g. --ip 203.0.113.7") from None
    url = ctx.services.ip_echo
    try:
        text = httpx.get(url, timeout=ctx.request_timeout(10)).text.strip()
        return str(ipaddress.ip_address(text))
    except (httpx.HTTPError, ValueError):
        raise RemoteError(
            f"could not learn this runner's public address from {url}",
            hint="pass --ip, or set IP_ECHO_URL to a service that answers with the caller's address",
        ) from None


def open_for(
    ctx: Context,
    api_key: str,
    env_names: list[str],
    ip: str,
    state: Path,
    note: str,
    on_status: Status = lambda line: None,
) -> list[str]:
    """Add ``ip``/32 to each environment's Key Value allow list; record what was there first."""
    block = f"{ip}/32" if ":" not in ip else f"{ip}/128"
    saved: dict[str, dict[str, object]] = json.loads(state.read_text()) if state.is_file() else {}
    opened = []
    with ctx.render(api_key, deadline=monotonic_deadline(60)) as api:
        for name in env_names:
            kv = api.find_key_value(ctx.config.env(name).key_value)
            before = list(kv.get("ipAllowList") or [])
            saved.setdefault(kv["id"], {"name": kv["name"], "ipAllowList": before})
            state.parent.mkdir(parents=True, exist_ok=True)
            state.write_text(json.dumps(saved, indent=2))  # before the change: a restore needs it
            if any(entry.get("cidrBlock") == block for entry in before):
                on_status(f"{kv['name']} already admits {block}")
                continue
            api.set_ip_allow_list(kv["id"], [*before, {"cidrBlock": block, "description": note}])
            opened.append(str(kv["name"]))
            on_status(f"{kv['name']} admits {block} for this run")
    return opened


def close(ctx: Context, api_key: str, state: Path, on_status: Status = lambda line: None) -> list[str]:
    """Put back each allow list exactly as ``open_for`` found it; nothing to do without a state."""
    if not state.is_file():
        on_status("no allow list was changed by this run")
        return []
    saved = json.loads(state.read_text())
    restored = []
    with ctx.render(api_key, deadline=monotonic_deadline(60)) as api:
        for kv_id, entry in saved.items():
            api.set_ip_allow_list(kv_id, list(entry["ipAllowList"]))
            restored.append(str(entry["name"]))
            on_status(f"{entry['name']}: allow list put back ({len(entry['ipAllowList'])} entries)")
    state.unlink()
    return restored


def sweep(
    ctx: Context,
    api_key: str,
    env_names: list[str],
    older_than: timedelta,
    on_status: Status = lambda line: None,
) -> list[str]:
    """Remove the entries our runs added (their note says so, and when) longer ago than
    ``older_than``: what a run killed before its close step left open. Others stay."""
    from ci_tools.pipeline.live_status import stale_entry

    now = datetime.now(UTC)
    removed = []
    with ctx.render(api_key, deadline=monotonic_deadline(12), timeout=6) as api:  # a look first: fail fast
        for name in env_names:
            kv = api.find_key_value(ctx.config.env(name).key_value)
            entries = list(kv.get("ipAllowList") or [])
            keep = [e for e in entries if not stale_entry(str(e.get("description", "")), now, older_than)]
            if len(keep) == len(entries):
                on_status(f"{kv['name']}: nothing stale")
                continue
            api.set_ip_allow_list(kv["id"], keep)
            for entry in entries:
                if entry not in keep:
                    removed.append(f"{kv['name']} {entry.get('cidrBlock')}")
                    on_status(f"{kv['name']}: removed {entry.get('cidrBlock')} ({entry.get('description')})")
    return removed
