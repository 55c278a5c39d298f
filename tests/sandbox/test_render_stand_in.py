"""The Render stand-in held once more to Render's description (issue 42, item 7): a 202 "Queued"
deploy, a Key Value's detail and options, a Blueprint sync's states."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from sandbox.render import FakeRender
from sandbox.world import git

KEY = {"Authorization": "Bearer rnd_sandboxApiKey0123456789"}


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_queued_deploy_lists_as_queued_and_waits_for_the_one_in_progress():
    """create-deploy's 202 "Queued": the deploy waits behind the one in progress (the "Wait"
    overlapping-deploy policy) instead of cancelling it, and lists as ``queued`` meanwhile."""
    with FakeRender(step=0.05) as render, httpx.Client(base_url=render.url, headers=KEY) as client:
        service = render.add_service("mindmate-prod", "main", {})
        render.fault(service, "a" * 40, build_failed=True, slow=1.0)  # builds for a second, then fails
        render.fault(service, "b" * 40, build_failed=True)
        deploys = f"/v1/services/{service.id}/deploys"
        first = client.post(deploys, json={"commitId": "a" * 40}).json()
        render.queue_creates = True
        queued = client.post(deploys, json={"commitId": "b" * 40})
        assert queued.status_code == 202 and queued.content == b""

        def statuses() -> list[str]:
            return [item["deploy"]["status"] for item in client.get(deploys).json()]

        assert statuses()[0] == "queued"
        assert wait_until(lambda: statuses() == ["build_failed", "build_failed"]), statuses()
        assert client.get(f"{deploys}/{first['id']}").json()["status"] == "build_failed"  # never cancelled


def test_a_key_value_detail_and_its_maxmemory_policy(provoked):
    """GET and PATCH of one instance answer ``keyValueDetail`` (no dashboardUrl); the PATCH applies
    ``maxmemoryPolicy`` (keyValuePATCHInput) and refuses a policy outside the enum."""
    with FakeRender() as render, httpx.Client(base_url=render.url, headers=KEY) as client:
        kv = render.add_key_value("mindmate-kv", "redis://127.0.0.1:6390/0")
        listed = client.get("/v1/key-value").json()[0]["keyValue"]
        assert listed["dashboardUrl"].endswith(kv.id)
        assert "dashboardUrl" not in client.get(f"/v1/key-value/{kv.id}").json()
        changed = client.patch(f"/v1/key-value/{kv.id}", json={"maxmemoryPolicy": "allkeys_lru"}).json()
        assert changed["options"]["maxmemoryPolicy"] == "allkeys_lru" and "dashboardUrl" not in changed
        assert client.get(f"/v1/key-value/{kv.id}").json()["options"]["maxmemoryPolicy"] == "allkeys_lru"
        refused = client.patch(f"/v1/key-value/{kv.id}", json={"maxmemoryPolicy": "allkeys-lru"})
        assert refused.status_code == 400 and "maxmemoryPolicy" in refused.json()["message"]
        assert [v.path for v in provoked()] == ["$.maxmemoryPolicy"]  # a request outside the description


def test_a_render_yaml_render_cannot_read_ends_its_sync_in_error(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "render.yaml").write_text("services: []\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "one")
    with FakeRender() as render, httpx.Client(base_url=render.url, headers=KEY) as client:
        render.repo, render.sync_seconds = repo, 0.05
        blueprint = render.link_blueprint("main")
        (repo / "render.yaml").write_text("services: [\n")  # not YAML
        git(repo, "commit", "-q", "-am", "broken")
        syncs = f"/v1/blueprints/{blueprint.id}/syncs"

        def state() -> str | None:
            found = client.get(syncs).json()
            return found[0]["sync"]["state"] if found else None

        assert wait_until(lambda: state() == "error"), state()
        sync = client.get(syncs).json()[0]["sync"]
        assert sync["commit"]["id"] == git(repo, "rev-parse", "HEAD") and "completedAt" in sync
        assert client.get("/v1/blueprints").json()[0]["blueprint"]["status"] == "error"


def test_a_deploy_of_a_commit_the_repository_lacks_fails_its_build(tmp_path):
    """Render builds by checking the commit out of the repository: a commit it no longer has (a
    rewritten branch) cannot be built. The stand-in used to run its installed bot instead, so a
    rebuild of a vanished commit went live (review 42)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "one")
    kept = git(repo, "rev-parse", "HEAD")
    with FakeRender(step=0.02) as render, httpx.Client(base_url=render.url, headers=KEY) as client:
        render.repo = repo
        service = render.add_service("mindmate-prod", "main", {})
        deploys = f"/v1/services/{service.id}/deploys"
        building = ("created", "queued", "build_in_progress")

        def built(deploy_id: str) -> str:
            return str(client.get(f"{deploys}/{deploy_id}").json()["status"])

        gone = client.post(deploys, json={"commitId": "0123456789abcdef" * 2 + "01234567"}).json()
        assert wait_until(lambda: built(gone["id"]) not in building), built(gone["id"])
        assert built(gone["id"]) == "build_failed"
        there = client.post(deploys, json={"commitId": kept}).json()
        assert wait_until(lambda: built(there["id"]) not in building), built(there["id"])
        assert built(there["id"]) != "build_failed"
