"""When a producer stream signs: the checkpoint schedule shared by the SDK's worker and the simulator.

A stream's next event signs a checkpoint (:func:`~agentaudit.schemas.checkpoints.checkpoint_attributes`)
once ``every_events`` events of it are uncovered, or the first of them is ``every_seconds`` old; a stream
left with uncovered events gets a checkpoint point event (:data:`CHECKPOINT_NAME`) from :meth:`due` and
on flush or close. One schedule, one clock: the SDK measures seconds on ``time.monotonic``, the simulator
on event time, so its logs stay deterministic.

>>> schedule = CheckpointSchedule(key, every_events=1000, every_seconds=10.0)
>>> extra = schedule.attributes(stream_id, record, chain, now)      # None: this event does not sign
>>> record["attributes"] = {**record["attributes"], **(extra or {})}; chain.seal(record, codec)
>>> schedule.sealed(stream_id, now, signed=extra is not None)
"""

from __future__ import annotations

from typing import Any

from agentaudit.schemas import SigningKey, StreamChain
from agentaudit.schemas.checkpoints import CHECKPOINT_NAME, checkpoint_attributes

__all__ = ["CHECKPOINT_NAME", "CheckpointSchedule"]


class CheckpointSchedule:
    """Per stream: events sealed since its last checkpoint, and when the first of them was sealed.

    :param key: the producer's signing key.
    :param every_events: sign at least every this many events of a stream (``AGENTAUDIT_CHECKPOINT_EVENTS``).
    :param every_seconds: ... and at least this often while a stream has uncovered events
        (``AGENTAUDIT_CHECKPOINT_SECONDS``), on the caller's clock.
    """

    __slots__ = ("key", "every_events", "every_seconds", "checkpoints", "_uncovered")

    def __init__(self, key: SigningKey, *, every_events: int, every_seconds: float) -> None:
        self.key = key
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.checkpoints = 0  # signed so far
        self._uncovered: dict[str, list[Any]] = {}  # stream -> [events since its last checkpoint, first sealed at]

    def __bool__(self) -> bool:
        """True while some stream has events no checkpoint covers yet."""
        return bool(self._uncovered)

    def attributes(self, stream_id: str, record: dict[str, Any], chain: StreamChain, now: float,
                   force: bool = False) -> dict[str, str] | None:
        """The checkpoint attributes ``record`` (the next event of ``chain``) must carry, or None.

        :param force: sign whenever the stream has uncovered events (a checkpoint point event).
        """
        uncovered = self._uncovered.get(stream_id)
        if uncovered is None or not (force or uncovered[0] >= self.every_events
                                     or now - uncovered[1] >= self.every_seconds):
            return None
        # this event signs for every event of its stream before it (schemas.checkpoints)
        return checkpoint_attributes(self.key, tenant=record["tenant"], agent=record["agent_id"],
                                     stream_id=stream_id, seq=chain.seq, prev_hash=chain.prev_hash)

    def sealed(self, stream_id: str, now: float, *, signed: bool, point: bool = False) -> None:
        """Count an event sealed into ``stream_id``; ``signed``: it carried :meth:`attributes`;
        ``point``: it is a checkpoint point event, which carries nothing of the agent's (the tail is covered)."""
        if signed:
            self.checkpoints += 1
            if point:
                self._uncovered.pop(stream_id, None)
            else:
                self._uncovered[stream_id] = [1, now]  # the checkpoint event itself waits for the next one
            return
        state = self._uncovered.get(stream_id)
        if state is None:
            self._uncovered[stream_id] = [1, now]
        else:
            state[0] += 1

    def due(self, now: float, everything: bool = False) -> list[str]:
        """Streams whose uncovered events are ``every_seconds`` old (all with uncovered events when
        ``everything``): each needs a checkpoint point event now."""
        limit = self.every_seconds
        return [stream_id for stream_id, (_count, since) in self._uncovered.items()
                if everything or now - since >= limit]
