"""A local Render: deploy hooks and the REST API shapes the pipeline uses, on loopback.

A "deploy" goes through Render's statuses over time: at ``build_in_progress`` it builds the
deployed commit with the build command of that commit's own render.yaml service (by the
service's name), and at ``update_in_progress`` starts it with that service's start command
(``ci_tools/botrun``, as Render's Python runtime runs them), against the service's env vars: a
real Redis, the Telegram stand-in. A commit with no such service, or whose build fails, ends
``build_failed``; never is our bot run in another commit's place. Two fast paths stay: a commit
that holds no files at all (the plain sandbox's empty commits) runs the installed reference bot,
and in thread mode (``process=False``) a commit whose service starts ``-m mindmate`` runs the
installed reference bot in a thread (code is not the question there; ``@pytest.mark.built``
tests build each commit). A per-service router on a stable port plays
the service's public URL. Faults are switched on per commit or per call: failed
build, slow deploy, an open webhook, 429s, 5xx, and a create (deploy or rollback)
that takes effect and then answers 502 or hangs.

Zero-downtime deploys as Render documents them (render.com/docs/deploys#zero-downtime-deploys,
render.com/docs/health-checks): the new instance boots beside the old one, and the public
URL switches to it only once its health check path answers 2xx or 3xx within 5 s. An
instance that exits at start is restarted; one that never gets healthy keeps the deploy at
``update_in_progress`` until Render gives up (15 minutes: ``health_timeout`` here, scaled
down by the tests), while the old instance serves throughout and each failure is reported
as a ``server_failed`` event (``GET /v1/services/{id}/events``). ``POST
…/deploys/{id}/cancel`` cancels a deploy in progress; the old instance keeps serving.

Contract (render-oss/sdk, ``public_api/api/deploys``): ``POST
/v1/services/{id}/deploys`` with ``{"commitId": sha}`` answers 201 with the deploy
or 202 with no body (queued); ``POST …/rollback`` with ``{"deployId"}`` answers 201
with the new deploy; deploys list newest first with ``cursor``. A deploy hook takes
no ref (Render documents only ``imgURL``, for images): it deploys the head of the
service's branch, and promises no body.

Key Value (``public_api/api/key_value``): ``GET /v1/key-value?name=`` lists
``[{"keyValue": {…}, "cursor"}]``; ``GET``/``PATCH /v1/key-value/{id}`` read and
change ``ipAllowList`` (``[{"cidrBlock", "description"}]``); ``…/connection-info``
gives the internal and external connection strings. The external one is a
``Gate`` that admits only clients in the allow list. ``GET /whoami`` plays an IP
echo service (what a runner asks to learn its public address).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

from ci_tools import botrun
from ci_tools.errors import BuildFailed, ConfigError, FatalError
from sandbox import contract as contracts
from sandbox.bot import BotProcess, ThreadedBot, inherited
from sandbox.gate import Gate
from sandbox.http import Request, Response, StandInServer
from sandbox.http import fault as fault_answer

_DEPLOY_PATH = re.compile(r"^/deploy/(?P<service>srv-[a-z0-9]+)$")
_API_PATH = re.compile(r"^/v1/services/(?P<service>srv-[a-z0-9]+)(?P<rest>/.*)?$")
_BLUEPRINT_PATH = re.compile(r"^/v1/blueprints(?:/(?P<blueprint>exs-[0-9a-z]{20})/syncs)?$")
_KV_PATH = re.compile(r"^/v1/key-value(?:/(?P<kv>red-[a-z0-9]+)(?P<rest>/.*)?)?$")


# Builds Render keeps for rollbacks, past the live one, by the workspace's plan; a free web
# service keeps two whatever the workspace (render.com/docs/rollbacks, "Build retention": "You
# can only roll back to a particular deploy if its build artifact is still available"; the figures
# from render.com/articles/how-to-rollback-a-broken-deployment-quickly, "Check how far back you
# can go": Free web services 2, Hobby 5, Pro 15, Scale 30, Enterprise 30).
BUILDS_KEPT = {"hobby": 5, "pro": 15, "scale": 30, "enterprise": 30}
FREE_BUILDS_KEPT = 2

OWNER = {
    "id": "tea-sandbox0001",
    "name": "MindMate",
    "email": "owner@example.invalid",
    "type": "user",
}


@dataclass
class FakeKeyValue:
    id: str
    name: str
    internal_url: str
    gate: Gate
    ip_allow_list: list[dict[str, str]] = field(default_factory=list)  # render.yaml: [] (internal only)
    created: str = field(default_factory=lambda: _now())
    updated: str = field(default_factory=lambda: _now())
    plan: str = "starter"  # render.yaml's
    persistence: str = "journal_snapshot"  # a paid plan's default
    maxmemory_policy: str = "noeviction"  # render.yaml's; PATCH /key-value/{id} may change it

    @property
    def external_url(self) -> str:
        return re.sub(r":\d+/", f":{self.gate.port}/", self.internal_url)

    def json(self, *, listed: bool = True) -> dict[str, Any]:
        """``keyValue`` of Render's description (the list's items), every required field; with
        ``listed=False`` the ``keyValueDetail`` that GET and PATCH of one instance answer, which
        has no ``dashboardUrl``."""
        found = {
            "id": self.id,
            "name": self.name,
            "status": "available",
            "region": "frankfurt",
            "plan": self.plan,
            "version": "8.1.4",
            "owner": dict(OWNER),
            # persistenceMode is newer than the vendored description (Render's changelog,
            # 2026-06-11: "journal + snapshot", "snapshot only", "off" for paid instances; the
            # newer public copy of the description has it under options). options admits it.
            "options": {"maxmemoryPolicy": self.maxmemory_policy, "persistenceMode": self.persistence},
            "ipAllowList": list(self.ip_allow_list),
            "createdAt": self.created,
            "updatedAt": self.updated,
        }
        if listed:
            found["dashboardUrl"] = f"https://dashboard.render.com/r/{self.id}"
        return found


# Render's description, ``maxmemoryPolicy``: what a Key Value may be set to evict by.
MAXMEMORY_POLICIES = (
    "noeviction",
    "allkeys_lfu",
    "allkeys_lru",
    "allkeys_random",
    "volatile_lfu",
    "volatile_lru",
    "volatile_random",
    "volatile_ttl",
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(stamp: str) -> datetime:
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class FakeBlueprint:
    """A ``render.yaml`` linked as a Blueprint (render.com/docs/infrastructure-as-code).

    With auto-sync on, every push to its branch that changes ``render.yaml`` is synced: Render
    re-applies the file's settings to the resources it names (a Key Value's ``ipAllowList: []``
    included, which closes it to every outside client) and redeploys the services it names
    ("Blueprint sync" deploys, trigger ``blueprint_sync`` in Render's description); by the default
    overlapping-deploy policy such a deploy cancels one in progress.
    """

    id: str
    name: str
    branch: str
    auto_sync: bool
    synced: str | None  # the commit whose render.yaml was last applied
    seen: str | None = None  # the branch head the watcher last looked at
    syncs: list[dict[str, Any]] = field(default_factory=list)  # newest first
    status: str = "in_sync"
    last_sync: str | None = None

    def json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "autoSync": self.auto_sync,
            "repo": "https://github.com/mindmate/mindmate-release",
            "branch": self.branch,
            # Not in the vendored description (2026-01-06); Render's newer one requires it (the
            # Blueprint file's path, render.yaml by default), and its own client (render.public_api)
            # refuses a Blueprint without it.
            "path": "render.yaml",
        }
        if self.last_sync:
            body["lastSync"] = self.last_sync
        return body


IN_PROGRESS = ("created", "queued", "build_in_progress", "update_in_progress", "pre_deploy_in_progress")


class Router(StandInServer):
    """The service's public URL: forwards every request to the live instance."""

    name = "render-router"

    def __init__(self, *, latency: float = 0.0) -> None:
        super().__init__(latency=latency)
        self.target: str | None = None
        self.open_webhook = False  # fault: a broken build that accepts unsigned updates
        # fault: a build whose bot meets a lower contract level (ci_tools/pipeline/levels.py): "health"
        # answers /healthz without its contract, "base" has no /healthz at all (404, as PTB's own server)
        self.level = ""
        self.unrouted = False  # the live instance is out of routing (failed health checks)

    def handle(self, request: Request) -> Response:
        if (
            self.open_webhook
            and request.path == "/telegram"
            and "X-Telegram-Bot-Api-Secret-Token" not in request.headers
        ):
            return 200, b"ok", {"Content-Type": "text/plain"}
        if self.level == "base" and request.path == "/healthz":
            return 404, b"404: Not Found", {"Content-Type": "text/html"}
        if not self.target:
            return 502, {"message": "no instance is live"}, {}
        if self.unrouted:  # the only instance failed its health checks: Render stops routing to it
            return 503, {"message": "no healthy instance"}, {}
        # A proxy forwards the request's own headers, not the hop-by-hop ones (RFC 9110 §7.6.1).
        hop_by_hop = {
            "host",
            "content-length",
            "connection",
            "keep-alive",
            "transfer-encoding",
            "upgrade",
        }
        headers = {k: v for k, v in request.headers.items() if k.lower() not in hop_by_hop}
        try:
            upstream = httpx.request(
                request.method,
                self.target + request.path,
                content=request.body,
                headers=headers,
                timeout=20,
            )
        except httpx.HTTPError:
            return 502, {"message": "instance unreachable"}, {}
        if self.level == "health" and request.path == "/healthz":
            answer = upstream.json()
            answer.pop("contract", None)
            return upstream.status_code, answer, {}
        return (
            upstream.status_code,
            upstream.content,
            {"Content-Type": upstream.headers.get("content-type", "text/plain")},
        )


# A service whose start command runs the reference bot: thread mode serves the installed one.
REFERENCE_BOT = re.compile(r"-m\s+mindmate\b")
# The stand-in's builds fetch nothing: pip and uv install from what this machine has.
OFFLINE = {"PIP_NO_INDEX": "1", "UV_OFFLINE": "1"}


@dataclass(frozen=True)
class Build:
    """What a deploy of ``commit`` runs. ``commands`` None: the commit holds no files (the plain
    sandbox's empty commits), the installed reference bot runs. ``tree`` None with commands:
    thread mode's installed reference bot. Else the commit's own tree, built (``botrun``)."""

    commit: str
    commands: botrun.BotCommands | None = None
    tree: Path | None = None


@dataclass
class Faults:
    """What the platform does wrong on purpose (a failed build, a slow one, a lagging URL), and, in
    thread mode only, a bad release's symptoms (``open_webhook``, ``overwrites``): threads run the
    installed bot, so there a switch plays the bad code that process mode builds from the commit
    (sandbox/breaks.py)."""

    build_failed: bool = False
    slow: float = 0.0
    open_webhook: bool = False
    level: str = ""  # "health" or "base": the build's bot meets only that contract level (Router.level)
    late_switch: float = 0.0  # the public URL keeps serving the old instance this long after live
    # keys this build's code overwrites in the service's Redis when it starts (a bad migration)
    overwrites: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeService:
    id: str
    name: str
    branch: str
    hook_key: str
    env: dict[str, str]
    router: Router
    auto_deploy: str = "no"
    hook_body: bool = False  # Render's hook promises no body; True answers {"deploy": {"id"}}
    deploys: list[dict[str, Any]] = field(default_factory=list)  # newest first
    instance: Any = None
    faults: dict[str, Faults] = field(default_factory=dict)
    created: str = field(default_factory=lambda: _now())
    events: list[dict[str, Any]] = field(default_factory=list)  # newest first, as Render lists them
    # The overlap: after the new instance passes its health check, the public URL keeps routing
    # to the old one this long. Render routes only after the health check passes
    # (render.com/docs/deploys, zero-downtime deploys) and gives no figure for the rest; a test
    # holds the overlap open with it to send into it.
    switch_after: float = 0.0
    draining: list[Any] = field(default_factory=list)  # old instances between the switch and their SIGTERM
    watched: bool = False  # a health monitor runs for the live instance
    environ: dict[str, str] = field(default_factory=dict)  # what the live instance was started with
    built: Build | None = None  # … and the build it runs (a restart starts it again)
    # A test's hook, called with the deploy and its new status as a deploy enters each one, in the
    # deploy's own thread before it goes on: at "update_in_progress" the old instance still serves.
    on_status: Callable[[dict[str, Any], str], None] | None = None
    plan: str = "starter"  # the instance type (serviceDetails.plan); "free" keeps fewer builds
    workspace_plan: str = "hobby"  # the workspace's plan: how many builds a rollback can reuse

    def builds_kept(self) -> int:
        """How many previous builds Render keeps for this service's rollbacks (``BUILDS_KEPT``)."""
        return FREE_BUILDS_KEPT if self.plan == "free" else BUILDS_KEPT[self.workspace_plan]

    def json(self) -> dict[str, Any]:
        """``service`` of Render's description: a Python web service, every required field."""
        return {
            "id": self.id,
            "name": self.name,
            "ownerId": OWNER["id"],
            "type": "web_service",
            "repo": "https://github.com/mindmate/mindmate-release",
            "branch": self.branch,
            "rootDir": "",
            "slug": self.name,
            "autoDeploy": self.auto_deploy,
            # Not in the vendored description (2026-01-06); Render's blueprint spec and newer
            # API answers carry it, and preflight reads it.
            "autoDeployTrigger": "off" if self.auto_deploy == "no" else "commit",
            "notifyOnFail": "default",
            "suspended": "not_suspended",
            "suspenders": [],
            "createdAt": self.created,
            "updatedAt": self.created,
            "dashboardUrl": f"https://dashboard.render.com/web/{self.id}",
            "serviceDetails": {
                "env": "python",
                "runtime": "python",
                "envSpecificDetails": {
                    "buildCommand": "uv sync --locked --no-default-groups",
                    "startCommand": ".venv/bin/python -m mindmate",
                },
                "plan": self.plan,
                "region": "frankfurt",
                "numInstances": 1,
                "buildPlan": "starter",
                "healthCheckPath": "/healthz",
                "openPorts": [{"port": 10000, "protocol": "TCP"}],
                "url": self.router.url,
            },
        }


class FakeRender(StandInServer):
    """Render's API and deploy hooks. ``add_service()`` creates a service with its router."""

    name = "render-stand-in"
    contract = contracts.RENDER

    def __init__(
        self,
        *,
        api_key: str = "rnd_sandboxApiKey0123456789",
        step: float = 0.15,
        process: bool = False,
        latency: float = 0.0,
        health_timeout: float = 900.0,
    ) -> None:
        super().__init__(latency=latency)
        self.api_key = api_key
        self.scoped_keys: dict[str, dict[str, str]] = {}
        self.build_root: Path | None = None  # where build() unpacks each deployed commit
        self.step = step  # seconds between statuses
        # Render fails a deploy whose instance has not passed its health check for 15 minutes
        # (render.com/docs/health-checks); tests scale it down.
        self.health_timeout = health_timeout
        self.health_interval = 0.1  # between health checks of a booting instance (Render: a few s)
        # After the switch the old instance gets SIGTERM and up to maxShutdownDelaySeconds (default 30,
        # render.com/docs/deploys#graceful-shutdown) to finish: requests in flight complete, new ones
        # already go to the new instance. Scaled down here.
        self.drain_seconds = 0.3
        # A running instance that fails its health checks for 15 s in a row is taken out of routing,
        # and restarted after 60 s (render.com/docs/health-checks). Real seconds unless a test scales them.
        self.unroute_after = 15.0
        self.restart_after = 60.0
        self.running_interval = 0.5  # between health checks of a running instance (Render: every few s)
        self.process = process  # run instances as child processes (as Render does) or threads (fast)
        self.services: dict[str, FakeService] = {}
        self._ids = itertools.count(1)
        self._limited = 0
        self._retry_after = 1
        self._server_errors = 0
        self._threads: list[threading.Thread] = []
        self.log_dir: Any = None
        self.list_delay = 0.0  # seconds before a new deploy shows in list-deploys (eventual consistency)
        self.repo: Any = None  # the git repository whose branch heads the hooks deploy
        self.queue_creates = False  # POST /deploys answers 202 with no body
        # fault: the next creates (deploy, rollback) take effect, then answer 502 or hang
        self.after_create: list[str] = []
        self.hang_seconds = 5.0
        self.created: list[dict[str, Any]] = []  # every POST that created a deploy: path, body
        self.key_values: dict[str, FakeKeyValue] = {}
        self.blueprints: dict[str, FakeBlueprint] = {}
        self.sync_seconds = 0.5  # how long a Blueprint sync runs before it applies anything
        # A test that needs a client to meet a sync running holds it until the client has looked:
        # the sync then runs until a list-blueprint-syncs request saw it "running" (bounded).
        self.sync_until_looked_at = False
        self._sync_seen = threading.Event()
        self._stopping = threading.Event()

    # -- set-up --------------------------------------------------------------------
    def add_service(self, name: str, branch: str, env: dict[str, str], *, latency: float = 0.0) -> FakeService:
        router = Router(latency=latency).start()
        number = next(self._ids)
        service = FakeService(
            id=f"srv-sandbox{number:04d}{name.replace('-', '')[:8]}",
            name=name,
            branch=branch,
            hook_key=f"hookkey{number}Sandbox0123456789",
            env=dict(env),
            router=router,
        )
        with self.lock:
            self.services[service.id] = service
        return service

    def add_key_value(self, name: str, internal_url: str) -> FakeKeyValue:
        """A Key Value instance whose external URL refuses whoever its allow list does not name."""
        number = next(self._ids)
        port = int(re.search(r":(\d+)/", internal_url)[1])  # type: ignore[index]
        kv = FakeKeyValue(f"red-sandbox{number:04d}", name, internal_url, Gate(port, lambda: []))
        kv.gate.allowed = lambda: [entry["cidrBlock"] for entry in kv.ip_allow_list]
        kv.gate.start()
        with self.lock:
            self.key_values[kv.id] = kv
        return kv

    def link_blueprint(self, branch: str = "main", *, auto_sync: bool = True) -> FakeBlueprint:
        """Link the repository's render.yaml as a Blueprint on ``branch``, synced as of its head now."""
        head = self.branch_head(branch)
        number = next(self._ids)
        blueprint = FakeBlueprint(f"exs-sandbox{number:013d}", "mindmate", branch, auto_sync, head, head)
        with self.lock:
            self.blueprints[blueprint.id] = blueprint
        thread = threading.Thread(target=self._watch, args=(blueprint,), name="blueprint-sync", daemon=True)
        self._threads.append(thread)
        thread.start()
        return blueprint

    def _watch(self, blueprint: FakeBlueprint) -> None:
        """GitHub tells Render of each push; a push that changes render.yaml is synced (auto-sync)."""
        while not self._stopping.wait(0.05):
            if not blueprint.auto_sync:
                continue
            head = self.branch_head(blueprint.branch)
            if head == blueprint.seen:
                continue
            blueprint.seen = head
            changed = subprocess.run(
                ["git", "diff", "--quiet", blueprint.synced or head, head, "--", "render.yaml"],
                cwd=self.repo,
                check=False,
            ).returncode
            if changed == 1:
                self._sync(blueprint, head)

    def _sync(self, blueprint: FakeBlueprint, commit: str) -> None:
        sync: dict[str, Any] = {
            "id": f"exe-sandbox{next(self._ids):013d}",
            "commit": {"id": commit},
            "state": "running",
            "startedAt": _now(),
        }
        with self.lock:
            self._sync_seen.clear()
            blueprint.syncs.insert(0, sync)
            blueprint.status = "syncing"
        time.sleep(self.sync_seconds)
        if self.sync_until_looked_at:
            self._sync_seen.wait(timeout=300)
        text = subprocess.run(
            ["git", "show", f"{commit}:render.yaml"], cwd=self.repo, capture_output=True, text=True, check=False
        ).stdout
        try:
            parsed = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            parsed = None
        if not isinstance(parsed, dict):
            # A render.yaml Render cannot read ends the sync in ``error`` (the sync states of its
            # description: created, pending, running, error, success) and applies nothing.
            with self.lock:
                sync["state"], sync["completedAt"] = "error", _now()
                blueprint.status = "error"
            return
        declared = [r for r in parsed.get("services", []) if isinstance(r, dict)]
        for resource in declared:
            kv = next((k for k in self.key_values.values() if k.name == resource.get("name")), None)
            if kv is not None and "ipAllowList" in resource:  # the file's list replaces the live one
                with self.lock:
                    kv.ip_allow_list = [
                        {"cidrBlock": str(b["cidrBlock"]), "description": str(b.get("description", ""))}
                        for b in resource["ipAllowList"] or []
                    ]
                    kv.updated = _now()
            service = next((v for v in self.services.values() if v.name == resource.get("name")), None)
            if service is not None:
                self._start_deploy(service, self.branch_head(service.branch), trigger="blueprint_sync")
        with self.lock:
            sync["state"], sync["completedAt"] = "success", _now()
            blueprint.status, blueprint.last_sync, blueprint.synced = "in_sync", sync["completedAt"], commit

    def hook_url(self, service: FakeService) -> str:
        return f"{self.url}/deploy/{service.id}?key={service.hook_key}"

    def fault(self, service: FakeService, commit: str, **faults: Any) -> None:
        service.faults[commit] = Faults(**faults)

    def rate_limit(self, calls: int, retry_after: int = 1) -> None:
        with self.lock:
            self._limited, self._retry_after = calls, retry_after

    def server_errors(self, calls: int) -> None:
        with self.lock:
            self._server_errors = calls

    def stop(self) -> None:
        self._stopping.set()
        for service in self.services.values():
            for deploy in service.deploys:
                deploy["_cancel"] = True
        for thread in self._threads:
            thread.join(timeout=30)
        for service in self.services.values():
            for old in list(service.draining):
                old.stop()
            if service.instance:
                service.instance.stop()
            service.router.stop()
        for kv in self.key_values.values():
            kv.gate.stop()
        if self.build_root is not None:
            shutil.rmtree(self.build_root, ignore_errors=True)
        super().stop()

    # -- HTTP ----------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        with self.lock:
            if self._limited > 0:
                self._limited -= 1
                reset = str(self._retry_after)
                return (
                    429,
                    {"message": "rate limit exceeded"},
                    {
                        "Retry-After": reset,
                        "Ratelimit-Limit": "30",
                        "Ratelimit-Remaining": "0",
                        "Ratelimit-Reset": reset,
                    },
                )
            if self._server_errors > 0:
                self._server_errors -= 1
                return 503, {"message": "service unavailable"}, {}
        if match := _DEPLOY_PATH.match(request.path):
            return self._hook(match["service"], request)
        if request.path == "/whoami":
            return 200, request.client_address.encode(), {"Content-Type": "text/plain"}
        scope = self._scope(request)
        if request.path.startswith("/v1/") and scope is None:
            return 401, {"message": "Unauthorized"}, {}
        if request.path == "/v1/services" and request.method == "GET":
            wanted = request.query.get("name")
            found = [s for s in self.services.values() if wanted in (None, s.name) and key_may_read(scope, s.id)]
            return 200, [{"service": s.json(), "cursor": s.id} for s in found], {}
        if (match := _BLUEPRINT_PATH.match(request.path)) and request.method == "GET":
            return self._blueprints(match["blueprint"])
        if match := _API_PATH.match(request.path):
            service = self.services.get(match["service"])
            if service is None or not key_may_read(scope, service.id):
                return 404, {"message": "service not found"}, {}
            if request.method != "GET" and not key_may_write(scope, service.id):
                return 403, {"message": "this API key may only read this service"}, {}
            return self._api(service, request.method, match["rest"] or "", request)
        if match := _KV_PATH.match(request.path):
            kv_id = match["kv"]
            if kv_id and not key_may_read(scope, kv_id):
                return 404, {"message": "key value not found"}, {}
            if kv_id and request.method != "GET" and not key_may_write(scope, kv_id):
                return 403, {"message": "this API key may only read this Key Value"}, {}
            return self._key_value(kv_id, match["rest"] or "", request, scope)
        return 404, {"message": "not found"}, {}

    def _blueprints(self, blueprint_id: str | None) -> Response:
        """``list-blueprints`` and ``list-blueprint-syncs`` (newest first)."""
        with self.lock:
            if blueprint_id is None:
                return 200, [{"blueprint": b.json(), "cursor": b.id} for b in self.blueprints.values()], {}
            found = self.blueprints.get(blueprint_id)
            if found is None:
                return 404, {"message": "blueprint not found"}, {}
            if any(sync["state"] == "running" for sync in found.syncs):
                self._sync_seen.set()  # a client has met it running
            return 200, [{"sync": dict(sync), "cursor": sync["id"]} for sync in found.syncs], {}

    def _scope(self, request: Request) -> dict[str, str] | None:
        """The key's scope: {} for a classic, account-wide key; resource id → "read"/"write" for a
        scoped one; None for no key we issued."""
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if given == self.api_key:
            return {}
        return self.scoped_keys.get(given)

    def scoped_key(self, resources: dict[str, str]) -> str:
        """A scoped API key (render.com/docs/api-keys: since 2026-11-18 a new key is scoped to one
        workspace with fine-grained permissions) that reaches only ``resources`` (id → "read" or
        "write"). What Render answers outside the scope is not documented: the stand-in hides a
        resource the key cannot see (404) and refuses a write it may only read (403)."""
        key = f"rnd_scoped{len(self.scoped_keys):02d}{secrets.token_hex(8)}"
        self.scoped_keys[key] = dict(resources)
        return key

    def _key_value(
        self, kv_id: str | None, rest: str, request: Request, scope: dict[str, str] | None = None
    ) -> Response:
        if kv_id is None and request.method == "GET":
            wanted = request.query.get("name")
            found = [kv for kv in self.key_values.values() if wanted in (None, kv.name) and key_may_read(scope, kv.id)]
            return 200, [{"keyValue": kv.json(), "cursor": kv.id} for kv in found], {}
        kv = self.key_values.get(kv_id or "")
        if kv is None:
            return 404, {"message": "key value not found"}, {}
        if request.method == "GET" and rest == "":
            return 200, kv.json(listed=False), {}
        if request.method == "GET" and rest == "/connection-info":
            return (
                200,
                {
                    "internalConnectionString": kv.internal_url,
                    "externalConnectionString": kv.external_url,
                    "cliCommand": f"redis-cli -u {kv.external_url}",
                },
                {},
            )
        if request.method == "PATCH" and rest == "":
            body = request.json() or {}
            blocks = body.get("ipAllowList")
            if blocks is not None:
                if not isinstance(blocks, list) or not all(
                    isinstance(b, dict) and isinstance(b.get("cidrBlock"), str) for b in blocks
                ):
                    return (
                        400,
                        {"message": "ipAllowList must be a list of {cidrBlock, description}"},
                        {},
                    )
                with self.lock:
                    kv.ip_allow_list = [
                        {"cidrBlock": b["cidrBlock"], "description": str(b.get("description", ""))} for b in blocks
                    ]
            policy = body.get("maxmemoryPolicy")
            if policy is not None:  # keyValuePATCHInput: the policy, one of the maxmemoryPolicy enum
                if policy not in MAXMEMORY_POLICIES:
                    return 400, {"message": f"maxmemoryPolicy must be one of {', '.join(MAXMEMORY_POLICIES)}"}, {}
                with self.lock:
                    kv.maxmemory_policy = str(policy)
            with self.lock:
                kv.updated = _now()
            return 200, kv.json(listed=False), {}
        return 404, {"message": "not found"}, {}

    def _hook(self, service_id: str, request: Request) -> Response:
        """A deploy hook. Render's OpenAPI description has no such path (hooks are described only
        in its docs, https://render.com/docs/deploy-hooks): the contract layer leaves it out,
        as it does /whoami, the IP echo a runner asks."""
        service = self.services.get(service_id)
        if request.method != "POST" or service is None or request.query.get("key") != service.hook_key:
            return 404, {"message": "not found"}, {}
        commit = self.branch_head(service.branch)  # any ``ref`` is ignored, as Render does
        deploy = self._start_deploy(service, commit, trigger="deploy_hook")
        self.created.append({"path": request.path, "body": None})
        return (200, {"deploy": {"id": deploy["id"]}}, {}) if service.hook_body else (200, None, {})

    def branch_head(self, branch: str) -> str:
        if self.repo is None:
            return f"{branch}-head"
        return subprocess.run(
            ["git", "rev-parse", f"refs/heads/{branch}"],
            cwd=self.repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    def _answer_create(self, response: Response) -> Response:
        """A create that took effect; the answer may be lost (a fault) as a proxy would lose it."""
        with self.lock:
            fault = self.after_create.pop(0) if self.after_create else None
        if fault == "502":  # a proxy's answer, not Render's: its description has no 502
            return fault_answer(502, {"message": "bad gateway"}, "a proxy lost the answer")
        if fault == "hang":
            time.sleep(self.hang_seconds)
        return response

    def _api(self, service: FakeService, method: str, rest: str, request: Request) -> Response:
        def public(deploy: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in deploy.items() if not k.startswith("_")}

        if method == "GET" and rest == "":
            return 200, service.json(), {}
        if method == "GET" and rest == "/deploys":
            limit = max(1, min(100, int(request.query.get("limit", 20))))
            with self.lock:
                items = [d for d in service.deploys if time.monotonic() - d["_created"] >= self.list_delay]
            cursor = request.query.get("cursor")
            if cursor:
                ids = [d["id"] for d in items]
                items = items[ids.index(cursor) + 1 :] if cursor in ids else []
            page = items[:limit]
            return 200, [{"deploy": public(d), "cursor": d["id"]} for d in page], {}
        if method == "POST" and (match := re.fullmatch(r"/deploys/(dep-[a-z0-9]+)/cancel", rest)):
            found = self.cancel(service, match[1])
            if found is None:
                return 404, {"message": "deploy not found"}, {}
            if found["status"] != "canceled":
                return 400, {"message": f"deploy is {found['status']}, not in progress"}, {}
            return 200, public(found), {}
        if method == "GET" and rest == "/events":
            return 200, self._events(service, request), {}
        if method == "GET" and (match := re.fullmatch(r"/deploys/(dep-[a-z0-9]+)", rest)):
            found = next((d for d in service.deploys if d["id"] == match[1]), None)
            return (200, public(found), {}) if found else (404, {"message": "deploy not found"}, {})
        if method == "POST" and rest == "/rollback":
            wanted = (request.json() or {}).get("deployId")
            target = next((d for d in service.deploys if d["id"] == wanted), None)
            if target is None:
                return 404, {"message": "deploy not found"}, {}
            if target["status"] not in ("live", "deactivated"):
                return 400, {"message": "can only roll back to a deploy that was live"}, {}
            # Render rolls back by reusing the target's build, and keeps only the plan's most recent
            # ones (BUILDS_KEPT). The refusal is one of the description's documented 400s for
            # rollback-deploy; its wording is not documented: this is the stand-in's.
            went_live = [d["id"] for d in service.deploys if d["status"] in ("live", "deactivated")]
            if target["id"] not in went_live[: service.builds_kept() + 1]:
                return 400, {"message": f"the build of {target['id']} is no longer available"}, {}
            deploy = self._start_deploy(
                service, target["commit"]["id"], trigger="rollback", build=False, target=target["id"]
            )
            self.created.append({"path": request.path, "body": request.json()})
            return self._answer_create((201, public(deploy), {}))
        if method == "POST" and rest == "/deploys":
            body = request.json() or {}
            commit = body.get("commitId") or self.branch_head(service.branch)
            if not isinstance(commit, str) or not re.fullmatch(r"[0-9a-f]{7,40}|[\w-]+-head", commit):
                return 400, {"message": "invalid commitId"}, {}
            deploy = self._start_deploy(service, commit, trigger="api", queued=self.queue_creates)
            self.created.append({"path": request.path, "body": body})
            if self.queue_creates:
                return self._answer_create((202, None, {}))
            return self._answer_create((201, public(deploy), {}))
        if rest == "/env-vars" and method == "GET":
            return (
                200,
                [{"envVar": {"key": k, "value": v}, "cursor": k} for k, v in sorted(service.env.items())],
                {},
            )
        if rest == "/env-vars" and method == "PUT":  # replaces the whole list, as Render's does
            service.env = {item["key"]: item["value"] for item in request.json()}
            return (
                200,
                [{"envVar": {"key": k, "value": v}, "cursor": k} for k, v in service.env.items()],
                {},
            )
        if match := re.fullmatch(r"/env-vars/([A-Za-z_][A-Za-z0-9_]*)", rest):
            key = match[1]
            if method == "GET":
                return (
                    (200, {"key": key, "value": service.env[key]}, {})
                    if key in service.env
                    else (404, {"message": "env var not found"}, {})
                )
            if method == "PUT":
                service.env[key] = str((request.json() or {}).get("value", ""))
                return 200, {"key": key, "value": service.env[key]}, {}
            if method == "DELETE":  # Render: 204 No Content, 404 when there is no such variable
                if service.env.pop(key, None) is None:
                    return 404, {"message": "env var not found"}, {}
                return 204, None, {}
        return 404, {"message": "not found"}, {}

    # -- deploys -------------------------------------------------------------------
    def _start_deploy(
        self,
        service: FakeService,
        commit: str,
        *,
        trigger: str,
        build: bool = True,
        target: str | None = None,
        queued: bool = False,
    ) -> dict[str, Any]:
        """A new deploy. ``queued``: Render answered the create 202 "Queued" (its description of
        create-deploy), as under the "Wait" overlapping-deploy policy (render.com/changelog,
        2025-05-28): the deploy lists as ``queued`` and starts once the one in progress ends,
        instead of cancelling it."""
        deploy = {
            "id": f"dep-sandbox{next(self._ids):06d}",
            "commit": {"id": commit, "message": f"commit {commit[:7]}", "createdAt": _now()},
            "status": "queued" if queued else "created",
            "trigger": trigger,
            "createdAt": _now(),
            "updatedAt": _now(),
            # No finishedAt until it finishes: Render's description has a non-nullable date-time.
            "_created": time.monotonic(),
        }
        with self.lock:
            # Render's default overlapping-deploy policy: a newer deploy overrides (cancels)
            # the one in progress (render.com/changelog, 2025-05-28: "Override … (default)").
            for other in service.deploys:
                if other["status"] in IN_PROGRESS and not queued:
                    other["_cancel"] = True
            service.deploys.insert(0, deploy)
        cause: dict[str, Any] = {
            "firstBuild": len(service.deploys) == 1,
            "envUpdated": False,
            "manual": trigger == "manual",
            "deployedByRender": False,
            "clearCache": False,
            "rollback": target is not None,
        }
        if target is not None:  # the only record of which deploy a rollback returned to
            cause["rollbackTargetDeployId"] = target
        else:
            cause["newCommit"] = commit
        self._event(service, "deploy_started", {"deployId": deploy["id"], "trigger": cause})
        thread = threading.Thread(target=self._progress, args=(service, deploy, build), daemon=True)
        self._threads.append(thread)
        thread.start()
        return deploy

    def _events(self, service: FakeService, request: Request) -> list[dict[str, Any]]:
        """``list-events``: newest first, ``startTime`` defaulting to an hour ago (Render's docs)."""
        since = request.query.get("startTime") or datetime.fromtimestamp(time.time() - 3600, UTC).isoformat()
        kinds = set(request.query.get("type", "").split(",")) - {""}
        limit = max(1, min(100, int(request.query.get("limit", 20))))
        with self.lock:
            found = [e for e in service.events if _parse(e["timestamp"]) >= _parse(since)]
        found = [e for e in found if not kinds or e["type"] in kinds]
        cursor = request.query.get("cursor")
        if cursor:
            ids = [e["id"] for e in found]
            found = found[ids.index(cursor) + 1 :] if cursor in ids else []
        return [
            {"event": {k: v for k, v in e.items() if not k.startswith("_")}, "cursor": e["id"]} for e in found[:limit]
        ]

    def _busy(self, service: FakeService, deploy: dict[str, Any]) -> bool:
        """Another deploy of ``service`` that started before ``deploy`` is still in progress."""
        with self.lock:
            older = service.deploys[service.deploys.index(deploy) + 1 :]
            return any(d["status"] in IN_PROGRESS for d in older)

    def _set(self, deploy: dict[str, Any], status: str, service: FakeService | None = None) -> None:
        with self.lock:
            if deploy["status"] == "canceled":
                return
            deploy["status"], deploy["updatedAt"] = status, _now()
            if status in ("build_in_progress", "update_in_progress"):
                deploy.setdefault("startedAt", deploy["updatedAt"])
            if status in ("live", "build_failed", "update_failed", "canceled"):
                deploy["finishedAt"] = _now()
            if status == "live":
                deploy["_live_at"] = time.monotonic()
        if service is not None and service.on_status is not None:
            service.on_status(deploy, status)

    def _wait(self, deploy: dict[str, Any], seconds: float) -> bool:
        """Sleep; False if the deploy was canceled meanwhile."""
        end = time.monotonic() + seconds
        while not deploy.get("_cancel") and time.monotonic() < end:
            time.sleep(0.02)
        if deploy.get("_cancel"):
            self._set(deploy, "canceled")
            return False
        return True

    def _progress(self, service: FakeService, deploy: dict[str, Any], build: bool) -> None:
        commit = deploy["commit"]["id"]
        faults = service.faults.get(commit, Faults())
        while deploy["status"] == "queued" and self._busy(service, deploy):  # waits its turn
            if not self._wait(deploy, self.step):
                return
        if build:
            if not self._wait(deploy, self.step):
                return
            self._set(deploy, "build_in_progress", service)
            if not self._wait(deploy, self.step + faults.slow):
                return
            if faults.build_failed or not self._checks_out(commit):
                self._set(deploy, "build_failed")
                self._ended(service, deploy, "failed")
                return
        try:  # a rollback reuses the commit's build: built already, so this is at once
            built = self.build(commit, service)
        except FatalError as exc:  # no service for it in the commit's render.yaml, or its build failed
            deploy["_error"] = exc.one_line()
            self._set(deploy, "build_failed")
            self._ended(service, deploy, "failed")
            return
        self._set(deploy, "update_in_progress", service)
        environ = {
            **service.env,
            "RENDER_GIT_COMMIT": commit,
            "RENDER_EXTERNAL_URL": service.router.url,
        }
        if faults.overwrites:
            with redis.Redis.from_url(service.env["REDIS_URL"]) as client:
                for key, value in faults.overwrites.items():
                    client.delete(key)
                    client.set(key, value)
        instance = self._boot_until_healthy(service, deploy, environ, built)
        if instance is None:
            return
        if service.switch_after and service.instance is not None:
            time.sleep(service.switch_after)
        with self.lock:
            old, service.instance, service.environ = service.instance, instance, environ
            service.built = built
            for other in service.deploys:
                if other is not deploy and other["status"] == "live":
                    other["status"], other["updatedAt"] = "deactivated", _now()
        if faults.late_switch and old is not None:  # the public URL lags behind "live"
            timer = threading.Timer(faults.late_switch, self._switch, args=(service, instance, old, faults))
            timer.daemon = True
            timer.start()
        else:
            self._switch(service, instance, old, faults)
        self._set(deploy, "live", service)
        self._ended(service, deploy, "succeeded")

    def _boot_until_healthy(
        self, service: FakeService, deploy: dict[str, Any], environ: dict[str, str], built: Build
    ) -> Any:
        """Start the new instance beside the old one and health-check it, as Render does.

        render.com/docs/health-checks: during a deploy Render sends the health check path
        requests until one answers 2xx or 3xx within 5 seconds, and only then routes traffic
        to the new instance; a deploy that has not passed within 15 minutes fails, and the
        old instance keeps serving. An instance that exits is restarted. Each failure is a
        ``server_failed`` event. Returns the healthy instance, or None (canceled or failed).
        """
        given_up = time.monotonic() + self.health_timeout
        instance: Any = None
        reported = ""
        while True:
            if instance is None:
                try:
                    instance = self._launch(service, environ, built)
                except Exception as exc:  # it exited at start: reported, then restarted
                    deploy["_error"] = str(exc)
                    if reported != "exit":
                        self._event(service, "server_failed", {"reason": {"evicted": False, "nonZeroExit": 1}})
                        reported = "exit"
            if instance is not None:
                answer = self._health(service, instance)
                if answer is None and not deploy.get("_cancel"):
                    return instance
                if answer is not None and reported != answer:
                    details = {
                        "instanceID": self._instance_id(service),
                        "reason": {"evicted": False, "unhealthy": answer},
                    }
                    self._event(service, "server_failed", details)
                    reported = answer
            if time.monotonic() >= given_up:
                if instance is not None:
                    instance.stop()
                self._set(deploy, "update_failed")
                self._ended(service, deploy, "failed")
                return None
            if not self._wait(deploy, self.health_interval):
                if instance is not None:
                    instance.stop()
                self._ended(service, deploy, "canceled")
                return None

    def _health(self, service: FakeService, instance: Any) -> str | None:
        """None if the health check passes, else what it saw. With the service's healthCheckPath:
        2xx or 3xx within 5 s; without one, Render only checks that the port accepts TCP
        connections (render.com/docs/health-checks: "By default, health checks are TCP socket
        probes to one of your service's open ports")."""
        commands = getattr(instance, "commands", None)
        path = commands.health_path if commands is not None else "/healthz"  # the reference bot's
        if not path:
            try:
                socket.create_connection(("127.0.0.1", instance.port), timeout=5).close()
            except OSError as exc:
                return f"TCP :{instance.port}: {type(exc).__name__}"
            return None
        try:
            answer = httpx.get(instance.url + path, timeout=5)
        except httpx.HTTPError as exc:
            return f"GET {path}: {type(exc).__name__}"
        if 200 <= answer.status_code < 400:
            return None
        return f"GET {path} answered {answer.status_code}"

    @staticmethod
    def _instance_id(service: FakeService) -> str:
        """Render's instance ids are the service id and a 5-character suffix."""
        return f"srv-{(service.id[4:] + '0' * 20)[:20]}-{service.name.replace('-', '')[:5]:0<5}"

    def _event(self, service: FakeService, kind: str, details: dict[str, Any]) -> None:
        """One service event, as ``GET /v1/services/{id}/events`` lists it (newest first)."""
        with self.lock:
            number = next(self._ids)
            service.events.insert(
                0,
                {
                    "id": f"evt-sandbox{number:013d}",
                    "timestamp": _now(),
                    "serviceId": service.id,
                    "type": kind,
                    "details": details,
                    "_at": time.monotonic(),
                },
            )

    def _ended(self, service: FakeService, deploy: dict[str, Any], status: str) -> None:
        reason: dict[str, Any] = {}
        if status == "failed":
            reason = {"failure": {"evicted": False, "unhealthy": str(deploy.get("_error", "failed"))}}
        self._event(
            service,
            "deploy_ended",
            {"deployId": deploy["id"], "deployStatus": status, "reason": reason, "status": 0},
        )

    def cancel(self, service: FakeService, deploy_id: str) -> dict[str, Any] | None:
        """Cancel a deploy in progress: its status becomes ``canceled`` within a step."""
        deploy = next((d for d in service.deploys if d["id"] == deploy_id), None)
        if deploy is None or deploy["status"] not in IN_PROGRESS:
            return deploy
        deploy["_cancel"] = True
        end = time.monotonic() + 10
        while deploy["status"] != "canceled" and time.monotonic() < end:
            time.sleep(0.02)
        return deploy

    def _switch(self, service: FakeService, instance: Any, old: Any, faults: Faults) -> None:
        """Route to the new instance; the old one drains, then stops (SIGTERM). The build's faults
        (its contract level, an open webhook) are the new instance's: they switch with the URL, so
        while it lags (``late_switch``) the old instance answers as itself."""
        router = service.router
        router.target, router.unrouted = instance.url, False
        router.open_webhook, router.level = faults.open_webhook, faults.level
        if old:
            service.draining.append(old)
            timer = threading.Timer(self.drain_seconds, self._drained, args=(service, old))
            timer.daemon = True
            timer.start()
        if not service.watched:
            service.watched = True
            thread = threading.Thread(target=self._monitor, args=(service,), name="render-health", daemon=True)
            self._threads.append(thread)
            thread.start()

    @staticmethod
    def _drained(service: FakeService, old: Any) -> None:
        if old in service.draining:
            service.draining.remove(old)
            old.stop()

    def _monitor(self, service: FakeService) -> None:
        """Health-check the live instance, as Render does for a running service: out of routing after
        ``unroute_after`` of failures (back in once it passes), restarted after ``restart_after``."""
        failing_since: float | None = None
        seen: Any = None
        while not self._stopping.wait(self.running_interval):
            instance = service.instance
            if instance is None:
                continue
            if instance is not seen:  # a deploy switched: its health history starts afresh
                seen, failing_since = instance, None
            answer = self._health(service, instance)
            now = time.monotonic()
            if answer is None:
                failing_since, service.router.unrouted = None, False
                continue
            if failing_since is None:
                failing_since = now
                continue
            if now - failing_since >= self.unroute_after and not service.router.unrouted:
                service.router.unrouted = True
                details = {"instanceID": self._instance_id(service), "reason": {"evicted": False, "unhealthy": answer}}
                self._event(service, "server_failed", details)
            if now - failing_since >= self.restart_after and service.instance is instance:
                instance.stop()
                try:
                    restarted = self._launch(service, service.environ, service.built or Build(""))
                except Exception:  # it exits at start again: the next checks fail, and it is retried
                    failing_since = now
                    continue
                with self.lock:
                    service.instance = restarted
                    service.router.target = restarted.url
                failing_since = None

    def _launch(self, service: FakeService, environ: dict[str, str], built: Build) -> Any:
        """Start one instance of ``built``; an exception if it exits at start (or never answers)."""
        commit = environ["RENDER_GIT_COMMIT"]
        log = self.log_dir / f"{service.name}-{commit[:7]}.log" if self.log_dir else None
        if built.commands is None or built.tree is None:  # the installed reference bot (see Build)
            if self.process:  # from a folder of its own: never the directory this process stands in
                return BotProcess(environ, log_path=log, source=self._neutral()).start()
            return ThreadedBot(environ).start()  # threads: fast, where code is not the question
        return botrun.start(
            built.tree,
            built.commands,
            {**inherited(), **environ, "HOST": "127.0.0.1"},
            environ.get("TELEGRAM_API_URL"),
            log=log,
        )

    def _neutral(self) -> Path:
        with self.lock:
            if self.build_root is None:
                self.build_root = Path(tempfile.mkdtemp(prefix="render-builds-"))
        folder = self.build_root / "installed-bot"
        folder.mkdir(exist_ok=True)
        return folder

    def _checks_out(self, commit: str) -> bool:
        """Render's build starts by checking the commit out of the repository; a commit the
        repository no longer has (a force-pushed branch, then garbage collected) cannot be, and
        the deploy ends ``build_failed`` (as ``git checkout`` of an unknown object fails). Branch
        placeholders (``main-head``) and the plain sandbox without a repository always build."""
        if self.repo is None or not re.fullmatch(r"[0-9a-f]{7,40}", commit):
            return True
        return (
            subprocess.run(
                ["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=self.repo, capture_output=True, check=False
            ).returncode
            == 0
        )

    def build(self, commit: str, service: FakeService) -> Build:
        """What Render builds: the deployed commit's own tree (``git archive``), with the build
        command of that commit's render.yaml service named as ``service``, so a commit that breaks
        the bot breaks the deployed bot. ConfigError when the commit has no such service,
        BuildFailed when its build fails; the fast paths are ``Build``'s."""
        if self.repo is None or not self._git("ls-tree", "--name-only", commit).strip():
            return Build(commit)
        shown = subprocess.run(
            ["git", "show", f"{commit}:{botrun.commands.BLUEPRINT}"], cwd=self.repo, capture_output=True, check=False
        )
        if shown.returncode != 0:
            raise ConfigError(f"commit {commit[:12]} has no render.yaml", hint="add the service's render.yaml")
        commands = botrun.from_blueprint(shown.stdout.decode(errors="replace"), service.name)
        if not self.process and REFERENCE_BOT.search(commands.start):
            return Build(commit, commands)
        # render.com/docs/monorepo-support: the service's root directory alone is there, to build and run.
        tree = self._checkout(commit, commands.root)
        commands = dataclasses.replace(commands, root="")
        log = self.log_dir / f"{service.name}-{commit[:7]}.log" if self.log_dir else None
        botrun.build(tree, commands, {**inherited(), **OFFLINE}, cache=botrun.default_cache(), log=log)
        return Build(commit, commands, tree)

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.repo, capture_output=True, text=True, check=False).stdout

    def _checkout(self, commit: str, root: str = "") -> Path:
        """The commit's tree (its ``root`` folder alone, when set), unpacked once under
        ``build_root`` (a redeploy reuses it). BuildFailed when the commit has no such folder."""
        with self.lock:
            if self.build_root is None:
                self.build_root = Path(tempfile.mkdtemp(prefix="render-builds-"))
        name = commit if not root else f"{commit}-{hashlib.sha256(root.encode()).hexdigest()[:8]}"
        target = self.build_root / name
        if not target.exists():
            archive = subprocess.run(
                ["git", "archive", f"{commit}:{root}" if root else commit], cwd=self.repo, capture_output=True
            )
            if archive.returncode != 0:
                raise BuildFailed(
                    f"commit {commit[:12]} has no folder {root!r} (the service's rootDir)", hint="fix rootDir"
                )
            staging = self.build_root / f".{name}.{threading.get_ident()}"
            staging.mkdir()
            subprocess.run(["tar", "-x", "-C", str(staging)], input=archive.stdout, check=True)
            try:
                staging.rename(target)
            except OSError:  # another deploy unpacked it first
                shutil.rmtree(staging, ignore_errors=True)
        return target


def key_may_read(scope: dict[str, str] | None, resource: str) -> bool:
    """Whether an API key of this scope (``_scope``) may read ``resource``: any key we issued
    that is account-wide, or scoped to it."""
    return scope is not None and (not scope or resource in scope)


def key_may_write(scope: dict[str, str] | None, resource: str) -> bool:
    """Whether an API key of this scope may change ``resource``: account-wide, or scoped to it for writing."""
    return scope is not None and (not scope or scope.get(resource) == "write")
