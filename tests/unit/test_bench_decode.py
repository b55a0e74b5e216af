"""The columnar-decode benchmark's building blocks (benchmarks/bench_decode.py) against the sink's own path.

The object container it builds from bare Avro bodies must hold exactly the records the per-record path decodes,
and a reader's table (Rust or chDB's), cast to ``ACTIONS_SCHEMA``, must equal the one ``actions_table`` builds from the
dicts, on hypothesis-generated records (nulls, unicode, empty maps and strings, extreme integers) and on
the simulator's events. The Rust readers are optional: their tests skip where they are not installed. chDB's
reader (a dependency) always runs: no test in these workers opens a chDB store in-process.
"""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentaudit.schemas import AvroCodec, frame_body
from agentaudit.schemas.validation import MAX_EVENT_TIME_US, MIN_EVENT_TIME_US
from benchmarks.bench_decode import READERS, container, hashes, sealed_schema, seals, to_actions, today

CODEC = AvroCodec("action")
ACTION = CODEC.schema.raw
ENUMS = {f["name"]: f["type"]["symbols"] for f in ACTION["fields"] if isinstance(f["type"], dict)
         and f["type"].get("type") == "enum"}

ids = st.text(min_size=1, max_size=40).filter(lambda s: len(s) <= 256)
text = st.text(max_size=40)  # any code point but surrogates: empty, accents, emoji, NUL
maybe_text = st.one_of(st.none(), text)
times = st.integers(MIN_EVENT_TIME_US, MAX_EVENT_TIME_US - 1)
big = st.integers(0, 2**63 - 1)  # Avro long, non-negative as the checks and the uint64 columns want


@st.composite
def action_records(draw: st.DrawFn) -> dict[str, Any]:
    """A record the per-record path accepts and the store's columns hold."""
    return {
        "event_id": draw(ids), "tenant": draw(ids), "agent_id": draw(ids), "agent_version": draw(text),
        "run_id": draw(text), "trace_id": draw(ids), "action_id": draw(ids), "parent_action_id": draw(maybe_text),
        "links": draw(st.lists(text, max_size=3)), "depth": draw(st.integers(0, 65535)), "stream_id": draw(ids),
        "seq": draw(big), "prev_hash": draw(text), "kind": draw(st.sampled_from(ENUMS["kind"])), "name": draw(text),
        "phase": draw(st.sampled_from(ENUMS["phase"])), "status": draw(st.sampled_from(ENUMS["status"])),
        "error_type": draw(maybe_text), "error_message": draw(maybe_text),
        "actor": {"type": draw(st.sampled_from(["agent", "human", "system"])), "id": draw(text)},
        "model": draw(maybe_text), "input_tokens": draw(big), "output_tokens": draw(big),
        "cost_usd": draw(st.floats(0, 1e300, allow_nan=False, allow_infinity=False)),
        "latency_us": draw(st.one_of(st.none(), big)), "start_time_us": draw(times),
        "end_time_us": draw(st.one_of(st.none(), times)), "event_time_us": draw(times),
        "input_digest": draw(maybe_text), "output_digest": draw(maybe_text), "input_body": draw(maybe_text),
        "output_body": draw(maybe_text), "payload_bytes": draw(big),
        "attributes": draw(st.dictionaries(text, text, max_size=3)), "environment": draw(text),
    }


batches = st.lists(action_records(), min_size=1, max_size=12).map(lambda rs: [CODEC.encode(r) for r in rs])


def _bodies(values: list[bytes]) -> list[bytes]:
    return [bytes(frame_body(v)) for v in values]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches)
def test_container_holds_what_the_per_record_path_decodes(values: list[bytes]) -> None:
    records, _, failures = CODEC.decode_batch(values)
    assert failures == []
    read = list(fastavro.reader(io.BytesIO(container(CODEC.schema.canonical_form, _bodies(values)))))
    assert read == records


def test_container_of_the_simulators_events() -> None:
    from benchmarks._stack import simulated

    values = [v for _, v in simulated(300)]
    read = list(fastavro.reader(io.BytesIO(container(CODEC.schema.canonical_form, _bodies(values)))))
    assert read == CODEC.decode_batch(values)[0]
    assert len(read) == 300


def _sealed_read(bodies: list[bytes]) -> tuple[list[dict[str, Any]], list[bytes]]:
    expected = seals(len(bodies))
    data = container(sealed_schema(CODEC.schema.canonical_form),
                     [b + s for b, s in zip(bodies, expected, strict=True)])
    return list(fastavro.reader(io.BytesIO(data))), expected


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches)
def test_sealed_container_reads_every_seal_back_and_the_records_unchanged(values: list[bytes]) -> None:
    read, expected = _sealed_read(_bodies(values))
    assert [r.pop("_seal") for r in read] == expected
    assert read == CODEC.decode_batch(values)[0]


def test_a_body_with_trailing_bytes_reads_a_wrong_seal_in_its_own_row() -> None:
    from benchmarks._stack import simulated

    bodies = _bodies([v for _, v in simulated(2)])
    read, expected = _sealed_read([bodies[0], bodies[1] + b"\x00\x00"])
    got = [r["_seal"] for r in read]
    assert got[0] == expected[0]
    assert got[1] != expected[1]


@pytest.mark.parametrize("reader", sorted(READERS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(values=batches)
def test_reader_table_equals_todays(reader: str, values: list[bytes]) -> None:
    read = _read_or_skip(reader, values)
    expected = today(CODEC, values)
    got = to_actions(read, hashes(values))
    assert got.equals(expected), got.to_pylist() != expected.to_pylist()


@pytest.mark.parametrize("reader", sorted(READERS))
def test_reader_table_equals_todays_on_simulator_events(reader: str) -> None:
    from benchmarks._stack import simulated

    values = [v for _, v in simulated(500)]
    read = _read_or_skip(reader, values)
    expected = today(CODEC, values)
    assert to_actions(read, hashes(values)).equals(expected)


def _read_or_skip(reader: str, values: list[bytes]) -> Any:
    try:
        return READERS[reader](container(CODEC.schema.canonical_form, _bodies(values)))
    except ImportError:
        pytest.skip(f"{reader} is not installed (an option measured by benchmarks/bench_decode.py, not a dependency)")
