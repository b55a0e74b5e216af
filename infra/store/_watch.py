"""Notice a client that hangs up while its query runs, so the query is cancelled, not finished for no one."""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["watch_disconnect"]

_POLL_MS = 100
_HANGUP = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0)


@contextmanager
def watch_disconnect(sock: socket.socket, on_disconnect: Callable[[], None]) -> Iterator[None]:
    """Call ``on_disconnect`` once if the peer of ``sock`` closes before the block ends."""
    done = threading.Event()
    wake_r, wake_w = os.pipe()  # wakes the watcher at once when the block ends

    def watch() -> None:
        poller = select.poll()
        poller.register(sock, _HANGUP | select.POLLIN)
        poller.register(wake_r, select.POLLIN)
        while not done.is_set():
            try:
                events = poller.poll(_POLL_MS)
            except (OSError, ValueError):
                return
            for fd, mask in events:
                if fd == wake_r:
                    return
                if mask & _HANGUP or (mask & select.POLLIN and _peer_closed(sock)):
                    if not done.is_set():
                        on_disconnect()
                    return
                if mask & select.POLLIN:
                    # pipelined bytes of the next request: keep watching for a hang-up only
                    poller.modify(sock, _HANGUP)

    thread = threading.Thread(target=watch, name="store-disconnect-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        os.write(wake_w, b"x")
        thread.join(timeout=1)
        os.close(wake_r)
        os.close(wake_w)


def _peer_closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
