"""Render: deploy hooks and the parts of the REST API the pipeline needs.

The deploy hook is the only thing needed to deploy; the API key (optional) makes
waiting precise (the deploy's own status) and enables rollback. Every call goes
through ``ci_tools.http`` (429 and 5xx retried) and every error is one line with
the dashboard link, never the key.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from ci_tools.config import render_api_url
from ci_tools.errors import ConfigError, RemoteError
from ci_tools.http import request

IN_PROGRESS = (
    "created",
    "queued",
    "build_in_progress",
    "update_in_progress",
    "pre_deploy_in_progress",
)
FAILED = ("build_failed", "update_failed", "pre_deploy_failed", "canceled")
SERVICE_ID = re.compile(r"^srv-[a-z0-9]+$")


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

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Deploy:
        commit = data.get("commit") or {}
        return cls(
            id=str(data.get("id")),
            status=str(data.get("status")),
            commit=commit.get("id"),
            created_at=data.get("createdAt"),
            finished_at=data.get("finishedAt"),
        )


def hook_with_ref(hook_url: str, commit: str) -> str:
    """The hook URL with ``ref=<commit>`` added to its existing query (``?key=…``)."""
    base = render_api_url()
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
    query["ref"] = commit
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def service_id_from_hook(hook_url: str) -> str:
    return urlsplit(hook_url).path.rsplit("/", 1)[-1]


def trigger(hook_url: str, commit: str, *, deadline: float) -> str | None:
    """Call the deploy hook for ``commit``; the new deploy's id when the hook says it."""
    url = hook_with_ref(hook_url, commit)
    with httpx.Client(timeout=30) as client:
        response = request(client, "POST", url, deadline=deadline, what="the deploy hook")
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

    def __init__(self, api_key: str, service_id: str, *, deadline: float) -> None:
        if not SERVICE_ID.match(service_id):
            raise ConfigError(
                f"RENDER_SERVICE_ID {service_id!r} is not a service id",
                hint="it looks like srv-…; find it in the service's URL in the dashboard",
            )
        self.service_id = service_id
        self.deadline = deadline
        self.client = httpx.Client(
            base_url=f"{render_api_url()}/v1",
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=30,
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RenderAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self, method: str, path: str, what: str, *, missing_ok: bool = False, **kwargs: Any
    ) -> Any:
        response = request(self.client, method, path, deadline=self.deadline, what=what, **kwargs)
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
            raise RemoteError(f"{what}: HTTP {response.status_code} {message}".strip())
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
            page = self._call(
                "GET", f"/services/{self.service_id}/deploys", "listing deploys", params=params
            )
            if not page:
                return
            for item in page:
                yield Deploy.from_api(item["deploy"])
            cursor = page[-1].get("cursor")
            if not cursor or len(page) < page_size:
                return

    def deploy(self, deploy_id: str) -> Deploy:
        return Deploy.from_api(
            self._call(
                "GET", f"/services/{self.service_id}/deploys/{deploy_id}", "reading the deploy"
            )
        )

    def live(self) -> Deploy | None:
        return next((d for d in self.deploys() if d.status == "live"), None)

    def rollback(self, deploy_id: str) -> Deploy:
        data = self._call(
            "POST",
            f"/services/{self.service_id}/rollback",
            "rolling back",
            json={"deployId": deploy_id},
        )
        return Deploy.from_api(data)

    def env_var(self, key: str) -> str | None:
        data = self._call(
            "GET", f"/services/{self.service_id}/env-vars/{key}", f"reading {key}", missing_ok=True
        )
        return None if data is None else data.get("value")

    def set_env_var(self, key: str, value: str) -> None:
        """One variable through the single-key endpoint (PUT of the list would replace them all)."""
        self._call(
            "PUT",
            f"/services/{self.service_id}/env-vars/{key}",
            f"setting {key}",
            json={"value": value},
        )


def monotonic_deadline(seconds: float) -> float:
    return time.monotonic() + seconds
