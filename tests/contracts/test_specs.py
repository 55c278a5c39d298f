"""The vendored descriptions are what their README says, and hold every operation we use."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from ci_tools.contracts import SPECS, openapi
from ci_tools.contracts.used import GITHUB, RENDER, TELEGRAM

FILES = ("render-public-api-1.json", "github-api.json", "telegram-api.json")


@pytest.mark.parametrize("name", FILES)
def test_each_file_matches_the_sha256_its_provenance_names(name):
    readme = (SPECS / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}`"))
    recorded = re.findall(r"`([0-9a-f]{64})`", row)[-1]
    assert hashlib.sha256((SPECS / name).read_bytes()).hexdigest() == recorded


@pytest.mark.parametrize(("name", "operations"), [("render-public-api-1.json", RENDER), ("github-api.json", GITHUB)])
def test_every_operation_we_use_is_described(name, operations):
    spec = openapi.load(SPECS / name)
    assert [op for op in operations if openapi.operation(spec, op) is None] == []


def test_every_bot_api_method_we_use_is_described():
    methods = json.loads((SPECS / "telegram-api.json").read_text())["methods"]
    assert [m for m in TELEGRAM if m not in methods] == []
