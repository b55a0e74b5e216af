"""The hash chain detects a flipped byte, a dropped event and a reordered pair."""

from __future__ import annotations

from agentaudit.schemas import ActionEvent, Actor, AvroCodec, StreamChain, body_hash, frame_body, verify_streams

T0 = 1_790_000_000_000_000


def _stream(n: int, stream_id: str = "s-1") -> list[bytes]:
    codec = AvroCodec("action")
    chain = StreamChain(stream_id)
    return [
        chain.seal(
            ActionEvent(
                event_id=f"{stream_id}-{i}", tenant="t", agent_id="a", run_id="r", trace_id="tr",
                action_id=f"a{i}", stream_id="unset", seq=0, actor=Actor(id="a"),
                start_time_us=T0 + i, event_time_us=T0 + i,
            ).to_avro(),
            codec,
        )
        for i in range(n)
    ]


def _verify(messages: list[bytes]):
    codec = AvroCodec("action", validate=False)
    return verify_streams((codec.decode(m), body_hash(frame_body(m))) for m in messages)


def test_an_intact_stream_verifies():
    assert _verify(_stream(20) + _stream(5, "s-2")) == []


def test_a_flipped_byte_is_detected():
    messages = _stream(10)
    tampered = bytearray(messages[4])
    index = tampered.index(b"s-1-4") + 4
    tampered[index] = ord("9")
    messages[4] = bytes(tampered)
    violations = _verify(messages)
    assert [(v.seq, v.kind) for v in violations] == [(5, "hash_mismatch")]


def test_a_dropped_event_is_a_gap():
    messages = _stream(10)
    del messages[6]
    violations = _verify(messages)
    assert [(v.seq, v.kind) for v in violations] == [(7, "gap")]


def test_a_reordered_pair_is_detected():
    messages = _stream(10)
    messages[3], messages[4] = messages[4], messages[3]
    violations = _verify(messages)
    assert [(v.seq, v.kind) for v in violations] == [(4, "gap"), (3, "reorder"), (5, "hash_mismatch")]


def test_the_chain_links_each_event_to_the_previous_body():
    messages = _stream(3)
    codec = AvroCodec("action")
    records = [codec.decode(m) for m in messages]
    assert [r["seq"] for r in records] == [0, 1, 2]
    assert records[0]["prev_hash"] == ""
    assert records[2]["prev_hash"] == body_hash(frame_body(messages[1]))
