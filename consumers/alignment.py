"""Event-time alignment of the partitions one inline evaluator reads.

A consumer reads a backlog a fetch at a time from each partition, so partitions move at about the same number
of events per fetch. One that carries fewer events per hour of event time races ahead: over a 400,000-event
simulator backlog on three partitions, 83% of the events arrived more than the 30 s lateness behind their
tenant's largest event time, and the inline rules' incidents differed from judging the same log in order (150
of 1,769 with another count, 65 extra, 39 missing), while the windows kept open grew the consumer's memory.

Two measures, as Kafka Streams and Flink take them:

- a ceiling (:meth:`EventTimeAlignment.ceiling`): no watermark passes the progress of the slowest partition that
  still has unread events, minus the lateness, so its events find their windows open (correctness; the
  evaluator applies it, see ``RuleEvaluator.hold``);
- alignment (:meth:`EventTimeAlignment.plan`): an unread partition more than the lateness ahead of that progress
  is paused until the others catch up, so what waits in open windows stays bounded (memory; Flink's watermark
  alignment). A pause lasts at most ``max_pause_s``, so no partition can stop the others' reading.

Progress is the largest event time a partition delivered; "unread" is a read position before the high
watermark of the latest fetch (on tansu that mark is the last batch's base offset + 1, so a partition's last
batch is not waited for).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["EventTimeAlignment", "PartitionKey"]

PartitionKey = tuple[str, int]
_HOLD_ALL = -(2**63)  # a ceiling below every event time: no watermark moves


class EventTimeAlignment:
    """Per partition, the largest event time delivered; from it, the watermark ceiling and what to pause.

    :param drift_us: how far (event time) a partition may lead the slowest unread one before it is paused.
    :param max_pause_s: the longest a partition stays paused at once (processing time); then it reads for as long.
    """

    def __init__(self, drift_us: int, max_pause_s: float = 30.0) -> None:
        self.drift_us = drift_us
        self.max_pause_s = max_pause_s
        self.progress: dict[PartitionKey, int] = {}
        self.paused: set[PartitionKey] = set()
        self._since: dict[PartitionKey, float] = {}  # when each paused partition was paused
        self._cooldown: dict[PartitionKey, float] = {}  # let go after a long pause: not paused again before this

    def delivered(self, key: PartitionKey, max_event_time_us: int) -> None:
        if max_event_time_us > self.progress.get(key, _HOLD_ALL):
            self.progress[key] = max_event_time_us

    def forget(self, key: PartitionKey) -> None:
        """A revoked partition: the next owner aligns it."""
        self.progress.pop(key, None)
        self.paused.discard(key)
        self._since.pop(key, None)
        self._cooldown.pop(key, None)

    def floor(self, unread: Iterable[PartitionKey]) -> int | None:
        """The progress of the slowest unread partition (None: every partition is read to its end).

        An unread partition that delivered nothing yet may hold anything: nothing may move (``_HOLD_ALL``).
        """
        lowest: int | None = None
        progress = self.progress
        for key in unread:
            t = progress.get(key, _HOLD_ALL)
            if lowest is None or t < lowest:
                lowest = t
        return lowest

    def ceiling(self, unread: Iterable[PartitionKey], lateness_us: int) -> int | None:
        """The watermark ceiling while ``unread`` partitions have events left (None: no ceiling)."""
        floor = self.floor(unread)
        if floor is None or floor == _HOLD_ALL:
            return floor
        return floor - lateness_us

    def plan(self, unread: Iterable[PartitionKey], now: float) -> tuple[list[PartitionKey], list[PartitionKey]]:
        """``(pause, resume)``: unread partitions now too far ahead of the slowest unread one, and paused ones
        no longer (``now``: a monotonic clock in seconds).

        The slowest unread partition is never paused, so reading always moves on; nor is one read to its end
        (live events are stored without waiting). With no unread partition, or one whose progress is unknown,
        nothing is held back. A partition paused for ``max_pause_s`` is let go for as long: an agent that
        floods one partition with old event times slows the others' catch-up, never stops it (its windows
        still wait for the ceiling, so only memory, not verdicts, depends on the pauses).
        """
        unread = set(unread)
        floor = self.floor(unread)
        if floor is None or floor == _HOLD_ALL:
            resume = sorted(self.paused)
            self.paused.clear()
            self._since.clear()
            return [], resume
        limit = floor + self.drift_us
        progress, since, cooldown = self.progress, self._since, self._cooldown
        ahead = {key for key in unread if progress.get(key, _HOLD_ALL) > limit and cooldown.get(key, 0.0) <= now}
        for key in ahead & self.paused:
            if now - since[key] >= self.max_pause_s:
                ahead.discard(key)
                cooldown[key] = now + self.max_pause_s
        pause = sorted(ahead - self.paused)
        resume = sorted(self.paused - ahead)
        for key in pause:
            since[key] = now
        for key in resume:
            since.pop(key, None)
        self.paused = ahead
        return pause, resume

    def resumed_all(self) -> None:
        """Every partition was resumed (a back-off): the next plan pauses what is still ahead."""
        self.paused.clear()
        self._since.clear()


def unread_partitions(positions: Mapping[PartitionKey, int | None],
                      ends: Mapping[PartitionKey, int]) -> list[PartitionKey]:
    """Partitions whose next offset is unknown or before the high watermark of the latest fetch."""
    return [key for key, offset in positions.items() if offset is None or key not in ends or offset < ends[key]]
