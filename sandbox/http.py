"""A tiny threaded HTTP server base for the stand-ins.

The stand-ins are real servers on loopback so that the code under test goes
through its real HTTP client, real sockets and real error handling. The standard
library server is enough: it starts in milliseconds and has no dependencies.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from sandbox.contract import FAULT, LEDGER, Answer, Contract
from sandbox.forms import MULTIPART, UnreadablePart, multipart_fields

# RFC 9112 §7.1.1: a chunk-size line is hex digits, optional extensions; cap what we read of it.
_LINE_LIMIT = 65_536
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
# RFC 9110 §8.6: Content-Length = 1*DIGIT, ASCII digits only ("²" is a digit to str.isdigit).
_DIGITS = re.compile(r"[0-9]+")
# The largest body a stand-in reads (RFC 9110 §15.5.14: 413 Content Too Large for more). The Bot
# API takes uploads of up to 50 MB (core.telegram.org/bots/api, "Sending files"); nothing the
# pipeline sends to Render or GitHub comes near.
MAX_BODY = 64 * 1024 * 1024
# Seconds a connection may sit without sending the rest of a request (or a next one) before the
# stand-in closes it: a partial request (a stalled client, Slowloris) must not hold a handler
# thread for ever. RFC 9112 §9.8 lets a server close an idle connection at any time.
IDLE_TIMEOUT = 10.0


class FramingError(Exception):
    """A request whose body cannot be delimited: answered 400 (or 501) and the connection closed,
    because the bytes after it can no longer be told apart from the next request (RFC 9112 §6.3)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BadBody(ValueError):
    """A body that is framed but cannot be read as its Content-Type says (bytes that are not
    UTF-8, a charset Python does not know): the client's mistake, answered 400."""


def _field(headers: Message, name: str) -> list[str] | None:
    """Every value of a header field, in order: RFC 9110 §5.3 makes repeated fields one
    comma-separated list, so reading only the first (``headers.get``) would let a second
    Transfer-Encoding or Content-Length go unseen (request smuggling's classic disagreement)."""
    values = headers.get_all(name)
    if values is None:
        return None
    return [item.strip() for value in values for item in str(value).split(",")]


def read_body(rfile: BufferedIOBase, headers: Message) -> bytes:
    """The request's body as RFC 9112 §6.3 delimits it: ``Transfer-Encoding: chunked`` first
    (it overrides any Content-Length), then Content-Length, else no body.

    Clients we did not write stream bodies chunked (``gh api --input -``, Node streams, httpx
    with an iterator); reading only Content-Length dropped such a body and then parsed its
    chunks as the next request. A body cut off before its end (a dropped connection) is not a
    request (RFC 9112 §8): it is refused, never handed to the stand-in."""
    codings = _field(headers, "Transfer-Encoding")
    if codings is not None:
        codings = [c.lower() for c in codings if c]
        if not codings or codings[-1] != "chunked":
            # §6.3 (4): a request whose final transfer coding is not chunked cannot be delimited.
            raise FramingError(400, "Transfer-Encoding must end in chunked")
        if codings != ["chunked"]:
            # §6.1: a transfer coding the server does not understand is answered 501.
            raise FramingError(501, f"transfer coding not implemented: {', '.join(codings)[:80]}")
        return _read_chunked(rfile)
    lengths = _field(headers, "Content-Length")
    if lengths is None:
        return b""
    if not lengths or not all(_DIGITS.fullmatch(v) for v in lengths):
        raise FramingError(400, "invalid Content-Length")  # §6.3 (5): unrecoverable framing error
    if len({int(v) for v in lengths}) != 1:
        # §6.3 (5): differing values (a list of one repeated value may be taken as that value).
        raise FramingError(400, "conflicting Content-Length values")
    size = int(lengths[0])
    if size > MAX_BODY:
        raise FramingError(413, f"body larger than {MAX_BODY} bytes")
    data = rfile.read(size) if size else b""
    if len(data) != size:
        raise FramingError(400, "body shorter than its Content-Length: the message is incomplete")
    return data


