"""The contract layer can fail: stand-in answers and client requests that break the published
descriptions are caught, named by operation and JSON path."""

from __future__ import annotations

import time

import httpx
import pytest

from ci_tools.clients.render import RenderAPI
from sandbox.contract import LEDGER, TELEGRAM, Answer, value_errors
from sandbox.render import FakeRender
from sandbox.telegram import FakeTelegram


@pytest.fixture
def render() -> FakeRender:
    with FakeRender(step=0.01) as server:
        yield server


def quiet_service(render: FakeRender):
    """A service whose deploys never start a bot: these tests are about the answers only."""
    service = render.add_service("mindmate-prod", "main", {})
    for commit in ("a" * 40, "b" * 40, "c" * 40):
        render.fault(service, commit, build_failed=True)
    return service


def test_a_stand_in_deploy_with_finished_at_null_is_a_violation(render, provoked):
    """Mutation: the stand-in's old answer (finishedAt: null, a non-nullable date-time)."""
    service = quiet_service(render)
    with RenderAPI(render.api_key, service.id, deadline=time.monotonic() + 10, base_url=render.url) as api:
        created = api.create_deploy("a" * 40)
        assert created is not None
        assert provoked() == []  # the stand-in as it is: no finishedAt until it finishes
        while api.deploy(created.id).status != "build_failed":  # finished: nothing overwrites it
            time.sleep(0.01)
        service.deploys[0]["finishedAt"] = None
        api.deploy(created.id)
    found = {(v.operation, v.side, v.path) for v in provoked()}
    assert ("GET /services/{serviceId}/deploys/{deployId}", "answer", "$.finishedAt") in found


def test_a_client_that_sends_clear_cache_yes_is_a_violation(render, provoked):
    """Mutation: a client sending a value the description's enum does not allow."""
    service = quiet_service(render)
    response = httpx.post(
        f"{render.url}/v1/services/{service.id}/deploys",
        json={"commitId": "b" * 40, "clearCache": "yes"},
        headers={"Authorization": f"Bearer {render.api_key}"},
    )
    assert response.status_code == 201  # the stand-in served it; the layer still objects
    [violation] = provoked()
    assert (violation.operation, violation.side, violation.path) == (
        "POST /services/{serviceId}/deploys",
        "request",
        "$.clearCache",
    )
    assert "clear" in violation.message and "do_not_clear" in violation.message


def test_an_undocumented_status_and_an_unknown_path_are_violations(render, provoked):
    service = quiet_service(render)
    headers = {"Authorization": f"Bearer {render.api_key}"}
    httpx.get(f"{render.url}/v1/services/{service.id}/frobnicate", headers=headers)
    [violation] = provoked()
    assert violation.operation == f"GET /services/{service.id}/frobnicate"
    assert violation.message == "no such operation"


def test_a_deliberate_fault_is_sent_but_not_validated(render, provoked):
    service = quiet_service(render)
    render.after_create.append("502")
    before = LEDGER.snapshot()["calls"].get("render", 0)
    response = httpx.post(
        f"{render.url}/v1/services/{service.id}/deploys",
        json={"commitId": "c" * 40},
        headers={"Authorization": f"Bearer {render.api_key}"},
    )
    assert response.status_code == 502 and "X-Sandbox-Fault" not in response.headers
    assert provoked() == [] and LEDGER.snapshot()["calls"].get("render", 0) == before


def test_bot_api_parameters_unknown_and_missing(telegram: FakeTelegram, provoked):
    bot = telegram.add_bot("some_test_bot")
    httpx.post(f"{telegram.url}/bot{bot.token}/sendMessage", data={"chat_id": "1", "txt": "hi"})
    found = {(v.operation, v.side, v.path, v.message) for v in provoked()}
    assert ("sendMessage", "request", "txt", "sendMessage has no parameter 'txt'") in found
    assert ("sendMessage", "request", "text", "required by sendMessage, missing") in found


def test_bot_api_results_are_held_to_their_types():
    user = {"id": 1, "is_bot": True, "first_name": "MindMate"}
    assert value_errors(["User"], user, "$") == []
    assert value_errors(["User"], {**user, "nickname": "x"}, "$") == [("$.nickname", "User has no field 'nickname'")]
    assert value_errors(["User"], {"id": "1", "is_bot": True}, "$") == [
        ("$.id", "expected Integer, got '1'"),
        ("$.first_name", "required by User, missing"),
    ]
    envelope = b'{"ok": true, "result": {"id": 1, "is_bot": true}}'
    [violation] = TELEGRAM.check("POST", "/bot1:x/getMe", {}, b"", Answer(200, {}, envelope)) or []
    assert (violation.side, violation.path) == ("answer", "$.result.first_name")


def test_an_error_envelope_must_match_its_http_status():
    body = b'{"ok": false, "error_code": 400, "description": "Bad Request", "extra": 1}'
    found = TELEGRAM.check("POST", "/bot1:x/getMe", {}, b"", Answer(401, {}, body)) or []
    assert {(v.path, v.message) for v in found} == {
        ("$.extra", "not in the error envelope"),
        ("$.error_code", "400 but HTTP 401"),
    }
