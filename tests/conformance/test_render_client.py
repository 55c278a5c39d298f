"""Render's own Python client, ``render.public_api`` (the ``render`` SDK on PyPI), against the
Render stand-in.

Why this client: it is generated from Render's published OpenAPI description by an independent
generator (openapi-python-client) and kept by Render with each release, so it reads answers as
Render means them, from a newer copy of the description than the one vendored here. Generating
one from the vendored copy at test time was tried and dropped: openapi-python-client 0.29 cannot
follow the description's ``$ref``s into ``#/paths/…`` and leaves out list-blueprint-syncs and the
answers of list-events and retrieve-key-value, three operations we use. Each model's
``from_dict`` raises on a missing required field or an unknown enum value, and
``raise_on_unexpected_status`` refuses a status the description does not list.

Every operation ci_tools/clients/render.py uses (ci_tools/contracts/used.py), and the error
paths the pipeline relies on: 401, 404, 400, 429 with Retry-After, 202 with no body.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from render.public_api.api.blueprints import list_blueprint_syncs, list_blueprints
from render.public_api.api.deploys import cancel_deploy, create_deploy, list_deploys, retrieve_deploy, rollback_deploy
from render.public_api.api.key_value import (
    list_key_value,
    retrieve_key_value,
    retrieve_key_value_connection_info,
    update_key_value,
)
from render.public_api.api.services import (
    delete_env_var,
    get_env_vars_for_service,
    list_events,
    list_services,
    retrieve_env_var,
    retrieve_service,
    update_env_var,
    update_env_vars_for_service,
)
from render.public_api.client import AuthenticatedClient
from render.public_api.models import (
    CidrBlockAndDescription,
    CreateDeployBody,
    Deploy,
    EnvVarKeyValue,
    EnvVarValue,
    Error,
    KeyValuePATCHInput,
    RollbackDeployBody,
)
from render.public_api.models.deploy_status import DeployStatus

from sandbox.ports import free_port
from sandbox.render import FakeRender, FakeService

KEY = "rnd_sandboxApiKey0123456789"


@pytest.fixture(scope="module")
def render() -> Iterator[FakeRender]:
    # A deploy that boots nothing fails its health checks within half a second (Render: 15 minutes).
    with FakeRender(step=0.02, health_timeout=0.5) as server:
        yield server


@pytest.fixture
def api(render: FakeRender) -> Iterator[AuthenticatedClient]:
    with AuthenticatedClient(
        base_url=f"{render.url}/v1", token=KEY, raise_on_unexpected_status=True, timeout=httpx.Timeout(10)
    ) as client:
        yield client


@pytest.fixture
def service(render: FakeRender, request: pytest.FixtureRequest) -> FakeService:
    return render.add_service(f"conf-{request.node.name[5:17].replace('_', '-')}", "main", {"A": "1"})


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def live_deploy(render: FakeRender, service: FakeService, commit: str) -> str:
    """A deploy that went live earlier (seeded history, as a world starts with one)."""
    found = {
        "id": f"dep-conformance{len(service.deploys):05d}",
        "commit": {"id": commit, "message": "earlier", "createdAt": "2026-01-05T09:00:00Z"},
        "status": "live",
        "trigger": "api",
        "createdAt": "2026-01-05T09:00:00Z",
        "updatedAt": "2026-01-05T09:05:00Z",
        "finishedAt": "2026-01-05T09:05:00Z",
        "_created": 0.0,
    }
    with render.lock:
        service.deploys.insert(0, found)
    return str(found["id"])


def test_services(api, service):
    found = list_services.sync(client=api, name=[service.name])
    assert [s.service.id for s in found] == [service.id]
    read = retrieve_service.sync(service.id, client=api)
    assert read.name == service.name and read.branch == "main"


def test_env_vars(api, service):
    assert update_env_var.sync(service.id, "A", client=api, body=EnvVarValue(value="2")).value == "2"
    assert retrieve_env_var.sync(service.id, "A", client=api).value == "2"
    listed = update_env_vars_for_service.sync(
        service.id, client=api, body=[EnvVarKeyValue(key="A", value="3"), EnvVarKeyValue(key="B", value="4")]
    )
    assert {e.env_var.key: e.env_var.value for e in listed} == {"A": "3", "B": "4"}
    assert {e.env_var.key for e in get_env_vars_for_service.sync(service.id, client=api)} == {"A", "B"}
    assert delete_env_var.sync_detailed(service.id, "B", client=api).status_code == 204
    assert isinstance(retrieve_env_var.sync(service.id, "B", client=api), Error)  # 404, Render's error


def test_deploy_read_cancel_and_events(api, render, service):
    commit = "d" * 40
    render.fault(service, commit, slow=30.0)  # a build that takes long enough to cancel
    created = create_deploy.sync(service.id, client=api, body=CreateDeployBody(commit_id=commit))
    assert isinstance(created, Deploy) and created.commit.id == commit
    assert retrieve_deploy.sync(service.id, created.id, client=api).id == created.id
    assert list_deploys.sync(service.id, client=api, limit=5)[0].deploy.id == created.id
    canceled = cancel_deploy.sync(service.id, created.id, client=api)
    assert canceled.status == DeployStatus.CANCELED
    events = list_events.sync(service.id, client=api)
    assert events and {e.event.type_.value for e in events} >= {"deploy_started"}


def test_a_queued_deploy_is_202_with_no_body(api, render, service):
    render.queue_creates = True
    try:
        queued = create_deploy.sync_detailed(service.id, client=api, body=CreateDeployBody(commit_id="e" * 40))
    finally:
        render.queue_creates = False
    assert queued.status_code == 202 and queued.content == b"" and queued.parsed is None


def test_rollback(api, render, service):
    target = live_deploy(render, service, "f" * 40)
    rolled = rollback_deploy.sync(service.id, client=api, body=RollbackDeployBody(deploy_id=target))
    assert isinstance(rolled, Deploy) and rolled.commit.id == "f" * 40 and rolled.trigger.value == "rollback"
    assert wait_until(lambda: retrieve_deploy.sync(service.id, rolled.id, client=api).status.value == "update_failed")


def test_key_value(api, render):
    kv = render.add_key_value("conformance-kv", f"redis://127.0.0.1:{free_port()}/0")
    assert [k.key_value.id for k in list_key_value.sync(client=api, name=["conformance-kv"])] == [kv.id]
    detail = retrieve_key_value.sync(kv.id, client=api)
    assert detail.name == "conformance-kv" and detail.options.maxmemory_policy == "noeviction"
    info = retrieve_key_value_connection_info.sync(kv.id, client=api)
    assert info.external_connection_string.startswith("redis://")
    blocks = [CidrBlockAndDescription(cidr_block="203.0.113.7/32", description="runner")]
    changed = update_key_value.sync(kv.id, client=api, body=KeyValuePATCHInput(ip_allow_list=blocks))
    assert [(b.cidr_block, b.description) for b in changed.ip_allow_list] == [("203.0.113.7/32", "runner")]
    closed = update_key_value.sync(kv.id, client=api, body=KeyValuePATCHInput(ip_allow_list=[]))
    assert closed.ip_allow_list == []


def test_blueprints_and_syncs(api, render):
    blueprint = render.link_blueprint("main", auto_sync=False)
    blueprint.syncs.insert(
        0,
        {
            "id": "exe-conformance000000001",
            "commit": {"id": "a" * 40},
            "state": "success",
            "startedAt": "2026-01-05T09:00:00Z",
        },
    )
    assert blueprint.id in [b.blueprint.id for b in list_blueprints.sync(client=api)]
    syncs = list_blueprint_syncs.sync(blueprint.id, client=api)
    assert [(s.sync.id, s.sync.state.value) for s in syncs] == [("exe-conformance000000001", "success")]


# -- the error paths ----------------------------------------------------------------------------


def test_a_wrong_key_is_401(render):
    with AuthenticatedClient(base_url=f"{render.url}/v1", token="rnd_wrong", raise_on_unexpected_status=True) as bad:
        answer = list_services.sync_detailed(client=bad)
    assert answer.status_code == 401 and isinstance(answer.parsed, Error)


def test_an_unknown_service_is_404(api):
    answer = retrieve_service.sync_detailed("srv-nosuchservice0001", client=api)
    assert answer.status_code == 404 and isinstance(answer.parsed, Error) and answer.parsed.message


def test_a_rollback_to_a_deploy_that_never_went_live_is_400(api, render, service):
    render.fault(service, "9" * 40, build_failed=True)
    failed = create_deploy.sync(service.id, client=api, body=CreateDeployBody(commit_id="9" * 40))
    assert wait_until(lambda: retrieve_deploy.sync(service.id, failed.id, client=api).status.value == "build_failed")
    answer = rollback_deploy.sync_detailed(service.id, client=api, body=RollbackDeployBody(deploy_id=failed.id))
    assert answer.status_code == 400 and isinstance(answer.parsed, Error)


def test_a_rate_limit_is_429_with_retry_after(api, render, service):
    render.rate_limit(calls=1, retry_after=7)
    answer: Any = retrieve_service.sync_detailed(service.id, client=api)
    assert answer.status_code == 429 and isinstance(answer.parsed, Error)
    assert answer.headers["Retry-After"] == "7" and answer.headers["Ratelimit-Reset"] == "7"
    assert retrieve_service.sync(service.id, client=api).id == service.id  # the next call goes through
