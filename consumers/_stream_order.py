"""Give each producer stream back its seq order when the store is read in event-time order.

The live log holds each stream in seq order (a stream is one Kafka key), but event time is not
emission time: an OpenTelemetry span's start event is emitted when the span ends, after its
children. Reading the store by event time therefore put a span's start before the events that
preceded it in its stream, and replay raised chain-break, replay and gap incidents that live
judging never saw. This holds each event back until its stream's earlier seqs have been handed
out, so each event is released at about its emission time, in the order the live log had.

A seq that never comes (dropped, or deleted from the store) must not hold its stream for ever:
the SDK marks a drop on the next event (``agentaudit.dropped_before``), which releases at once,
and any other hole is given up once the read has moved ``hold_us`` of event time past the waiting
event. The first seq of each stream in the range is asked of the store up front.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["DEFAULT_HOLD_US", "in_stream_order"]

DROPPED_ATTRIBUTE = "agentaudit.dropped_before"  # the SDK's drop marker (producers/_worker.py)
#: How much event time the read may move past an event still waiting for an earlier seq of its stream.
DEFAULT_HOLD_US = 3_600_000_000


def in_stream_order(records: Iterable[dict[str, Any]], first_seq: Mapping[str, int], *,
                    hold_us: int = DEFAULT_HOLD_US) -> Iterator[dict[str, Any]]:
    """``records`` (in event-time order) with each stream's events in seq order, released as early as possible.

    :param first_seq: the smallest seq of each stream in the range read; a stream missing here starts
        at the seq of its first record.
    """
    expected: dict[str, int] = {}
    waiting: dict[str, dict[int, list[dict[str, Any]]]] = {}
    deadlines: list[tuple[int, str, int]] = []  # (give up at, stream, seq waited for)

    def release(stream: str) -> Iterator[dict[str, Any]]:
        """Hand out what of ``stream`` no longer waits; re-arm the give-up time of what still does."""
        held = waiting.get(stream)
        moved = False
        while held:
            group = held.pop(expected[stream], None)
            if group is None:
                break
            expected[stream] += 1
            moved = True
            yield from group
        if held is not None and moved:
            if held:
                first = min(held)
                heapq.heappush(deadlines, (held[first][0]["event_time_us"] + hold_us, stream, first))
            else:
                del waiting[stream]

    for r in records:
        t = r["event_time_us"]
        while deadlines and deadlines[0][0] < t:
            _, stream, seq = heapq.heappop(deadlines)
            held = waiting.get(stream)
            if held and min(held) == seq:  # else a stale entry: the stream moved on since
                expected[stream] = seq
                yield from release(stream)
        stream, seq = r["stream_id"], r["seq"]
        nxt = expected.get(stream)
        if nxt is None:
            nxt = expected[stream] = min(first_seq.get(stream, seq), seq)
        if seq < nxt:  # the same seq again (a re-sent or conflicting copy): where the read finds it
            yield r
            continue
        if seq > nxt and _dropped_before(r) >= seq - nxt:
            expected[stream] = nxt = seq  # the SDK marked the hole: nothing more will come
        if seq == nxt:
            expected[stream] = seq + 1
            yield r
            yield from release(stream)
            continue
        held = waiting.setdefault(stream, {})
        if not held or seq < min(held):
            heapq.heappush(deadlines, (t + hold_us, stream, seq))
        held.setdefault(seq, []).append(r)
    # the end of the range: what still waits goes out stream by stream, in seq order
    for stream in sorted(waiting, key=lambda s: min(r["event_time_us"] for g in waiting[s].values() for r in g)):
        held = waiting[stream]
        for seq in sorted(held):
            yield from held[seq]
    waiting.clear()


def _dropped_before(r: dict[str, Any]) -> int:
    value = (r.get("attributes") or {}).get(DROPPED_ATTRIBUTE)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0