def _read_chunked(rfile: BufferedIOBase) -> bytes:
    """RFC 9112 §7.1: ``*chunk last-chunk trailer-section CRLF``; extensions and trailer fields
    are read and ignored (§7.1.1, §7.1.2 allow a recipient to ignore them)."""
    body = bytearray()
    while True:
        line = rfile.readline(_LINE_LIMIT + 1)
        if not line.endswith(b"\n") or len(line) > _LINE_LIMIT:
            raise FramingError(400, "chunk size line missing or too long")
        size_text = line.split(b";", 1)[0].strip()
        if not _HEX.fullmatch(size_text):  # int(…, 16) alone would take "0x1a" and "1_0"
            raise FramingError(400, f"invalid chunk size {size_text[:20]!r}")
        size = int(size_text, 16)
        if size == 0:
            break
        if len(body) + size > MAX_BODY:  # before reading: 16 hex digits would ask for 2**64 bytes
            raise FramingError(413, f"body larger than {MAX_BODY} bytes")
        data = rfile.read(size)
        if len(data) != size or rfile.readline(_LINE_LIMIT + 1) not in (b"\r\n", b"\n"):
            raise FramingError(400, "chunk data does not match its size")
        body += data
    while True:  # the trailer section, up to the empty line that ends the message
        line = rfile.readline(_LINE_LIMIT + 1)
        if line in (b"\r\n", b"\n"):
            return bytes(body)
        if not line.endswith(b"\n"):
            # EOF (or a line cut off) before the final CRLF: §8, an incomplete message.
            raise FramingError(400, "chunked body ended before its final CRLF: the message is incomplete")
        if len(line) > _LINE_LIMIT:
            raise FramingError(400, "trailer line too long")


