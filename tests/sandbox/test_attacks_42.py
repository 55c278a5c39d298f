"""Review 42's attacks on the stand-ins' HTTP framing (sandbox/http.py, sandbox/forms.py).

Each test speaks raw bytes to a real stand-in on loopback. The socket timeout is a bound, not a
synchronisation: a stand-in that answers (or closes) does so in milliseconds; one that never
does fails the test instead of hanging it forever.
"""

from __future__ import annotations

import socket

import pytest

from sandbox.telegram import FakeTelegram

BOUND = 15.0  # seconds a test waits for an answer or a close before it calls the stand-in hung


def exchange(server: FakeTelegram, raw: bytes, *, pieces: list[bytes] | None = None) -> bytes:
    """Send ``raw`` (or ``pieces``, each its own TCP write), then read until the server closes.

    Raises ``TimeoutError`` when the stand-in neither answers-and-closes nor closes within BOUND."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=BOUND) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in pieces or [raw]:
            conn.sendall(piece)
        received = b""
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return received


def status_line(received: bytes) -> bytes:
    return received.split(b"\r\n", 1)[0]


def _post(token: str, method: str, headers: str) -> bytes:
    return f"POST /bot{token}/{method} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}\r\n".encode()


def test_a_content_length_of_a_latin1_digit_is_400_not_a_dropped_connection(telegram):
    """``str.isdigit`` is true for '²' (0xB2, which http.client decodes as latin-1) but ``int``
    refuses it: the ValueError escapes read_body and the connection is dropped with no answer."""
    bot = telegram.add_bot("some_test_bot")
    raw = _post(bot.token, "getMe", "Content-Length: \xb2\r\n")
    received = exchange(telegram, raw.replace(b"\xc2\xb2", b"\xb2"))
    assert status_line(received).startswith(b"HTTP/1.1 400 "), received[:200]


def test_a_huge_chunk_size_is_refused_not_a_dropped_connection(telegram):
    """The chunk-size pattern takes 16 hex digits; ``rfile.read`` of ~2**60 bytes raises
    MemoryError (or OverflowError past sys.maxsize) inside the handler: no answer at all."""
    bot = telegram.add_bot("some_test_bot")
    raw = _post(bot.token, "getMe", "Transfer-Encoding: chunked\r\n") + b"fffffffffffffff\r\nabc\r\n0\r\n\r\n"
    received = exchange(telegram, raw)
    assert status_line(received)[9:12] in (b"400", b"413"), received[:200]


def test_a_chunk_size_past_sys_maxsize_is_refused_not_a_dropped_connection(telegram):
    bot = telegram.add_bot("some_test_bot")
    raw = _post(bot.token, "getMe", "Transfer-Encoding: chunked\r\n") + b"ffffffffffffffff\r\nabc\r\n0\r\n\r\n"
    received = exchange(telegram, raw)
    assert status_line(received)[9:12] in (b"400", b"413"), received[:200]


def test_a_huge_content_length_is_refused_not_a_dropped_connection(telegram):
    bot = telegram.add_bot("some_test_bot")
    raw = _post(bot.token, "getMe", f"Content-Length: {10**15}\r\n") + b"{}"
    received = exchange(telegram, raw)
    assert status_line(received)[9:12] in (b"400", b"413"), received[:200]


def test_a_second_transfer_encoding_field_is_not_ignored(telegram):
    """RFC 9110 §5.3: two Transfer-Encoding fields are one list, ``chunked, gzip``, whose final
    coding is not chunked (RFC 9112 §6.3 (4): 400). ``headers.get`` reads only the first field,
    so the stand-in frames the body as chunked: the classic TE.TE smuggling disagreement."""
    bot = telegram.add_bot("some_test_bot")
    raw = _post(bot.token, "getMe", "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n") + b"0\r\n\r\n"
    received = exchange(telegram, raw)
    assert status_line(received)[9:12] in (b"400", b"501"), received[:200]


def test_two_different_content_lengths_are_400(telegram):
    """RFC 9112 §6.3 (5): differing Content-Length values are an unrecoverable framing error; the
    stand-in takes the first and parses the rest as the next request."""
    bot = telegram.add_bot("some_test_bot")
    raw = _post(bot.token, "getMe", "Content-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 9\r\n")
    raw += b"{}"
    received = exchange(telegram, raw)
    assert status_line(received).startswith(b"HTTP/1.1 400 "), received[:200]


def test_a_form_body_that_is_not_utf8_is_answered(telegram):
    """``parse_qsl(self.body.decode())`` raises UnicodeDecodeError in the handler: the client gets
    no answer at all where api.telegram.org answers a 400 (or takes the bytes)."""
    bot = telegram.add_bot("some_test_bot")
    body = b"chat_id=1&text=\xff\xfe"
    raw = _post(
        bot.token, "sendMessage", f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
    )
    received = exchange(telegram, raw + body)
    assert received.startswith(b"HTTP/1.1 "), "no answer: the handler raised and the connection was dropped"


def test_a_json_body_that_is_not_utf8_is_answered(telegram):
    bot = telegram.add_bot("some_test_bot")
    body = b'{"chat_id": 1, "text": "\xff"}'
    raw = _post(bot.token, "sendMessage", f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n")
    received = exchange(telegram, raw + body)
    assert received.startswith(b"HTTP/1.1 "), "no answer: the handler raised and the connection was dropped"


def test_a_request_split_across_tcp_writes_is_read_whole(telegram):
    bot = telegram.add_bot("some_test_bot")
    body = b'{"url": "https://x.example/hook"}'
    raw = _post(bot.token, "setWebhook", "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n")
    raw += b"%x;ext=1\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    pieces = [raw[i : i + 7] for i in range(0, len(raw), 7)]
    received = exchange(telegram, raw, pieces=pieces)
    assert status_line(received).startswith(b"HTTP/1.1 200 "), received[:200]
    assert bot.webhook_url == "https://x.example/hook"


@pytest.mark.parametrize(
    "partial",
    [
        pytest.param(b"POST /bot1:x/getMe HTTP/1.1\r\nHost: t\r\n", id="headers-never-end"),
        pytest.param(
            b"POST /bot1:x/getMe HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{}",
            id="body-shorter",
        ),
        pytest.param(
            b"POST /bot1:x/getMe HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", id="chunk-shorter"
        ),
    ],
)
def test_a_partial_request_does_not_hold_the_stand_in_forever(partial: bytes):
    """Slowloris: the client sends part of a request and waits. The handler has no timeout
    (BaseHTTPRequestHandler.timeout is None), so it blocks in readline/read for ever; a test whose
    client stalls hangs with it. A stand-in should give up (408 or a close) within a bound."""
    with FakeTelegram() as telegram:
        host, port = telegram.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=BOUND) as conn:
            conn.sendall(partial)  # and nothing more, the socket stays open
            try:
                received = conn.recv(65536)
            except TimeoutError:
                pytest.fail(f"the stand-in held a partial request open for {BOUND}s without answering or closing")
        assert received == b"" or received.startswith(b"HTTP/1.1 4")


def test_a_chunked_body_cut_off_before_its_final_crlf_is_not_processed(telegram):
    """The client sends ``0\\r\\n`` and closes its side (a dropped connection): the trailer loop
    takes EOF (``b""``) as the empty line that ends the message, so an incomplete request is
    processed: the webhook is set. RFC 9112 §8: an incomplete message is not a request."""
    bot = telegram.add_bot("some_test_bot")
    body = b'{"url": "https://x.example/hook"}'
    raw = _post(bot.token, "setWebhook", "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n")
    raw += b"%x\r\n%s\r\n0\r\n" % (len(body), body)  # no final CRLF
    host, port = telegram.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=BOUND) as conn:
        conn.sendall(raw)
        conn.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    assert bot.webhook_url == "", f"an incomplete request was processed: {status_line(received)!r}"


def test_three_pipelined_requests_with_bodies_are_answered_in_order(telegram):
    """Holds: keep-alive pipelining with Content-Length and chunked bodies on one connection (the
    second is getMe, as a second setWebhook within a second is Telegram's 429)."""
    bot = telegram.add_bot("some_test_bot")
    one = b'{"url": "https://x.example/one"}'
    head = f"POST /bot{bot.token}/%s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    raw = ((head % "setWebhook") + f"Content-Length: {len(one)}\r\n\r\n").encode() + one
    raw += ((head % "getMe") + "Transfer-Encoding: chunked\r\n\r\n").encode() + b"1\r\n{\r\n1;x=y\r\n}\r\n0\r\n\r\n"
    raw += f"GET /bot{bot.token}/getWebhookInfo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
    received = exchange(telegram, raw)
    answers = received.split(b"HTTP/1.1 ")[1:]
    assert [a.split(b" ", 1)[0] for a in answers] == [b"200", b"200", b"200"]
    assert b"some_test_bot" in answers[1] and b"https://x.example/one" in answers[2]


@pytest.mark.parametrize(
    ("part_type", "value"),
    [
        pytest.param("text/plain; charset=x-no-such-charset", b"hello", id="unknown-charset"),
        pytest.param("text/plain", b"\xff\xfe", id="not-utf8"),
    ],
)
def test_a_multipart_field_the_parser_cannot_decode_is_answered(telegram, part_type: str, value: bytes):
    """``multipart_fields`` decodes each text part with its declared charset (LookupError for one
    Python does not know) or UTF-8 (UnicodeDecodeError): either escapes the handler, and the client
    gets no answer at all instead of Telegram's 400."""
    bot = telegram.add_bot("some_test_bot")
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="chat_id"\r\n\r\n1\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="text"\r\nContent-Type: '
        + part_type.encode()
        + b"\r\n\r\n"
        + value
        + b"\r\n--XyZ--\r\n"
    )
    raw = _post(
        bot.token, "sendMessage", f"Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {len(body)}\r\n"
    )
    received = exchange(telegram, raw + body)
    assert received.startswith(b"HTTP/1.1 "), "no answer: the handler raised and the connection was dropped"


