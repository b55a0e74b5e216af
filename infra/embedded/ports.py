"""Free loopback ports for embedded components."""

from __future__ import annotations

import socket

__all__ = ["free_port", "port_open"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the OS considers free right now on ``host`` (bind to port 0, then release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
