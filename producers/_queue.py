"""The bounded hand-over between agent threads and the background worker.

``put`` is the only thing an emitting call does besides building a :class:`QueueEntry`: an append
to a ``deque`` (atomic under the GIL). The bounds are checked without a lock, so the byte count is
an estimate. When full, the policy applies: ``drop_oldest`` drops the oldest queued event at once;
``spool`` and ``block`` wait at most ``block_ms`` for the worker to make room, then drop the new
event. After one such timeout the worker counts as stalled and later emits drop without waiting
until it takes again, so a hung worker costs the agent one ``block_ms``, not one per event.

Every drop is counted, per agent, so that the worker leaves a gap in that agent's stream
(:meth:`EventQueue.take_gaps`): the integrity rules see what the queue dropped.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, NamedTuple

__all__ = ["BASE_EVENT_BYTES", "EventQueue", "QueueEntry", "new_entry"]

#: Rough size of an event without bodies, for the byte bound.
BASE_EVENT_BYTES = 400


class QueueEntry(NamedTuple):
    """One emitted event as the agent's thread hands it to the worker, which seals it into a record.

    A NamedTuple because it is built on the agent's thread for every event, where a dataclass's ``__init__``
    would cost more; the agent's thread builds it with :func:`new_entry` (benchmarks/bench_sdk_emit.py).
    """

    agent: str
    kind: str
    phase: str
    name: str
    action_id: str
    parent_action_id: str | None
    trace_id: str
    depth: int
    run_id: str
    #: the event's time, epoch microseconds.
    time_us: int
    #: the record's other fields; ``_bodies`` holds ``(field, text)`` pairs the worker redacts and caps.
    extra: dict[str, Any] | None
    #: the estimated size in bytes, for the queue's byte bound.
    size: int


if TYPE_CHECKING:
    #: Builds a :class:`QueueEntry`: the type checker checks each field as for ``QueueEntry(...)``.
    new_entry = QueueEntry
else:
    _tuple_new = tuple.__new__

    def new_entry(agent, kind, phase, name, action_id, parent_action_id, trace_id, depth, run_id, time_us, extra,
                  size):
        # QueueEntry(...) as a plain function call: the class call costs ~65 ns more per event on the agent's thread
        return _tuple_new(QueueEntry, (agent, kind, phase, name, action_id, parent_action_id, trace_id, depth,
                                       run_id, time_us, extra, size))


class EventQueue:
    """A bounded multi-producer, single-consumer FIFO of emitted items."""

    __slots__ = ("_items", "max_events", "max_bytes", "bytes", "block_s", "drop_oldest", "dropped",
                 "blocked", "_room", "_wake", "wake_at", "closed", "stalled", "waiting", "_gaps", "_gap_lock")

    def __init__(self, max_events: int, max_bytes: int, *, policy: str, block_ms: int) -> None:
        self._items: deque[QueueEntry] = deque()
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
        #: a wait for room timed out and the worker has not taken anything since.
        self.stalled = False
        #: emits waiting for room right now: the worker then takes smaller batches, to free room sooner.
        self.waiting = 0
        self._gaps: dict[str, int] = {}  # agent -> events dropped since the worker last looked
        self._gap_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: QueueEntry) -> None:
        """Hand ``item`` to the worker; never raises, waits at most ``block_ms`` under ``block``."""
        items = self._items
        size = item.size
        if len(items) >= self.max_events or self.bytes + size > self.max_bytes:  # noqa: SIM102 - the hot path tests the cheap condition alone; _make_room waits or drops
            if not self._make_room(size):
                self._dropped(item)
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
                self.bytes -= old.size
                self._dropped(old)
            return True
        self._wake.set()
        self.blocked += 1
        if self.stalled or self.closed:
            return False
        deadline = time.monotonic() + self.block_s
        with self._room:
            self.waiting += 1
            try:
                while len(items) >= self.max_events or self.bytes + size > self.max_bytes:
                    left = deadline - time.monotonic()
                    if left <= 0 or self.closed:
                        self.stalled = True
                        return False
                    self._room.wait(left)
            finally:
                self.waiting -= 1
        return True

    def _dropped(self, item: QueueEntry) -> None:
        with self._gap_lock:
            self.dropped += 1
            agent = item.agent
            self._gaps[agent] = self._gaps.get(agent, 0) + 1

    def take_gaps(self) -> dict[str, int]:
        """Events dropped per agent since the last call (worker thread only)."""
        if not self._gaps:
            return {}
        with self._gap_lock:
            gaps, self._gaps = self._gaps, {}
        return gaps

    def take(self, limit: int) -> list[QueueEntry]:
        """Up to ``limit`` items, oldest first (worker thread only)."""
        items = self._items
        out: list[QueueEntry] = []
        popleft = items.popleft
        size = 0
        try:
            for _ in range(min(limit, len(items))):
                item = popleft()
                out.append(item)
                size += item.size
        except IndexError:
            pass
        if out:
            self.stalled = False
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