class Request:
    """What a handler needs of a request: method, path, query, headers, parsed body."""

    def __init__(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        parts = urlsplit(handler.path)
        self.method = handler.command
        self.path = parts.path
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.raw_query = parts.query
        self.headers = handler.headers
        self.body = body
        self.client_address = str(handler.client_address[0])

    def params(self) -> dict[str, Any]:
        """Query, form-encoded, multipart and JSON parameters merged, as the Bot API accepts all
        four (core.telegram.org/bots/api, "Making requests")."""
        params: dict[str, Any] = dict(self.query)
        header = self.headers.get("Content-Type") or ""
        ctype = header.split(";")[0].strip().lower()
        try:
            if self.body and ctype == "application/json":
                data = json.loads(self.body)
                if isinstance(data, dict):
                    params.update(data)
            elif self.body and ctype == "application/x-www-form-urlencoded":
                params.update(parse_qsl(self.body.decode(), keep_blank_values=True))
            elif self.body and ctype == MULTIPART:
                params.update(multipart_fields(self.body, header))
        except UnicodeDecodeError as exc:
            # JSON is UTF-8 (RFC 8259 §8.1); a form is read as UTF-8, as the Bot API's is.
            raise BadBody(f"the {ctype} body is not valid UTF-8 (byte {exc.start})") from None
        except UnreadablePart as exc:
            raise BadBody(str(exc)) from None
        return params

    def json(self) -> Any:
        return json.loads(self.body or b"null")


Response = tuple[int, Any, dict[str, str]]


def fault(status: int, payload: Any, why: str) -> Response:
    """An answer no real service gives as its own (a proxy's 502): sent, but not validated."""
    return status, payload, {FAULT: why}


class StandInServer:
    """Runs ``self.handle(request) -> (status, json_body, headers)`` on a loopback port."""

    name = "stand-in"
    contract: Contract | None = None  # the provider's published description, if it has one

    def __init__(self, *, latency: float = 0.0) -> None:
        self.latency = latency
        self.requests: list[tuple[str, str]] = []
        self.failures: list[Exception] = []  # what handle() raised (each answered 500)
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handle(self, request: Request) -> Response:  # pragma: no cover - overridden
        raise NotImplementedError

    def bad_request(self, message: str) -> Response:
        """The provider's answer to a body it cannot read; a stand-in with its own error shape
        (Telegram's ``ok``/``description``) overrides it."""
        return 400, {"message": message}, {}

    @property
    def url(self) -> str:
        assert self._server is not None, f"{self.name} is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def validate(self, request: Request, answer: Answer) -> None:
        """Hold the exchange to the provider's description; what breaks it goes to the LEDGER."""
        if self.contract is None or FAULT in answer.headers:
            return
        target = request.path + (f"?{request.raw_query}" if request.raw_query else "")
        found = self.contract.check(request.method, target, dict(request.headers.items()), request.body, answer)
        if found is not None:
            LEDGER.record(self.contract.provider, found)

    def start(self) -> Self:
        if self.contract is not None:
            self.contract.load()  # here, not in a request thread: a missing library says so
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The head and the body go out in two writes: with Nagle's algorithm the body waits for
            # the client's delayed ACK of the head (40 ms on Linux), which made every call to a
            # stand-in take ~50 ms. TCP_NODELAY, as production HTTP servers set it.
            disable_nagle_algorithm = True
            # socketserver.StreamRequestHandler sets it on the socket; a read that waits longer
            # raises TimeoutError, which BaseHTTPRequestHandler.handle_one_request answers by
            # closing the connection ("Request timed out"): the request is never processed.
            timeout = IDLE_TIMEOUT

            def _serve(self) -> None:
                try:
                    body = read_body(self.rfile, self.headers)
                except FramingError as exc:
                    # The front end's answer, not the API's: sent, not validated, and the
                    # connection closed, as what follows on it cannot be framed.
                    self._refuse(exc.status, exc.message)
                    return
                if "Transfer-Encoding" in self.headers and "Content-Length" in self.headers:
                    # RFC 9112 §6.1: chunked wins, and the connection closes after the answer (a
                    # request smuggling guard: the two framings may disagree on where it ends).
                    self.close_connection = True
                request = Request(self, body)
                with owner.lock:
                    owner.requests.append((request.method, request.path))
                if owner.latency:
                    time.sleep(owner.latency)
                try:
                    status, payload, headers = owner.handle(request)
                except (json.JSONDecodeError, BadBody) as exc:
                    # A body that cannot be read cannot be held to the description either: the
                    # provider's 400 is sent without validating the request.
                    why = "invalid JSON body" if isinstance(exc, json.JSONDecodeError) else str(exc)
                    status, payload, headers = owner.bad_request(why)
                    self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **headers})
                    return
                except Exception as exc:  # a stand-in's bug is answered, not a dropped connection
                    # Answered 500 as a front end would, and kept for the test to see; only the
                    # exception's type is sent (its text may hold a token from the path).
                    with owner.lock:
                        owner.failures.append(exc)
                    self._refuse(500, f"the {owner.name} stand-in failed: {type(exc).__name__}")
                    return
                if isinstance(payload, bytes):  # passed through as is (the router)
                    data = payload
                else:
                    data = b"" if payload is None else json.dumps(payload).encode()
                if payload is not None and not isinstance(payload, bytes):
                    headers = {"Content-Type": "application/json", **headers}
                owner.validate(request, Answer(status, headers, data))
                headers.pop(FAULT, None)
                self._send(status, data, headers)

            def _refuse(self, status: int, message: str) -> None:
                """A front end's answer (not validated), and the connection closed after it."""
                self.close_connection = True
                with contextlib.suppress(OSError):  # the client may have gone (a cut-off body)
                    self._send(status, json.dumps({"message": message}).encode(), {"Connection": "close"})

            def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: request lines carry tokens, and tests read the output."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
