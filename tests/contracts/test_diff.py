"""``ci-tools contracts diff``: what changed in the operations we use, and nothing else."""

from __future__ import annotations

import copy
import json

import pytest

from ci_tools.__main__ import main
from ci_tools.contracts import SPECS, diff, openapi


@pytest.fixture(scope="module")
def render() -> dict:
    return openapi.load(SPECS / "render-public-api-1.json")


@pytest.fixture(scope="module")
def telegram() -> dict:
    return openapi.load(SPECS / "telegram-api.json")


def test_the_same_description_has_no_changes(render, telegram):
    assert diff.changes("render", render, render) == []
    assert diff.changes("telegram", telegram, telegram) == []


def test_a_changed_field_in_a_schema_we_use_is_named_with_before_and_after(render):
    new = copy.deepcopy(render)
    new["components"]["schemas"]["deploy"]["properties"]["finishedAt"]["nullable"] = True
    found = diff.changes("render", render, new)
    lines = {c.line() for c in found}
    field = "responses.200.content.application/json.schema.properties.finishedAt.nullable"
    assert f"GET /services/{{serviceId}}/deploys/{{deployId}}: {field}: (absent) → true" in lines
    # every operation whose answer holds a deploy sees it; nothing else does
    assert {c.operation for c in found} == {
        "GET /services/{serviceId}/deploys",
        "POST /services/{serviceId}/deploys",
        "GET /services/{serviceId}/deploys/{deployId}",
        "POST /services/{serviceId}/deploys/{deployId}/cancel",
        "POST /services/{serviceId}/rollback",
    }


def test_prose_and_operations_we_do_not_use_are_not_changes(render):
    new = copy.deepcopy(render)
    new["components"]["schemas"]["deploy"]["properties"]["commit"]["description"] = "reworded"
    new["paths"]["/blueprints"]["get"]["responses"]["200"]["description"] = "changed"
    del new["paths"]["/disks"]
    assert diff.changes("render", render, new) == []


def test_a_removed_operation_and_a_renamed_enum_value(render):
    new = copy.deepcopy(render)
    del new["paths"]["/services/{serviceId}/rollback"]["post"]
    new["components"]["schemas"]["deployStatus"]["enum"].remove("deactivated")
    lines = {c.line() for c in diff.changes("render", render, new)}
    assert "POST /services/{serviceId}/rollback: (operation): present → (absent)" in lines
    assert any(
        line.startswith("GET /services/{serviceId}/deploys/{deployId}: ") and "deactivated" in line for line in lines
    )


def test_telegram_methods_and_the_types_they_reach(telegram):
    new = copy.deepcopy(telegram)
    text = next(f for f in new["methods"]["sendMessage"]["fields"] if f["name"] == "text")
    text["required"] = False
    new["types"]["WebhookInfo"]["fields"].append({"name": "paused", "types": ["Boolean"], "required": True})
    new["types"]["InputChecklist"]["fields"] = []  # a type neither our methods nor Update reach
    lines = {c.line() for c in diff.changes("telegram", telegram, new)}
    assert lines == {
        "sendMessage: fields.text.required: true → false",
        'type WebhookInfo: fields.paused.types: (absent) → ["Boolean"]',
        "type WebhookInfo: fields.paused.required: (absent) → true",
    }


def test_the_command_fails_naming_the_change_and_passes_on_equal_copies(tmp_path, capsys):
    old = SPECS / "telegram-api.json"
    new = tmp_path / "api.json"
    data = json.loads(old.read_text())
    data["types"]["User"]["fields"][0]["types"] = ["String"]
    new.write_text(json.dumps(data))
    assert main(["contracts", "diff", "telegram", str(old), str(new)]) == 5
    captured = capsys.readouterr()
    assert "fields.id.types" in captured.out and '["String"]' in captured.out
    assert captured.err.strip().startswith(
        "ci-tools: verification: telegram's published description changed in type User"
    )
    assert main(["contracts", "diff", "telegram", str(old), str(old)]) == 0


def test_bad_input_is_one_line(tmp_path, capsys):
    missing = tmp_path / "nope.json"
    assert main(["contracts", "diff", "render", str(missing), str(missing)]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"ci-tools: bad input: no file {missing} — name an API description that exists"
    )


def test_cut_keeps_the_operations_and_what_they_reach(tmp_path):
    full = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/users/{username}": {
                "get": {
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/user"},
                                    "examples": {"x": {}},
                                }
                            }
                        }
                    }
                }
            },
            "/gists": {"get": {"responses": {"200": {"description": "unused"}}}},
        },
        "components": {
            "schemas": {
                "user": {"type": "object", "properties": {"plan": {"$ref": "#/components/schemas/plan"}}},
                "plan": {"type": "object", "example": {"name": "pro"}},
                "gist": {"type": "object"},
            }
        },
    }
    cut = openapi.subset(full, ("GET /users/{username}",))
    assert list(cut["paths"]) == ["/users/{username}"]
    assert set(cut["components"]["schemas"]) == {"user", "plan"}
    assert "example" not in json.dumps(cut)
