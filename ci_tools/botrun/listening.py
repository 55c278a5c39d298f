"""Which addresses a bot listens on: Render's proxy reaches it at 0.0.0.0:$PORT, never loopback.

render.com/docs/web-services: a web service must bind to host 0.0.0.0; one bound to 127.0.0.1
answers every local request and is never reached on Render ("No open ports detected"). Read
from the kernel's socket tables (Linux ``/proc/net/tcp``, ``tcp6``); elsewhere unknown.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

LISTEN = "0A"  # the TCP state column of /proc/net/tcp


def listening_on(port: int, proc: Path = Path("/proc")) -> list[str] | None:
    """The local addresses with a socket listening on ``port``; None when the tables cannot be read."""
    found: list[str] = []
    readable = False
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or fields[3] != LISTEN:
                continue
            address, _, hex_port = fields[1].partition(":")
            if int(hex_port, 16) == port:
                found.append(_address(address))
    return found if readable else None


def reachable_from_outside(addresses: list[str]) -> bool:
    """Whether any of ``addresses`` is more than loopback (0.0.0.0, ::, or an interface's own)."""
    for text in addresses:
        address = ipaddress.ip_address(text)
        mapped = getattr(address, "ipv4_mapped", None)
        if not (mapped or address).is_loopback:
            return True
    return False


def _address(hexed: str) -> str:
    """/proc/net/tcp's address: 32-bit words in host (little-endian) byte order."""
    raw = b"".join(bytes.fromhex(hexed[i : i + 8])[::-1] for i in range(0, len(hexed), 8))
    return str(ipaddress.ip_address(raw))
