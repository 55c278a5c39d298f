"""Fetch what the providers publish now, for ``contract-drift.yml`` to compare.

Render publishes its OpenAPI file at a fixed URL (the one its API docs link,
https://api-docs.render.com/openapi/render-public-api-1.json); GitHub's ships in the newest
``@octokit/openapi`` npm package (its registry metadata names the tarball). Telegram publishes
no machine-readable description: the Bot API is its page https://core.telegram.org/bots/api,
read into the vendored ``api.json`` shape by ``botapi_page`` (a generator's repository that
scraped it stopped following it at Bot API 10.1). Each source can be pointed elsewhere, which
is how the workflow is tested in act against local copies.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from ci_tools.contracts import botapi_page
from ci_tools.errors import RemoteError

RENDER_URL = "https://api-docs.render.com/openapi/render-public-api-1.json"
NPM_REGISTRY = "https://registry.npmjs.org"
TELEGRAM_URL = botapi_page.PAGE_URL
OCTOKIT_MEMBER = "package/generated/api.github.com.json"


@dataclass(frozen=True)
class Sources:
    render: str = RENDER_URL
    npm_registry: str = NPM_REGISTRY
    telegram: str = TELEGRAM_URL


def _get(client: httpx.Client, url: str, what: str) -> httpx.Response:
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        raise RemoteError(
            f"cannot fetch {what} from {url} ({type(exc).__name__})",
            hint="check the URL and the network, then run again",
        ) from None
    if not response.is_success:
        raise RemoteError(
            f"{what}: {url} answered HTTP {response.status_code}",
            hint="the provider may have moved it: find the new address and set it",
        ) from None
    return response


def github_description(client: httpx.Client, registry: str) -> tuple[bytes, str]:
    """``api.github.com.json`` from the newest ``@octokit/openapi``, and that version."""
    meta = _get(client, f"{registry.rstrip('/')}/@octokit/openapi/latest", "@octokit/openapi").json()
    tarball = _get(client, meta["dist"]["tarball"], "the @octokit/openapi tarball").content
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        member = archive.extractfile(OCTOKIT_MEMBER)
        if member is None:
            raise RemoteError(
                f"@octokit/openapi {meta.get('version')} has no {OCTOKIT_MEMBER}",
                hint="the package changed its layout: update ci_tools/contracts/fetch.py",
            )
        return member.read(), str(meta.get("version", "?"))


def telegram_description(client: httpx.Client, url: str) -> tuple[bytes, str]:
    """Telegram's Bot API page read into ``api.json``, and the version it names."""
    response = _get(client, url, "the Bot API page")
    # Links in the result point at Telegram's page even when a local copy is read (tests, re-vendoring).
    html = response.content.decode("utf-8", errors="replace")
    spec = botapi_page.parse(html, botapi_page.PAGE_URL, read_from=url)
    return botapi_page.dumps(spec), f"{spec['version']}, {spec['release_date']}"


def fetch_all(out: Path, sources: Sources, *, timeout: float = 60) -> dict[str, str]:
    """Write ``render.json``, ``github.json`` and ``telegram.json`` into ``out``; where each came from."""
    out.mkdir(parents=True, exist_ok=True)
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        (out / "render.json").write_bytes(_get(client, sources.render, "Render's OpenAPI").content)
        github, version = github_description(client, sources.npm_registry)
        (out / "github.json").write_bytes(github)
        telegram, named = telegram_description(client, sources.telegram)
        (out / "telegram.json").write_bytes(telegram)
    return {
        "render": sources.render,
        "github": f"@octokit/openapi {version}",
        "telegram": f"{sources.telegram} ({named})",
    }
