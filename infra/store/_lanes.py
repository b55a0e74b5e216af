"""Admission lanes: reads and writes wait in separate, bounded lines, so readers never starve inserts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Lane", "LaneFullError"]


class LaneFullError(Exception):
    """No slot in the lane: too many requests running and waiting; retry later (HTTP 503)."""


class Lane:
    """At most ``slots`` requests run; at most ``queue`` more wait, each up to ``timeout`` seconds."""

    def __init__(self, name: str, slots: int, queue: int, timeout: float) -> None:
        self.name = name
        self._slots = threading.BoundedSemaphore(slots)
        self._queue, self._timeout = queue, timeout
        self._lock = threading.Lock()
        self._waiting = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(blocking=False):
            with self._lock:
                if self._waiting >= self._queue:
                    raise LaneFullError(f"{self.name}: all slots busy and {self._waiting} requests waiting")
                self._waiting += 1
            try:
                acquired = self._slots.acquire(timeout=self._timeout)
            finally:
                with self._lock:
                    self._waiting -= 1
            if not acquired:
                raise LaneFullError(f"{self.name}: no slot free within {self._timeout:g}s")
        try:
            yield
        finally:
            self._slots.release()
