"""A tiny threaded HTTP server base for the stand-ins.

The stand-ins are real servers on loopback so that the code under test goes
through its real HTTP client, real sockets and real error handling. The standard
library server is enough: it starts in milliseconds and has no dependencies.
"""

from __future__ import annotations

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
from sandbox.forms import MULTIPART, multipart_fields

# RFC 9112 §7.1.1: a chunk-size line is hex digits, optional extensions; cap what we read of it.
_LINE_LIMIT = 65_536
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


class FramingError(Exception):
    """A request whose body cannot be delimited: answered 400 (or 501) and the connection closed,
    because the bytes after it can no longer be told apart from the next request (RFC 9112 §6.3)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def read_body(rfile: BufferedIOBase, headers: Message) -> bytes:
    """The request's body as RFC 9112 §6.3 delimits it: ``Transfer-Encoding: chunked`` first
    (it overrides any Content-Length), then Content-Length, else no body.

    Clients we did not write stream bodies chunked (``gh api --input -``, Node streams, httpx
    with an iterator); reading only Content-Length dropped such a body and then parsed its
    chunks as the next request."""
    coding = headers.get("Transfer-Encoding")
    if coding is not None:
        codings = [c.strip().lower() for c in coding.split(",") if c.strip()]
        if not codings or codings[-1] != "chunked":
            # §6.3 (4): a request whose final transfer coding is not chunked cannot be delimited.
            raise FramingError(400, "Transfer-Encoding must end in chunked")
        if codings != ["chunked"]:
            # §6.1: a transfer coding the server does not understand is answered 501.
            raise FramingError(501, f"transfer coding not implemented: {coding}")
        return _read_chunked(rfile)
    length = headers.get("Content-Length")
    if length is None:
        return b""
    if not length.strip().isdigit():
        raise FramingError(400, "invalid Content-Length")  # §6.3 (5): unrecoverable framing error
    size = int(length)
    return rfile.read(size) if size else b""


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
        data = rfile.read(size)
        if len(data) != size or rfile.readline(_LINE_LIMIT + 1) not in (b"\r\n", b"\n"):
            raise FramingError(400, "chunk data does not match its size")
        body += data
    while True:  # the trailer section, up to the empty line that ends the message
        line = rfile.readline(_LINE_LIMIT + 1)
        if line in (b"\r\n", b"\n", b""):
            return bytes(body)
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
        if self.body and ctype == "application/json":
            data = json.loads(self.body)
            if isinstance(data, dict):
                params.update(data)
        elif self.body and ctype == "application/x-www-form-urlencoded":
            params.update(parse_qsl(self.body.decode(), keep_blank_values=True))
        elif self.body and ctype == MULTIPART:
            params.update(multipart_fields(self.body, header))
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
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handle(self, request: Request) -> Response:  # pragma: no cover - overridden
        raise NotImplementedError

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

            def _serve(self) -> None:
                try:
                    body = read_body(self.rfile, self.headers)
                except FramingError as exc:
                    # The front end's answer, not the API's: sent, not validated, and the
                    # connection closed, as what follows on it cannot be framed.
                    self.close_connection = True
                    self._send(exc.status, json.dumps({"message": exc.message}).encode(), {"Connection": "close"})
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
                except json.JSONDecodeError:
                    status, payload, headers = 400, {"message": "invalid JSON body"}, {}
                if isinstance(payload, bytes):  # passed through as is (the router)
                    data = payload
                else:
                    data = b"" if payload is None else json.dumps(payload).encode()
                if payload is not None and not isinstance(payload, bytes):
                    headers = {"Content-Type": "application/json", **headers}
                owner.validate(request, Answer(status, headers, data))
                headers.pop(FAULT, None)
                self._send(status, data, headers)

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
