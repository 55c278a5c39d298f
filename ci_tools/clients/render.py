"""Render: deploy hooks and the parts of the REST API the pipeline needs.

With an API key, a deploy is ``POST /deploys`` with the exact ``commitId`` and is
followed by its own status; without one, the deploy hook deploys the branch's head
and ``/healthz`` must confirm the commit. Creates are never blindly retried. Every call goes
through ``ci_tools.http`` (429 and 5xx retried) and every error is one line with
the dashboard link, never the key.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from ci_tools.errors import ConfigError, RemoteError
from ci_tools.http import Contact, MaybeDone, request

IN_PROGRESS = (
    "created",
    "queued",
    "build_in_progress",
    "update_in_progress",
    "pre_deploy_in_progress",
)
FAILED = ("build_failed", "update_failed", "pre_deploy_failed", "canceled")
SERVICE_ID = re.compile(r"^srv-[a-z0-9]+$")


class Refused(RemoteError):
    """Render answered a call with a 4xx/5xx the client does not handle itself: its status and
    ``message`` (the only field of Render's error body, in the vendored description), for the
    caller that knows what such an answer means for its call."""

    def __init__(self, what: str, status: int, said: str) -> None:
        super().__init__(f"{what}: HTTP {status} {said}".strip())
        self.status = status
        self.said = said


class BuildNotKept(RemoteError):
    """Render refused (400) a rollback to a deploy that did go live. Render keeps only the plan's
    most recent builds (render.com/docs/rollbacks, "Build retention") and documents no wording for
    that refusal: its description gives rollback-deploy only the generic 400 with ``message``. So
    any 400 for a deploy that went live is read as the build being gone; nothing changed, and the
    way back is to build that commit again (``POST /deploys`` with ``commitId``)."""

    def __init__(self, deploy_id: str, said: str = "") -> None:
        super().__init__(
            f"Render no longer keeps the build of {deploy_id}, so it cannot roll back to it "
            f"(it answered HTTP 400{': ' + said if said else ''}; a workspace keeps only its plan's most recent "
            "builds: Hobby 5, Pro 15, Scale 30); nothing changed",
            hint="deploy that commit again (`ci-tools rollback` does), or roll back to a newer deploy",
        )
        self.deploy_id = deploy_id


def dashboard_link(service_id: str | None, deploy_id: str | None = None) -> str:
    if not service_id:
        return "https://dashboard.render.com"
    link = f"https://dashboard.render.com/web/{service_id}"
    return f"{link}/deploys/{deploy_id}" if deploy_id else f"{link}/events"


@dataclass(frozen=True)
class Deploy:
    id: str
    status: str
    commit: str | None
    created_at: str | None = None
    finished_at: str | None = None
    trigger: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Deploy:
        commit = data.get("commit") or {}
        return cls(
            id=str(data.get("id")),
            status=str(data.get("status")),
            commit=commit.get("id"),
            created_at=data.get("createdAt"),
            finished_at=data.get("finishedAt"),
            trigger=data.get("trigger"),
        )


@dataclass(frozen=True)
class Blueprint:
    """A render.yaml linked as a Blueprint: with ``auto_sync``, Render applies every push to
    ``branch`` that changes the file, redeploying the services it names."""

    id: str
    name: str
    branch: str
    auto_sync: bool
    status: str

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Blueprint:
        return cls(
            str(data.get("id")),
            str(data.get("name")),
            str(data.get("branch")),
            bool(data.get("autoSync")),
            str(data.get("status")),
        )


@dataclass(frozen=True)
class BlueprintSync:
    id: str
    commit: str
    state: str  # created, pending, running, error, success

    @property
    def done(self) -> bool:
        return self.state in ("error", "success")


@dataclass(frozen=True)
class Event:
    """One of Render's service events (``list-events``): what happened, with its details."""

    id: str
    type: str
    timestamp: str
    details: dict[str, Any]

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Event:
        details = data.get("details")
        return cls(str(data.get("id")), str(data.get("type")), str(data.get("timestamp")), dict(details or {}))

    @property
    def rollback_target(self) -> str | None:
        """For ``deploy_started`` of a rollback: the deploy it returned to."""
        trigger = self.details.get("trigger") or {}
        return trigger.get("rollbackTargetDeployId") if trigger.get("rollback") else None

    def failure(self) -> str:
        """What a ``server_failed`` event says went wrong, in a few words."""
        reason = self.details.get("reason") or {}
        if reason.get("unhealthy"):
            return f"the new instance fails its health check: {reason['unhealthy']}"
        if reason.get("nonZeroExit") is not None:
            return f"the new instance exits with status {reason['nonZeroExit']}"
        if reason.get("oomKilled"):
            return f"the new instance ran out of memory ({reason['oomKilled'].get('memoryLimit', '?')})"
        if reason.get("earlyExit"):
            return "the new instance exits early"
        if reason.get("timedOutSeconds"):
            return f"the new instance timed out after {reason['timedOutSeconds']}s"
        return "the new instance failed"


def check_hook_url(hook_url: str, base: str) -> str:
    """The hook URL as given, if it looks like a Render deploy hook (``…/deploy/srv-…?key=…``) on ``base``."""
    parts = urlsplit(hook_url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    expected = urlsplit(base)
    if (
        (parts.scheme, parts.netloc) != (expected.scheme, expected.netloc)
        or not re.fullmatch(r"/deploy/srv-[a-z0-9]+", parts.path)
        or not query.get("key")
    ):
        raise ConfigError(
            "RENDER_DEPLOY_HOOK_URL does not look like a Render deploy hook",
            hint=f"copy it from the service's Settings → Deploy Hook: {base}/deploy/srv-…?key=…",
        )
    return hook_url


def service_id_from_hook(hook_url: str) -> str:
    return urlsplit(hook_url).path.rsplit("/", 1)[-1]


def trigger_hook(hook_url: str, *, base: str, timeout: float, deadline: float) -> str | None:
    """POST the deploy hook once (it deploys the branch's head); the deploy id if it says one.

    Not retried after a 5xx or a timeout: the hook may already have started a deploy,
    and without the API there is no way to look. Render promises no body; an id in
    ``{"deploy": {"id"}}`` is used when present.
    """
    with httpx.Client(timeout=timeout) as client:
        try:
            response = request(
                client,
                "POST",
                check_hook_url(hook_url, base),
                deadline=deadline,
                what="Render's deploy hook",
                idempotent=False,
            )
        except MaybeDone as exc:
            raise RemoteError(
                f"{exc.message}; the hook may have started a deploy, so it was not called again",
                hint="set RENDER_API_KEY so the pipeline can look, or check the dashboard and run again",
            ) from None
    if response.status_code >= 400:
        raise RemoteError(
            f"the deploy hook refused: HTTP {response.status_code}",
            hint="check RENDER_DEPLOY_HOOK_URL (regenerate it in the service's settings if it was rotated)",
        )
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = None
    deploy = (body or {}).get("deploy") if isinstance(body, dict) else None
    return str(deploy["id"]) if isinstance(deploy, dict) and deploy.get("id") else None


class RenderAPI:
    """A small client for /v1: services, deploys, rollback, env vars."""

    def __init__(
        self, api_key: str, service_id: str = "", *, deadline: float, base_url: str, timeout: float = 30
    ) -> None:
        if service_id and not SERVICE_ID.match(service_id):
            raise ConfigError(
                f"RENDER_SERVICE_ID {service_id!r} is not a service id",
                hint="it looks like srv-…; find it in the service's URL in the dashboard",
            )
        self.service_id = service_id
        self.deadline = deadline
        self.contact = Contact()
        self.client = httpx.Client(
            base_url=f"{base_url.rstrip('/')}/v1",
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout,
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RenderAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        missing_ok: bool = False,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> Any:
        response = request(
            self.client,
            method,
            path,
            deadline=self.contact.deadline(self.deadline),
            what=f"Render API, {what}",
            idempotent=idempotent,
            **{**self.contact.options(), **kwargs},
        )
        self.contact.answered = True
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code == 401:
            raise ConfigError(
                "the Render API refused RENDER_API_KEY (401)",
                hint="create a new API key in Account Settings",
            )
        if response.status_code == 404:
            raise ConfigError(
                f"{what}: not found (404)",
                hint=f"check RENDER_SERVICE_ID; the service is {dashboard_link(self.service_id)}",
            )
        if response.status_code >= 400:
            message = ""
            with contextlib.suppress(ValueError):
                message = str(response.json().get("message", ""))
            raise Refused(what, response.status_code, message)
        return response.json() if response.content else None

    def service(self) -> dict[str, Any]:
        return dict(self._call("GET", f"/services/{self.service_id}", "reading the service"))

    def deploys(self, *, page_size: int = 20, max_pages: int = 10) -> Iterator[Deploy]:
        """Newest first, following cursors."""
        cursor: str | None = None
        for _ in range(max_pages):
            params: dict[str, Any] = {"limit": page_size}
            if cursor:
                params["cursor"] = cursor
            page = self._call("GET", f"/services/{self.service_id}/deploys", "listing deploys", params=params)
            if not page:
                return
            for item in page:
                yield Deploy.from_api(item["deploy"])
            cursor = page[-1].get("cursor")
            if not cursor or len(page) < page_size:
                return

    def blueprints(self) -> list[Blueprint]:
        """The Blueprints this key sees (one page: an owner has one or two)."""
        page = self._call("GET", "/blueprints", "listing Blueprints", params={"limit": 100}) or []
        return [Blueprint.from_api(item["blueprint"]) for item in page]

    def blueprint_syncs(self, blueprint_id: str) -> list[BlueprintSync]:
        """A Blueprint's syncs, newest first (one page: the newest are the ones that matter)."""
        page = self._call("GET", f"/blueprints/{blueprint_id}/syncs", "listing Blueprint syncs", params={"limit": 20})
        return [
            BlueprintSync(str(s["sync"]["id"]), str(s["sync"]["commit"]["id"]), str(s["sync"]["state"]))
            for s in page or []
        ]

    def deploy(self, deploy_id: str) -> Deploy:
        return Deploy.from_api(
            self._call("GET", f"/services/{self.service_id}/deploys/{deploy_id}", "reading the deploy")
        )

    def live(self) -> Deploy | None:
        return next((d for d in self.deploys() if d.status == "live"), None)

    def in_progress(self) -> Deploy | None:
        """The deploy Render is working on now, if any (newest first)."""
        return next((d for d in self.deploys(max_pages=1) if d.status in IN_PROGRESS), None)

    def events(self, *, since: str, kinds: tuple[str, ...] = (), limit: int = 100) -> list[Event]:
        """The service's events since ``since`` (ISO 8601), newest first: one page is plenty
        for one deploy's life (Render keeps no event older than its retention anyway)."""
        params: dict[str, Any] = {"startTime": since, "limit": limit}
        if kinds:
            params["type"] = ",".join(kinds)
        page = self._call("GET", f"/services/{self.service_id}/events", "reading the service's events", params=params)
        return [Event.from_api(item["event"]) for item in page or []]

    def cancel(self, deploy_id: str) -> Deploy:
        """Cancel a deploy in progress (Render keeps the old instance serving)."""
        data = self._call(
            "POST",
            f"/services/{self.service_id}/deploys/{deploy_id}/cancel",
            f"cancelling {deploy_id}",
            idempotent=False,
        )
        return Deploy.from_api(data)

    def create_deploy(self, commit: str) -> Deploy | None:
        """POST /deploys with the exact commit; the deploy (201), or None when queued (202)."""
        data = self._call(
            "POST",
            f"/services/{self.service_id}/deploys",
            f"deploying {commit[:12]}",
            idempotent=False,
            json={"commitId": commit, "clearCache": "do_not_clear"},
        )
        return Deploy.from_api(data) if data else None

    def rollback(self, deploy_id: str) -> Deploy:
        """Roll back to ``deploy_id``; BuildNotKept on a 400 (the caller asks only for deploys
        that went live, so the build being past retention is what a 400 means here)."""
        try:
            data = self._call(
                "POST",
                f"/services/{self.service_id}/rollback",
                "rolling back",
                idempotent=False,
                json={"deployId": deploy_id},
            )
        except Refused as exc:
            if exc.status == 400:
                # A rollback reuses the target's build; Render keeps only the workspace plan's most
                # recent ones (Free 2 previous deploys, Hobby 5, Pro 15, Scale/Enterprise 30).
                raise BuildNotKept(deploy_id, exc.said) from None
            raise
        return Deploy.from_api(data)

    def created_since(self, known: set[str], commit: str, trigger: str) -> Deploy | None:
        """The newest deploy of ``commit`` by ``trigger`` that is not in ``known``."""
        return next(
            (d for d in self.deploys(max_pages=1) if d.id not in known and d.commit == commit and d.trigger == trigger),
            None,
        )

    def create_once(
        self,
        create: Callable[[], Deploy | None],
        find: Callable[[], Deploy | None],
        *,
        attempts: int = 3,
        look_for: float = 5.0,
        on_status: Callable[[str], None] = lambda line: None,
    ) -> Deploy | None:
        """``create()``; after an answer that may hide a success, look (``find``) before retrying.

        Each lost answer (a 5xx, a timeout after sending) is followed by up to ``look_for``
        seconds of listing deploys, as Render's list may lag; only when nothing appeared is
        the POST sent again. So a retry never starts a second deploy.
        """
        for attempt in range(1, attempts + 1):
            try:
                return create()
            except MaybeDone as lost:
                on_status(f"{lost.message}: looking for what it created before trying again")
                until = min(self.deadline, time.monotonic() + look_for)
                while True:
                    found = find()
                    if found:
                        on_status(f"it did: {found.id} ({found.status})")
                        return found
                    if time.monotonic() >= until:
                        break
                    time.sleep(0.5)
                if attempt == attempts:
                    raise RemoteError(
                        f"{lost.message}, {attempts} times, and nothing was created",
                        hint=f"Render may be having trouble; look at {dashboard_link(self.service_id)}",
                    ) from None
        return None

    # -- account-wide lookups by name (no service id needed): what `ci-tools init` discovers --
    def find_service(self, name: str) -> dict[str, Any]:
        page = self._call("GET", "/services", f"finding service {name}", params={"name": name, "limit": 20})
        found = [item["service"] for item in page or [] if item.get("service", {}).get("name") == name]
        if not found:
            raise ConfigError(
                f"no service named {name!r} on this Render account",
                hint="pass the service's name as the dashboard shows it (--staging-service / --production-service)",
            )
        return dict(found[0])

    def connection_info(self, kv_id: str) -> dict[str, Any]:
        """The Key Value's connection strings (its external one reaches it from outside Render)."""
        return dict(self._call("GET", f"/key-value/{kv_id}/connection-info", "reading the Key Value's address"))

    def env_var_of(self, service_id: str, key: str) -> str | None:
        """One variable of another service (init reads both services with one key)."""
        data = self._call("GET", f"/services/{service_id}/env-vars/{key}", f"reading {key}", missing_ok=True)
        return None if data is None else data.get("value")

    def find_key_value(self, name: str) -> dict[str, Any]:
        page = self._call("GET", "/key-value", f"finding Key Value {name}", params={"name": name, "limit": 20})
        found = [item["keyValue"] for item in page or [] if item.get("keyValue", {}).get("name") == name]
        if not found:
            raise ConfigError(
                f"no Key Value instance named {name!r} on this Render account",
                hint="check key_value in [tool.ci_tools.environments] against render.yaml",
            )
        return dict(found[0])

    def key_value(self, kv_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/key-value/{kv_id}", "reading the Key Value instance"))

    def sees_key_value(self, kv_id: str) -> bool:
        """Does this key reach the Key Value: its detail (and its allow list, which the same key may
        PATCH) or its connection info (the Redis URL with its password)? Render hides what a scoped
        key may not see (render.com/docs/api-keys; the stand-in answers 404, as for a service)."""
        return any(
            self._call("GET", path, "probing the Key Value", missing_ok=True) is not None
            for path in (f"/key-value/{kv_id}", f"/key-value/{kv_id}/connection-info")
        )

    def set_ip_allow_list(self, kv_id: str, blocks: list[dict[str, str]]) -> dict[str, Any]:
        """PATCH the whole allow list (idempotent: the same PATCH twice leaves the same list)."""
        return dict(
            self._call(
                "PATCH", f"/key-value/{kv_id}", "changing the Key Value allow list", json={"ipAllowList": blocks}
            )
        )

    def delete_env_var(self, key: str) -> None:
        """DELETE one variable; one that is already gone is fine (the same call twice is safe)."""
        self._call(
            "DELETE",
            f"/services/{self.service_id}/env-vars/{key}",
            f"removing {key}",
            missing_ok=True,
        )

    def env_var(self, key: str) -> str | None:
        data = self._call("GET", f"/services/{self.service_id}/env-vars/{key}", f"reading {key}", missing_ok=True)
        return None if data is None else data.get("value")

    def set_env_var(self, key: str, value: str) -> None:
        """One variable through the single-key endpoint (PUT of the list would replace them all)."""
        self._call(
            "PUT",
            f"/services/{self.service_id}/env-vars/{key}",
            f"setting {key}",
            json={"value": value},
        )


def public_address(echo_url: str, timeout: float) -> str:
    """This machine's address as the outside sees it (what a Key Value allow list must admit),
    asked of an IP echo service; RemoteError in one line when it does not say."""
    try:
        text = httpx.get(echo_url, timeout=timeout).text.strip()
        return str(ipaddress.ip_address(text))
    except (httpx.HTTPError, ValueError):
        raise RemoteError(
            f"could not learn this runner's public address from {echo_url}",
            hint="pass --ip, or set IP_ECHO_URL to a service that answers with the caller's address",
        ) from None


def monotonic_deadline(seconds: float) -> float:
    return time.monotonic() + seconds