def test_a_max_connections_that_is_not_a_number_is_telegrams_400(telegram):
    """``int(params.get("max_connections") or 40)`` raises ValueError in the handler: no answer.
    tdlib/telegram-bot-api (Client::process_set_webhook_query, get_integer_arg) answers 400
    "Bad Request: field \\"max_connections\\" must be a valid Number"."""
    bot = telegram.add_bot("some_test_bot")
    body = b'{"url": "https://x.example/hook", "max_connections": "many"}'
    raw = _post(bot.token, "setWebhook", f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n")
    received = exchange(telegram, raw + body)
    assert status_line(received).startswith(b"HTTP/1.1 400 "), received[:200] or "no answer at all"


def test_a_body_shorter_than_its_content_length_is_not_processed(telegram):
    """``rfile.read(size)`` returns what came before EOF and read_body never compares its length
    with Content-Length: a body cut off by a dropped connection is processed as if whole."""
    bot = telegram.add_bot("some_test_bot")
    body = b'{"url": "https://x.example/hook"}'
    raw = _post(bot.token, "setWebhook", f"Content-Type: application/json\r\nContent-Length: {len(body) + 20}\r\n")
    host, port = telegram.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=BOUND) as conn:
        conn.sendall(raw + body)
        conn.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    assert bot.webhook_url == "", f"a body 20 bytes short was processed: {status_line(received)!r}"
