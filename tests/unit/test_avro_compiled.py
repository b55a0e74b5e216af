"""The compiled Avro reader and writer against fastavro: the same bytes, the same records, on every shipped
schema's generated records and on the simulator's events; values outside the compiled cases go to fastavro.
Hostile bodies are in ``tests/security/test_avro_compiled_hostile.py``."""

from __future__ import annotations

from typing import Any

import pytest
from fastavro import parse_schema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentaudit.producers.simulator import SimConfig, Simulator
from agentaudit.schemas import AvroCodec, EncodeError, frame_body
from agentaudit.schemas._avro_compiled import compile_reader, compile_writer
from tests.avro_records import SCHEMAS, fastavro_bytes, fastavro_read, same, values_of


def test_every_shipped_schema_compiles() -> None:
    """If a schema change brought a type the compiler does not cover, the codec would silently lose its speed."""
    for name, info in SCHEMAS.items():
        assert compile_reader(info.parsed) is not None, name
        assert compile_writer(info.parsed) is not None, name


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_records_give_fastavros_bytes_and_read_back_as_fastavro_reads_them(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS[name].parsed
    record = data.draw(values_of(schema))
    write, read = compile_writer(schema), compile_reader(schema)
    assert write is not None and read is not None
    body = fastavro_bytes(schema, record)
    assert write(record) == body
    got, end = read(body, 0)
    want, want_end = fastavro_read(schema, body)
    assert end == want_end == len(body)
    assert same(got, want)


def test_the_simulators_events_byte_for_byte() -> None:
    codec = AvroCodec("action")
    schema = codec.schema.parsed
    write, read = compile_writer(schema), compile_reader(schema)
    assert write is not None and read is not None
    events = 0
    for _key, value, _ in Simulator(SimConfig(seed=3, agents=20, events=4_000)).events():
        body = bytes(frame_body(value))
        want, _end = fastavro_read(schema, body)
        assert write(want) == body
        got, end = read(body, 0)
        assert end == len(body) and same(got, want)
        events += 1
    assert events >= 4_000


def _one_action() -> dict[str, Any]:
    _key, value, _ = next(iter(Simulator(SimConfig(seed=1, agents=1, events=1)).events()))
    return fastavro_read(AvroCodec("action").schema.parsed, bytes(frame_body(value)))[0]


def _outcome(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except EncodeError as exc:
        return "error", str(exc)


# Values the compiled writer leaves to fastavro: a string for a double, a bool for a long, a float for an int, an
# unknown enum symbol, a float for a string, a non-string map value or key, a tuple for an array, an incomplete
# nested record, a long beyond 64 bits, None outside a union; and an int for a double, which it writes itself.
@pytest.mark.parametrize("change", [
    {"cost_usd": 3}, {"cost_usd": "3"}, {"seq": True}, {"depth": 2.0}, {"kind": "teleport"}, {"name": 1.5},
    {"attributes": {"a": 1}}, {"links": ("x",)}, {"actor": {"type": "agent"}}, {"seq": 2**64}, {"model": 7},
    {"attributes": {1: "a"}}, {"phase": None},
])
def test_values_outside_the_compiled_cases_are_written_or_refused_as_fastavro_does(change: dict[str, Any]) -> None:
    record = {**_one_action(), **change}
    compiled, reference = AvroCodec("action"), AvroCodec("action", compiled=False)
    assert _outcome(lambda: compiled.encode_body(record)) == _outcome(lambda: reference.encode_body(record))


def test_a_record_missing_a_field_or_of_a_dict_subclass_is_fastavros_to_judge() -> None:
    base = _one_action()

    class Record(dict[str, Any]):  # any mapping an agent framework might hand over
        pass

    missing = {k: v for k, v in base.items() if k != "environment"}
    compiled, reference = AvroCodec("action"), AvroCodec("action", compiled=False)
    for record in (missing, Record(base)):
        assert _outcome(lambda r=record: compiled.encode_body(r)) == _outcome(lambda r=record: reference.encode_body(r))


@pytest.mark.parametrize("schema", [
    {"type": "record", "name": "R", "fields": [{"name": "a", "type": ["null", "string", "long"]}]},
    {"type": "record", "name": "R", "fields": [{"name": "a", "type": {"type": "fixed", "name": "F", "size": 4}}]},
    {"type": "record", "name": "R", "fields": [{"name": "a", "type": {"type": "long", "logicalType": "timestamp-micros"}}]},
    {"type": "record", "name": "R", "fields": [{"name": "a", "type": {"type": "array", "items": "null"}}]},
    {"type": "record", "name": "R", "fields": [
        {"name": "a", "type": {"type": "record", "name": "A", "fields": [{"name": "x", "type": "long"}]}},
        {"name": "b", "type": "A"}]},
])
def test_schemas_with_other_types_get_no_compiled_code(schema: dict[str, Any]) -> None:
    parsed = parse_schema(schema)
    assert compile_reader(parsed) is None
    assert compile_writer(parsed) is None


def test_long_varints_and_negative_blocks_are_read_as_fastavro_reads_them() -> None:
    """Encodings fastavro never writes but other writers may: a block with its byte size, padded varints."""
    schema = parse_schema({"type": "record", "name": "R", "fields": [
        {"name": "n", "type": "long"}, {"name": "xs", "type": {"type": "array", "items": "string"}}]})
    read = compile_reader(schema)
    assert read is not None
    # n = 0 as a two-byte varint; then a block of -2 items with its byte size (4), "a", "b", and the end block
    body = b"\x80\x00" + b"\x03" + b"\x08" + b"\x02a" + b"\x02b" + b"\x00"
    assert read(body, 0) == fastavro_read(schema, body) == ({"n": 0, "xs": ["a", "b"]}, len(body))
    for value in (2**62, -(2**63), 2**63 - 1, -1):  # 10-byte varints
        body = fastavro_bytes(schema, {"n": value, "xs": []})
        assert read(body, 0) == fastavro_read(schema, body), value


def test_longs_and_lengths_at_every_seven_bit_step_are_written_as_fastavro_writes_them() -> None:
    """The writer builds a varint from 14-bit pieces (``_PAIR``, ``_LAST``) and a table of small longs: each
    step where a varint grows a byte, either side of it and of the table's ends, positive and negative."""
    schema = parse_schema({"type": "record", "name": "R", "fields": [
        {"name": "n", "type": "long"}, {"name": "s", "type": "string"}]})
    write, read = compile_writer(schema), compile_reader(schema)
    assert write is not None and read is not None
    edges = {0, 1 << 13, 1 << 14, 2**63 - 1, -(2**63)}
    for bits in range(1, 64):
        edges |= {(1 << bits) - 1, 1 << bits, (1 << bits) + 1}
    values = sorted(v for v in {e * sign for e in edges for sign in (1, -1)} if -(2**63) <= v < 2**63)
    for value in values:
        record = {"n": value, "s": "x" * (abs(value) % 20_000)}
        body = fastavro_bytes(schema, record)
        assert write(record) == body, value
        assert read(body, 0) == (record, len(body)), value


def test_a_varint_beyond_64_bits_is_left_to_fastavro() -> None:
    """A tenth byte may carry only the 64th bit, and there is no eleventh: the compiled reader returns no
    value for such a long (the codec then takes fastavro's verdict), and reads the ten-byte ones that fit."""
    schema = parse_schema({"type": "record", "name": "R", "fields": [
        {"name": "n", "type": "long"}, {"name": "xs", "type": {"type": "array", "items": "string"}}]})
    read = compile_reader(schema)
    assert read is not None
    for tenth in (0x00, 0x01):
        body = b"\xff" * 9 + bytes([tenth]) + b"\x00"
        assert read(body, 0) == fastavro_read(schema, body), tenth
    for too_long in (b"\xff" * 9 + b"\x02", b"\xff" * 9 + b"\x7f", b"\xff" * 10 + b"\x01", b"\x80" * 10 + b"\x00"):
        with pytest.raises(Exception) as info:
            read(too_long + b"\x00", 0)
        assert type(info.value).__name__ == "_Odd", too_long.hex()
