"""The stand-ins read a request body as RFC 9112 §6.3 delimits it: chunked as well as Content-Length.

Clients we did not write stream bodies chunked (``gh api --input -``, Node streams, httpx with an
iterator). A stand-in that read only Content-Length answered 2xx as if the body were empty and
then parsed the chunks as a second request (issue 42, item 1).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx

from sandbox.github import FakeGitHub
from sandbox.ports import free_port
from sandbox.render import FakeRender

RENDER_KEY = {"Authorization": "Bearer rnd_sandboxApiKey0123456789"}
GITHUB_TOKEN = {"Authorization": "Bearer ghs_sandboxToken0123456789"}


def chunked(data: bytes) -> Iterator[bytes]:
    """httpx sends an iterator's pieces as chunks (Transfer-Encoding: chunked, no Content-Length)."""
    yield data[:3]
    yield data[3:]


def test_render_stores_a_chunked_env_var_and_keeps_the_connection_framed():
    with FakeRender() as render, httpx.Client(base_url=render.url, headers=RENDER_KEY) as client:
        service = render.add_service("mindmate-prod", "main", {"A": "1"})
        path = f"/v1/services/{service.id}/env-vars/A"
        sent = client.put(path, content=chunked(b'{"value":"2"}'), headers={"Content-Type": "application/json"})
        assert sent.request.headers["Transfer-Encoding"] == "chunked"
        assert sent.json() == {"key": "A", "value": "2"}
        assert service.env["A"] == "2"
        assert client.get(path).json() == {"key": "A", "value": "2"}  # the same connection, still in step


def test_render_applies_a_chunked_allow_list():
    with FakeRender() as render, httpx.Client(base_url=render.url, headers=RENDER_KEY) as client:
        kv = render.add_key_value("mindmate-kv", f"redis://127.0.0.1:{free_port()}/0")
        body = json.dumps({"ipAllowList": [{"cidrBlock": "203.0.113.7/32", "description": "runner"}]}).encode()
        answer = client.patch(
            f"/v1/key-value/{kv.id}", content=chunked(body), headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 200
        assert kv.ip_allow_list == [{"cidrBlock": "203.0.113.7/32", "description": "runner"}]


def test_github_keeps_a_chunked_environments_reviewers_and_branch_policy():
    with FakeGitHub() as github, httpx.Client(base_url=github.url, headers=GITHUB_TOKEN) as client:
        body = {
            "reviewers": [{"type": "User", "id": 5001}],
            "deployment_branch_policy": {"protected_branches": False, "custom_branch_policies": True},
        }
        answer = client.put(
            "/repos/mindmate/mindmate-release/environments/production",
            content=chunked(json.dumps(body).encode()),
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 200
        stored = github.environments["production"]
        assert [rule["type"] for rule in stored["protection_rules"]] == ["required_reviewers", "branch_policy"]
        assert stored["deployment_branch_policy"] == body["deployment_branch_policy"]


def test_telegram_reads_chunk_extensions_and_trailers_then_the_next_request(telegram):
    """Raw bytes, so that an extension, a trailer and a second pipelined request are all there."""
    bot = telegram.add_bot("some_test_bot")
    body = b'{"url": "https://x.example/hook"}'
    first = (
        f"POST /bot{bot.token}/setWebhook HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    first += b"%x;name=value\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: yes\r\n\r\n" % (5, body[:5], len(body) - 5, body[5:])
    second = f"GET /bot{bot.token}/getWebhookInfo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
    host, port = telegram.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(first + second)
        received = b""
        while chunk := raw.recv(65536):
            received += chunk
    answers = received.split(b"HTTP/1.1 ")[1:]
    assert [a.split(b" ", 1)[0] for a in answers] == [b"200", b"200"]
    assert b'"description": "Webhook was set"' in answers[0]
    assert b'"url": "https://x.example/hook"' in answers[1]
    assert bot.webhook_url == "https://x.example/hook"


def test_a_body_that_cannot_be_framed_is_400_and_the_connection_closed(telegram):
    bot = telegram.add_bot("some_test_bot")
    request = (
        f"POST /bot{bot.token}/getMe HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n"
    ).encode()
    host, port = telegram.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(request)
        received = b""
        while chunk := raw.recv(65536):  # the server closes: the loop ends without a timeout
            received += chunk
    assert received.startswith(b"HTTP/1.1 400 ")
    assert b"invalid chunk size" in received


def test_chunked_wins_over_content_length_and_the_connection_closes(telegram):
    """RFC 9112 §6.1: with both, Transfer-Encoding frames the body and the server closes the
    connection after answering, as the two framings may disagree on where the request ends."""
    bot = telegram.add_bot("some_test_bot")
    body = b'{"url": "https://x.example/hook"}'
    framed = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    request = (
        f"POST /bot{bot.token}/setWebhook HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Transfer-Encoding: chunked\r\nContent-Length: {len(framed)}\r\n\r\n"
    ).encode() + framed
    host, port = telegram.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(request)
        received = b""
        while chunk := raw.recv(65536):  # ends only because the server closes
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 ") and b"Webhook was set" in received
