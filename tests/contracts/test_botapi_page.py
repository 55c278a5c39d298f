"""Telegram's Bot API page, read as the drift watch reads it (saved copies in ``published/``).

``bots-api-10.1.html.gz`` and ``bots-api-10.2.html.gz`` are Telegram's page as
``Bibo-Joshi/telegram-bot-api-changes`` saved it on 2026-06-18 and 2026-07-20;
``telegram-bot-api-spec-10.1.json.gz`` is the generator's ``api.json`` made from the first
(the copy vendored until Bot API 10.2). Provenance: ``ci_tools/contracts/specs/README.md``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ci_tools.__main__ import main
from ci_tools.contracts import SPECS, botapi_page, diff, fetch
from ci_tools.errors import RemoteError
from sandbox.http import Request, Response, StandInServer

PUBLISHED = Path(__file__).parent / "published"


def saved(name: str) -> str:
    return gzip.decompress((PUBLISHED / name).read_bytes()).decode("utf-8")


@pytest.fixture(scope="module")
def page_101() -> dict[str, Any]:
    return botapi_page.parse(saved("bots-api-10.1.html.gz"))


@pytest.fixture(scope="module")
def page_102() -> dict[str, Any]:
    return botapi_page.parse(saved("bots-api-10.2.html.gz"))


@pytest.fixture(scope="module")
def generator_101() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(saved("telegram-bot-api-spec-10.1.json.gz"))
    return data


def test_the_10_1_page_reads_as_the_generator_read_it(page_101, generator_101):
    """Every method and type, field, ``returns``, ``subtypes`` and even the prose: identical."""
    assert (page_101["version"], page_101["release_date"]) == ("Bot API 10.1", "June 11, 2026")
    assert page_101 == generator_101


def test_the_vendored_copy_is_the_10_2_page_as_fetch_writes_it(page_102):
    assert (page_102["version"], page_102["release_date"]) == ("Bot API 10.2", "July 14, 2026")
    assert botapi_page.dumps(page_102) == (SPECS / "telegram-api.json").read_bytes()


def test_what_changed_since_10_1_in_what_we_use(generator_101, page_102):
    lines = {c.line() for c in diff.changes("telegram", generator_101, page_102)}
    assert {
        'sendMessage: fields.receiver_user_id.types: (absent) → ["Integer"]',
        "sendMessage: fields.receiver_user_id.required: (absent) → false",
        'sendMessage: fields.callback_query_id.types: (absent) → ["String"]',
        'type Update: fields.subscription.types: (absent) → ["BotSubscriptionUpdated"]',
        "type Update: fields.subscription.required: (absent) → false",
        "type ReplyParameters: fields.message_id.required: true → false",
        'type BotSubscriptionUpdated: fields.user.types: (absent) → ["User"]',
    } <= lines
    # nothing we use lost a field or a method
    assert not [line for line in lines if line.endswith("→ (absent)")]


def test_the_command_names_the_10_2_changes_against_the_10_1_copy(tmp_path, capsys, page_102):
    old, new = tmp_path / "vendored-10.1.json", tmp_path / "published.json"
    old.write_text(saved("telegram-bot-api-spec-10.1.json.gz"))
    new.write_bytes(botapi_page.dumps(page_102))
    assert main(["contracts", "diff", "telegram", str(old), str(new)]) == 5
    captured = capsys.readouterr()
    assert "receiver_user_id" in captured.out and "BotSubscriptionUpdated" in captured.out
    assert captured.err.strip().startswith(
        "ci-tools: verification: telegram's published description changed in sendMessage, "
    )
    assert "type Update" in captured.err


def test_type_names_as_the_page_spells_them():
    assert botapi_page.type_names("Integer or String") == ["Integer", "String"]
    assert botapi_page.type_names("Array of InputMediaAudio, InputMediaPhoto and InputMediaVideo") == [
        "Array of InputMediaAudio",
        "Array of InputMediaPhoto",
        "Array of InputMediaVideo",
    ]
    assert botapi_page.type_names("True") == ["Boolean"]
    assert botapi_page.type_names("Float number") == ["Float"]


class Page(StandInServer):
    """Plays core.telegram.org: the page, whatever it is made to hold."""

    name = "bot-api-page"

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body

    def handle(self, request: Request) -> Response:
        if request.path == "/bots/api":
            return 200, self.body, {"Content-Type": "text/html; charset=utf-8"}
        return 404, b"", {}


@pytest.fixture
def page_server() -> Iterator[Page]:
    with Page(saved("bots-api-10.2.html.gz").encode("utf-8")) as server:
        yield server


def test_fetch_reads_the_page_into_api_json(page_server):
    with httpx.Client() as client:
        body, named = fetch.telegram_description(client, f"{page_server.url}/bots/api")
    assert named == "Bot API 10.2, July 14, 2026"
    spec = json.loads(body)
    # links point at Telegram's page, not at the copy that was read
    assert spec["methods"]["sendMessage"]["href"] == "https://core.telegram.org/bots/api#sendmessage"


def test_a_page_that_is_not_the_reference_is_one_clear_error(page_server):
    page_server.body = b"<html><body><h1>Telegram</h1><p>Moved.</p></body></html>"
    with httpx.Client() as client, pytest.raises(RemoteError) as raised:
        fetch.telegram_description(client, f"{page_server.url}/bots/api")
    line = raised.value.one_line()
    assert line.startswith(f"{page_server.url}/bots/api is not the Bot API reference")  # the address read
    assert "\n" not in line
    assert "botapi_page.py" in line
