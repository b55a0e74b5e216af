"""Source-partition idleness for the rules worker's re-key stage: which markers it owes the judges.

A source partition that receives nothing, or carries only other partitions' tenants, would hold
the judges' watermark back for ever, so the re-key stage sends *progress* and *idle* markers to
every repartition partition. When they are sent and why a backlog replay stays deterministic:
``docs/event-time.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from agentaudit.rules._runtime import NEVER

__all__ = ["IDLE", "PROGRESS", "Marker", "SourceIdleness"]

IDLE = "idle"
PROGRESS = "progress"

#: (source, kind, largest event time delivered or None when the source delivered nothing yet,
#: µs of processing time without a delivery for an idle marker, else None)
Marker = tuple[str, str, int | None, int | None]


@dataclass
class _Source:
    seen: float  # processing time of the last delivery, or of the assignment
    position: int | None = None  # next offset to read, when known
    max_time: int = NEVER  # largest event time delivered since the assignment
    sent_time: int = NEVER  # the largest event time announced in a marker
    sent_at: float = -math.inf  # when that marker was due
    idle: bool = False
    woke: bool = False  # delivered again after an idle marker: announce it at once


class SourceIdleness:
    """Per assigned source partition: the last delivery, the read position, and the markers due.

    :param idle_timeout_s: processing time without a delivery, with the partition read to its
        end, after which it is idle; ``0`` turns markers off (the judges wait for every source).
    :param progress_interval_s: the shortest gap between two progress markers of one source;
        default ``min(1, idle_timeout_s)``.

    >>> idleness = SourceIdleness(5.0)
    >>> idleness.assign("actions:0", now=0.0, position=0)
    >>> idleness.markers(now=6.0, ends={"actions:0": 0})
    [('actions:0', 'idle', None, 6000000)]
    """

    def __init__(self, idle_timeout_s: float, progress_interval_s: float | None = None) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.progress_interval_s = min(1.0, idle_timeout_s) if progress_interval_s is None else progress_interval_s
        self.repeat_interval_s = max(self.progress_interval_s, idle_timeout_s / 2)
        self._sources: dict[str, _Source] = {}

    @property
    def enabled(self) -> bool:
        return self.idle_timeout_s > 0

    def assign(self, source: str, now: float, position: int | None = None) -> None:
        """Start tracking ``source`` (newly assigned): not idle until quiet for the idle timeout."""
        self._sources[source] = _Source(seen=now, position=position)

    def revoke(self, source: str) -> None:
        self._sources.pop(source, None)

    def delivered(self, source: str, next_offset: int, event_time_us: int | None, now: float) -> None:
        """One message read from ``source``; ``event_time_us`` None when it could not be decoded."""
        state = self._sources.get(source)
        if state is None:
            state = self._sources[source] = _Source(seen=now)
        state.seen = now
        if state.position is None or next_offset > state.position:
            state.position = next_offset
        if event_time_us is not None and event_time_us > state.max_time:
            state.max_time = event_time_us
        if state.idle:
            state.idle = False
            state.woke = True

    def unpositioned(self, now: float) -> list[str]:
        """Quiet sources whose read position is unknown (nothing delivered since the assignment)."""
        return [name for name, s in self._sources.items()
                if s.position is None and not s.idle and now - s.seen >= self.idle_timeout_s]

    def set_position(self, source: str, position: int) -> None:
        state = self._sources.get(source)
        if state is not None and state.position is None:
            state.position = position

    def last_deliveries(self) -> dict[str, float]:
        """When each source that delivered an event last did (processing time): its quiet counts from there."""
        return {name: s.seen for name, s in self._sources.items() if s.max_time != NEVER}

    def idle(self) -> list[str]:
        """Sources currently idle, in name order."""
        return sorted(name for name, s in self._sources.items() if s.idle)

    def markers(self, now: float, ends: Mapping[str, int]) -> list[Marker]:
        """Markers due now; ``ends`` holds each source's high watermark from the latest fetch (absent: unknown)."""
        if not self.enabled:
            return []
        due: list[Marker] = []
        for name in self._repeating():  # with its quiet time: event time moves on with processing time
            s = self._sources[name]
            if now - s.sent_at >= self.repeat_interval_s:
                s.sent_at = now
                due.append((name, IDLE, s.max_time if s.max_time != NEVER else None, int((now - s.seen) * 1e6)))
        for name, s in self._sources.items():
            known = s.max_time if s.max_time != NEVER else None
            if s.idle:
                continue
            end = ends.get(name)
            if now - s.seen >= self.idle_timeout_s and s.position is not None and end is not None \
                    and s.position >= end:
                s.idle, s.woke, s.sent_time, s.sent_at = True, False, s.max_time, now
                due.append((name, IDLE, known, int((now - s.seen) * 1e6)))
            elif s.woke or (s.max_time > s.sent_time and now - s.sent_at >= self.progress_interval_s):
                s.woke, s.sent_time, s.sent_at = False, s.max_time, now
                due.append((name, PROGRESS, known, None))
        return due

    def _repeating(self) -> list[str]:
        """Idle sources whose marker repeats: the one with the largest event time, and those without one."""
        idle = [(s.max_time, name) for name, s in self._sources.items() if s.idle]
        known = [item for item in idle if item[0] != NEVER]
        return ([max(known)[1]] if known else []) + sorted(name for t, name in idle if t == NEVER)
