"""The bounded hand-over between agent threads and the background worker.

``put`` is the only thing an emitting call does besides building a tuple: an append to a
``deque`` (atomic under the GIL). The bounds are checked without a lock, so the byte count is
an estimate; when full, the policy applies (drop the oldest queued event, or wait at most
``block_ms`` for room and then drop the new one). Every drop is counted.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

__all__ = ["EventQueue"]

#: Rough size of an event without bodies, for the byte bound.
BASE_EVENT_BYTES = 400


class EventQueue:
    """A bounded multi-producer, single-consumer FIFO of emitted items."""

    __slots__ = ("_items", "max_events", "max_bytes", "bytes", "block_s", "drop_oldest", "dropped",
                 "blocked", "_room", "_wake", "wake_at", "closed")

    def __init__(self, max_events: int, max_bytes: int, *, policy: str, block_ms: int) -> None:
        self._items: deque[tuple[Any, ...]] = deque()
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.bytes = 0
        self.drop_oldest = policy == "drop_oldest"
        self.block_s = block_ms / 1000.0
        self.dropped = 0
        self.blocked = 0
        self._room = threading.Condition(threading.Lock())
        self._wake = threading.Event()
        #: the worker is woken early once this many items wait (otherwise it polls).
        self.wake_at = 256
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: tuple[Any, ...], size: int = BASE_EVENT_BYTES) -> None:
        """Hand ``item`` to the worker; never raises, waits at most ``block_ms`` under ``block``."""
        items = self._items
        if len(items) >= self.max_events or self.bytes + size > self.max_bytes:
            if not self._make_room(size):
                return
        items.append(item)
        self.bytes += size
        if len(items) >= self.wake_at and not self._wake.is_set():
            self._wake.set()

    def _make_room(self, size: int) -> bool:
        items = self._items
        if self.drop_oldest:
            while items and (len(items) >= self.max_events or self.bytes + size > self.max_bytes):
                try:
                    old = items.popleft()
                except IndexError:
                    break
                self.bytes -= old[-1]
                self.dropped += 1
            return True
        self._wake.set()
        deadline = time.monotonic() + self.block_s
        self.blocked += 1
        with self._room:
            while len(items) >= self.max_events or self.bytes + size > self.max_bytes:
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    self.dropped += 1
                    return False
                self._room.wait(left)
        return True

    def take(self, limit: int) -> list[tuple[Any, ...]]:
        """Up to ``limit`` items, oldest first (worker thread only)."""
        items = self._items
        out: list[tuple[Any, ...]] = []
        popleft = items.popleft
        size = 0
        try:
            for _ in range(min(limit, len(items))):
                item = popleft()
                out.append(item)
                size += item[-1]
        except IndexError:
            pass
        if out:
            self.bytes = max(0, self.bytes - size) if items else 0
            if not self.drop_oldest:
                with self._room:
                    self._room.notify_all()
        return out

    def wait(self, timeout: float) -> None:
        """Sleep until woken or ``timeout`` seconds passed (worker thread only)."""
        if self._wake.wait(timeout):
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()
