"""One owner of the way from a processed batch to a commit: flush writes, snapshot rule state, commit offsets.

A consumer that stores and judges must never commit an offset whose effects are not durable:
the writes the batch caused (store inserts, dead letters, incidents) are acknowledged first, then
the rule state that judged it is snapshotted with the offsets it reached, and only then are the
offsets committed. The sink and the rules worker both go through :class:`Checkpoint`, so that
order lives in one place (the idea of quix-streams' checkpoint object).

>>> checkpoint = Checkpoint(consumer.commit, flush=[producer_confirm], snapshot=states.snapshot)
>>> checkpoint.store_offset("agentaudit.actions", 0, 1200)   # the next offset to read
>>> checkpoint.commit()                                      # flush -> snapshot -> commit
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["Checkpoint", "CommitCallback", "FlushCallback", "Offsets", "SnapshotCallback"]

#: Next offset to read, per ``(topic, partition)``.
Offsets = dict[tuple[str, int], int]
#: Makes every write of the batch durable, or raises (nothing is committed then).
FlushCallback = Callable[[], object]
#: Saves rule state as of the given offsets, or raises (nothing is committed then).
SnapshotCallback = Callable[[Offsets], None]
#: Commits the offsets to the group.
CommitCallback = Callable[[Offsets], None]


class Checkpoint:
    """The offsets one batch reached, and the order in which they become committed.

    :param commit: commits offsets to the consumer group (raises on failure).
    :param flush: callables run first, in order; each makes some writes durable (default none).
    :param snapshot: run after the flushes with the offsets about to be committed: state saved with
        them is never ahead of stored writes, and never behind the commit (default none).
    """

    __slots__ = ("_commit", "_flush", "_snapshot", "offsets")

    def __init__(self, commit: CommitCallback, *, flush: Sequence[FlushCallback] = (),
                 snapshot: SnapshotCallback | None = None) -> None:
        self._commit = commit
        self._flush = tuple(flush)
        self._snapshot = snapshot
        self.offsets: Offsets = {}

    def store_offset(self, topic: str, partition: int, next_offset: int) -> None:
        """Record that everything of ``(topic, partition)`` before ``next_offset`` is processed."""
        key = (topic, partition)
        if next_offset > self.offsets.get(key, -1):
            self.offsets[key] = next_offset

    def empty(self) -> bool:
        return not self.offsets

    def flush(self) -> None:
        """Step 1: make the batch's writes durable (a failure leaves state and offsets untouched)."""
        for flush in self._flush:
            flush()

    def snapshot(self) -> None:
        """Step 2: save rule state as of these offsets."""
        if self._snapshot is not None and self.offsets:
            self._snapshot(dict(self.offsets))

    def commit(self) -> Offsets:
        """Flush, snapshot, then commit; returns the committed offsets.

        Raises whatever a step raises; a failed flush or snapshot commits nothing, so the batch is
        re-read and re-applied (the snapshot's offsets say what was already judged).
        """
        self.flush()
        self.snapshot()
        offsets = dict(self.offsets)
        if offsets:
            self._commit(offsets)
        return offsets
