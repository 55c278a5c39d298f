"""contract-drift.yml, run by act against local "published" copies of the three descriptions.

Telegram's is its Bot API page, the copy saved in ``tests/contracts/published`` (Bot API 10.2),
which the workflow reads into ``api.json`` as it reads core.telegram.org.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_tools.contracts import SPECS
from sandbox.http import Request, Response, StandInServer

BOT_API_PAGE = Path(__file__).parents[1] / "contracts" / "published" / "bots-api-10.2.html.gz"


class Published(StandInServer):
    """Plays Render's docs site, the npm registry (metadata and tarball) and Telegram's Bot API page."""

    name = "published-descriptions"

    def __init__(self) -> None:
        super().__init__()
        self.files = {
            "/render.json": (SPECS / "render-public-api-1.json").read_bytes(),
            "/bots/api": gzip.decompress(BOT_API_PAGE.read_bytes()),
        }
        self.github = (SPECS / "github-api.json").read_bytes()

    def tarball(self) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            info = tarfile.TarInfo("package/generated/api.github.com.json")
            info.size = len(self.github)
            archive.addfile(info, io.BytesIO(self.github))
        return buffer.getvalue()

    def handle(self, request: Request) -> Response:
        if request.path == "/@octokit/openapi/latest":
            meta = {"version": "99.0.0", "dist": {"tarball": f"{self.url}/openapi-99.0.0.tgz"}}
            return 200, json.dumps(meta).encode(), {"Content-Type": "application/json"}
        if request.path == "/openapi-99.0.0.tgz":
            return 200, self.tarball(), {"Content-Type": "application/octet-stream"}
        if request.path == "/bots/api":
            return 200, self.files[request.path], {"Content-Type": "text/html; charset=utf-8"}
        if request.path in self.files:
            return 200, self.files[request.path], {"Content-Type": "application/json"}
        return 404, b"", {}


@pytest.fixture
def published() -> Iterator[Published]:
    with Published() as server:
        yield server


def sources(published: Published) -> dict[str, str]:
    return {
        "RENDER_SPEC_URL": f"{published.url}/render.json",
        "NPM_REGISTRY_URL": published.url,
        "TELEGRAM_SPEC_URL": f"{published.url}/bots/api",
    }


def test_unchanged_descriptions_pass(act, published):
    run = act.run("contract-drift.yml", "workflow_dispatch", secrets={}, env=sources(published))
    assert run.ok, run.tail()
    for provider in ("render", "github", "telegram"):
        assert f"✓ {provider}: no change in the" in run.log
    assert "github: @octokit/openapi 99.0.0" in run.log
    assert "(Bot API 10.2, July 14, 2026)" in run.log  # read from the page, not from a generator's copy


def test_a_changed_field_in_an_operation_we_use_fails_the_run_naming_it(act, published):
    spec = json.loads(published.files["/render.json"])
    spec["components"]["schemas"]["deploy"]["properties"]["finishedAt"]["nullable"] = True
    published.files["/render.json"] = json.dumps(spec).encode()
    github = json.loads(published.github)
    github["components"]["schemas"]["basic-error"]["required"] = ["message", "status"]
    published.github = json.dumps(github).encode()

    run = act.run("contract-drift.yml", "workflow_dispatch", secrets={}, env=sources(published))
    assert not run.ok
    assert "render's published description changed in GET /services/{serviceId}/deploys" in run.log
    assert "properties.finishedAt.nullable" in run.log
    assert "github's published description changed in" in run.log
    assert "✓ telegram: no change in the" in run.log  # the other providers are still compared


def test_a_new_field_on_telegrams_page_fails_the_run_naming_it(act, published):
    """The page as Telegram would publish a new optional sendMessage parameter."""
    page = published.files["/bots/api"].decode("utf-8")
    section = page.index('name="sendmessage"')
    body = page.index("<tbody>", section) + len("<tbody>")
    row = "\n<tr>\n<td>silent_until</td>\n<td>Integer</td>\n<td>Optional</td>\n<td>Unix time.</td>\n</tr>"
    published.files["/bots/api"] = (page[:body] + row + page[body:]).encode("utf-8")

    run = act.run("contract-drift.yml", "workflow_dispatch", secrets={}, env=sources(published))
    assert not run.ok
    assert "telegram's published description changed in sendMessage" in run.log
    assert "fields.silent_until.types" in run.log
    assert "✓ render: no change in the" in run.log
