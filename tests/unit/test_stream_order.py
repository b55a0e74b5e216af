"""Replay's per-stream order: the store read by event time hands each stream back in seq order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agentaudit.consumers._stream_order import in_stream_order


def ev(stream: str, seq: int, t: int, **attributes: str) -> dict:
    return {"stream_id": stream, "seq": seq, "event_time_us": t, "attributes": attributes}


def by_time(events: list[dict]) -> list[dict]:
    return sorted(events, key=lambda e: (e["event_time_us"], e["stream_id"], e["seq"]))


def keys(events) -> list[tuple[str, int]]:
    return [(e["stream_id"], e["seq"]) for e in events]


def test_a_span_start_emitted_at_its_end_waits_for_the_children_before_it():
    # OTel: child start+end (seq 0, 1), then the root's start (seq 2, time 0) and end (seq 3) at the root's end
    stream = [ev("s", 0, 10), ev("s", 1, 20), ev("s", 2, 0), ev("s", 3, 30)]
    other = [ev("o", 0, 5), ev("o", 1, 25)]
    out = keys(in_stream_order(by_time(stream + other), {"s": 0, "o": 0}))
    assert out == [("o", 0), ("s", 0), ("s", 1), ("s", 2), ("o", 1), ("s", 3)]


def test_a_range_that_starts_mid_stream_starts_at_its_first_recorded_seq():
    out = keys(in_stream_order(by_time([ev("s", 8, 0), ev("s", 7, 5), ev("s", 9, 6)]), {"s": 7}))
    assert out == [("s", 7), ("s", 8), ("s", 9)]


def test_a_hole_the_sdk_marked_as_dropped_does_not_hold_the_stream():
    events = [ev("s", 0, 0), ev("s", 4, 1, **{"agentaudit.dropped_before": "3"}), ev("s", 5, 2)]
    assert keys(in_stream_order(events, {"s": 0})) == [("s", 0), ("s", 4), ("s", 5)]


def test_an_unmarked_hole_is_given_up_once_the_read_is_hold_past_it():
    events = [ev("s", 0, 0), ev("s", 2, 10), ev("o", 0, 50), ev("o", 1, 200), ev("s", 3, 300)]
    out = keys(in_stream_order(events, {"s": 0, "o": 0}, hold_us=100))
    # s:2 waits for s:1, which never comes; given up when the read passes 10 + 100
    assert out == [("s", 0), ("o", 0), ("s", 2), ("o", 1), ("s", 3)]


def test_the_same_seq_twice_is_handed_out_where_it_is_read():
    first, copy = ev("s", 1, 5), ev("s", 1, 5)
    copy["body"] = "another"
    out = list(in_stream_order([ev("s", 0, 0), first, copy, ev("s", 2, 9)], {"s": 0}))
    assert [e.get("body") for e in out] == [None, None, "another", None]


@st.composite
def streams(draw):
    """Streams whose events carry times that may run backwards against seq (as span starts do)."""
    events = []
    for name in "abc"[:draw(st.integers(1, 3))]:
        clock = 0
        for seq in range(draw(st.integers(1, 12))):
            clock += draw(st.integers(0, 5))
            t = clock - draw(st.integers(0, 20)) if draw(st.booleans()) else clock
            events.append(ev(name, seq, t))
    return events


@settings(max_examples=300, deadline=None)
@given(streams())
def test_every_event_comes_out_once_and_each_stream_in_seq_order(events):
    first = {}
    for e in events:
        first[e["stream_id"]] = min(first.get(e["stream_id"], e["seq"]), e["seq"])
    out = list(in_stream_order(by_time(events), first))
    assert sorted(keys(out)) == sorted(keys(events))
    for name in first:
        seqs = [e["seq"] for e in out if e["stream_id"] == name]
        assert seqs == sorted(seqs)
    # released no later than needed: an event comes out before any event read after its whole prefix was read
    position = {id(e): i for i, e in enumerate(by_time(events))}
    for name in first:
        mine = [e for e in out if e["stream_id"] == name]
        for k, e in enumerate(mine):
            ready = max(position[id(x)] for x in mine[:k + 1])
            later = [x for x in out if position[id(x)] > ready]
            assert not later or out.index(e) < out.index(later[0])
