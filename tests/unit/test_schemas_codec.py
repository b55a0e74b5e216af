"""The wire contract: framing, fingerprints, evolution and semantic checks."""

from __future__ import annotations

import io
import math

import pytest

from agentaudit.schemas import (
    SINGLE_OBJECT_MAGIC,
    ActionEvent,
    Actor,
    AvroCodec,
    DecodeError,
    EncodeError,
    MessageTooLargeError,
    UnknownFingerprintError,
    frame_body,
    known_schemas,
)

NOW_US = 1_790_000_000_000_000


def _action(**overrides) -> dict:
    event = ActionEvent(
        event_id="e-1",
        tenant="acme",
        agent_id="billing-bot",
        run_id="run-1",
        trace_id="t-1",
        action_id="a-1",
        stream_id="s-1",
        seq=0,
        actor=Actor(id="billing-bot"),
        kind="execute_tool",
        name="db.query",
        phase="start",
        start_time_us=NOW_US,
        event_time_us=NOW_US,
        attributes={"k": "v"},
        links=("a-0",),
    )
    return {**event.to_avro(), **overrides}


def test_single_object_framing_carries_the_writer_fingerprint():
    codec = AvroCodec("action", version=1)
    data = codec.encode(_action())
    assert data[:2] == SINGLE_OBJECT_MAGIC
    assert data[2:10] == codec.schema.fingerprint
    assert known_schemas()[data[2:10]].version == 1


def test_round_trip_preserves_every_field():
    codec = AvroCodec("action")  # the latest schema, whose fields ActionEvent has (environment since v2)
    record = _action(cost_usd=0.25, input_tokens=12, model="gpt-x", parent_action_id="a-0")
    assert codec.decode(codec.encode(record)) == record


def test_model_round_trip_through_avro():
    codec = AvroCodec("action", version=1)
    decoded = ActionEvent.from_avro(codec.decode(codec.encode(_action())))
    assert decoded.links == ("a-0",)
    assert decoded.actor.id == "billing-bot"


def test_v1_reader_reads_v2_events_and_ignores_the_new_field():
    v2 = AvroCodec("action", version=2)
    v1 = AvroCodec("action", version=1)
    decoded = v1.decode(v2.encode(_action(environment="staging")))
    assert "environment" not in decoded
    assert decoded["name"] == "db.query"


def test_v2_reader_reads_v1_events_with_the_default():
    decoded = AvroCodec("action", version=2).decode(AvroCodec("action", version=1).encode(_action()))
    assert decoded["environment"] == ""
    assert decoded["event_id"] == "e-1"


def test_unknown_fingerprint_is_named():
    data = bytearray(AvroCodec("action", version=1).encode(_action()))
    data[2:10] = b"\x01" * 8
    with pytest.raises(UnknownFingerprintError) as info:
        AvroCodec("action").decode(bytes(data))
    assert info.value.reason == "unknown_fingerprint"
    assert "0101010101010101" in str(info.value)


def test_fingerprint_of_another_family_is_rejected():
    incident_fp = AvroCodec("incident").schema.fingerprint
    data = SINGLE_OBJECT_MAGIC + incident_fp + b"\x00" * 20
    with pytest.raises(UnknownFingerprintError):
        AvroCodec("action").decode(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "bad_magic"),
        (b"garbage bytes", "bad_magic"),
        (SINGLE_OBJECT_MAGIC + b"\x00\x01", "undecodable"),
    ],
)
def test_garbage_is_a_decode_error_with_a_reason(data, reason):
    with pytest.raises(DecodeError) as info:
        AvroCodec("action").decode(data)
    assert info.value.reason == reason


def test_truncated_and_padded_bodies_are_rejected():
    codec = AvroCodec("action", version=1)
    data = codec.encode(_action())
    with pytest.raises(DecodeError, match="undecodable Avro body"):
        codec.decode(data[:-7])
    with pytest.raises(DecodeError, match="trailing bytes"):
        codec.decode(data + b"\x00\x00")


def test_an_undecodable_body_gets_the_same_reason_every_time_naming_where_it_stopped():
    """A dead letter's reason is part of the record: the same bytes must give the same text (fastavro's own
    message names its stream by memory address), and the text says where in the body decoding stopped."""
    data = AvroCodec("action").encode(_action())
    truncated = data[:-3]  # cuts into the last field
    reasons = set()
    for codec in (AvroCodec("action"), AvroCodec("action", compiled=False), AvroCodec("action")):
        kept = [io.BytesIO(b"x") for _ in range(50)]  # other objects alive, so addresses differ between calls
        with pytest.raises(DecodeError) as info:
            codec.decode(truncated)
        reasons.add(str(info.value))
        del kept
    assert len(reasons) == 1, reasons
    (reason,) = reasons
    assert "0x" not in reason and f"of the {len(truncated)}-byte message" in reason, reason


def test_oversized_message_is_rejected_before_decoding():
    codec = AvroCodec("action", max_message_bytes=100)
    with pytest.raises(MessageTooLargeError) as info:
        codec.decode(codec.encode(_action(input_body="x" * 500)))
    assert info.value.reason == "oversized"
    assert "AGENTAUDIT_MAX_MESSAGE_BYTES" in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"cost_usd": math.nan}, "cost_usd"),
        ({"cost_usd": math.inf}, "cost_usd"),
        ({"event_time_us": 253_402_300_800_000_000}, "event_time_us"),
        ({"start_time_us": 5}, "start_time_us"),
        ({"input_tokens": -3}, "token"),
        ({"agent_id": ""}, "agent_id"),
    ],
)
def test_semantically_invalid_records_are_rejected_with_the_field(overrides, needle):
    codec = AvroCodec("action")
    with pytest.raises(DecodeError) as info:
        codec.decode(codec.encode(_action(**overrides)))
    assert info.value.reason == "invalid"
    assert needle in str(info.value)


def test_encode_error_names_the_schema():
    record = _action()
    del record["tenant"]
    with pytest.raises(EncodeError, match=r"action\.v"):
        AvroCodec("action").encode(record)


def test_decode_batch_isolates_failures():
    codec = AvroCodec("action")
    good = codec.encode(_action())
    records, indexes, failures = codec.decode_batch([good, b"junk", None, good])
    assert indexes == [0, 3]
    assert len(records) == 2
    assert [(i, e.reason) for i, e in failures] == [(1, "bad_magic"), (2, "undecodable")]


def test_frame_body_strips_the_header():
    codec = AvroCodec("action", version=1)
    record = _action()
    assert bytes(frame_body(codec.encode(record))) == codec.encode_body(record)


def test_confluent_wire_format_through_the_schema_registry_client():
    # mock:// is confluent_kafka.schema_registry's own in-process registry; no SR server runs here.
    codec = AvroCodec("action", schema_registry_url="mock://agentaudit-test", topic="actions")
    data = codec.encode(_action())
    assert data[0] == 0
    assert codec.decode(data)["event_id"] == "e-1"
    plain = AvroCodec("action")
    with pytest.raises(DecodeError, match="no schema registry"):
        plain.decode(data)
