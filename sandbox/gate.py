"""A TCP gate in front of a Redis server: what a Render Key Value's external URL behaves like.

Render's Key Value instances accept outside connections only from the CIDR blocks in
their ``ipAllowList`` (``[]``: internal access only). The gate accepts a connection,
and if the client's address is in no allowed block, closes it at once — the client
sees the connection drop before any Redis reply, as it would from outside Render.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Callable

from sandbox.ports import free_port


class Gate:
    def __init__(self, upstream_port: int, allowed: Callable[[], list[str]]) -> None:
        self.upstream_port = upstream_port
        self.allowed = allowed  # the CIDR blocks in force now
        self.port = free_port()
        self.refused = 0
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="keyvalue-gate", daemon=True)

    def start(self) -> Gate:
        self._thread.start()
        return self

    def admits(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in ipaddress.ip_network(block, strict=False) for block in self.allowed())

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, (address, _) = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.admits(address):
                self.refused += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()
                continue
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(timeout=2)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    source.settimeout(None)
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for end in (source, sink):
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)
        end.close()
