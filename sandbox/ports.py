"""Free loopback ports for the stand-ins, and the two smallest services on one: a server that
never answers, and one that answers whatever its caller decides."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

# What AnsweringServer answers a GET with: a status, a body (bytes as they are, as text/plain;
# anything else as JSON) and headers (a Date of now unless they give one).
Answer = tuple[int, Any, dict[str, str]]


def free_port() -> int:
    """A port the OS just handed out on 127.0.0.1; free until someone else takes it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """host:port of a server that accepts connections and never answers (a hung service)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def swallow() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=swallow, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


class AnsweringServer:
    """A loopback HTTP server that answers every GET with ``answer()``, asked anew each time: a
    live bot's health path whose answers (a status, a body, its Date) a test or a bench decides.
    ``url`` has no path: any path gets the same answer."""

    def __init__(self, answer: Callable[[], Answer]) -> None:
        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # head and body are two writes: no 40 ms delayed-ACK wait

            def do_GET(self) -> None:
                status, body, headers = answer()
                raw = isinstance(body, bytes)
                data = body if raw else json.dumps(body).encode()
                sent = {
                    "Date": formatdate(usegmt=True),
                    "Content-Type": "text/plain" if raw else "application/json",
                    **headers,
                    "Content-Length": str(len(data)),
                }
                self.send_response_only(status)
                for name, value in sent.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
