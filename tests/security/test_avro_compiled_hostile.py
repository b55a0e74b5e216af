"""Anyone on the broker can write any bytes to the actions topic. The codec reads its own schema's bodies with
compiled code first (``schemas/_avro_compiled.py``); these tests try to make it accept what fastavro refuses,
read a body differently, stop short of the end unnoticed, or hang on a hostile count. The codec's verdict on
every mutated message must be exactly the fastavro-only codec's: the same record, or the same error."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentaudit.producers.simulator import SimConfig, Simulator
from agentaudit.schemas import AvroCodec, DecodeError
from benchmarks.bench_decode import links_prefix
from tests.avro_records import SCHEMAS, fastavro_bytes, same, values_of

_ACTION = SCHEMAS["action.v2"].parsed
_SIMULATED = [value for _key, value, _ in Simulator(SimConfig(seed=9, agents=5, events=200)).events()]


def _verdict(codec: AvroCodec, data: bytes) -> tuple[str, Any]:
    try:
        return "record", codec.decode(data)
    except DecodeError as exc:
        return "error", (type(exc).__name__, exc.reason, str(exc))


_COMPILED, _FASTAVRO = AvroCodec("action"), AvroCodec("action", compiled=False)


def _assert_same_verdict(data: bytes) -> None:
    got, want = _verdict(_COMPILED, data), _verdict(_FASTAVRO, data)
    assert got[0] == want[0], (got, want)
    assert same(got[1], want[1]), (got, want)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """A real or generated action message with bytes flipped, cut, inserted or repeated."""
    if draw(st.booleans()):
        data = bytearray(draw(st.sampled_from(_SIMULATED)))
    else:
        data = bytearray(_COMPILED.frame(fastavro_bytes(_ACTION, draw(values_of(_ACTION)))))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(10, max(10, len(data))))  # after the framing header: the body is what is attacked
        how = draw(st.sampled_from(["flip", "set", "cut", "insert", "truncate", "repeat"]))
        if how == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "set" and at < len(data):
            data[at] = draw(st.sampled_from([0x00, 0x01, 0x02, 0x7F, 0x80, 0xFF, 0xC0, 0xED]))
        elif how == "cut":
            del data[at:at + draw(st.integers(1, 8))]
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=12))
        elif how == "truncate":
            del data[at:]
        else:
            data[at:at] = data[at:at + draw(st.integers(1, 40))]
    return bytes(data)


@settings(max_examples=1500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_mutated())
def test_a_mutated_action_gets_the_verdict_fastavro_gives_it(data: bytes) -> None:
    _assert_same_verdict(data)


@settings(max_examples=500, deadline=None, database=None)
@given(body=st.binary(max_size=400))
def test_random_bytes_behind_a_valid_header_get_fastavros_verdict(body: bytes) -> None:
    _assert_same_verdict(_COMPILED.frame(body))


def test_hostile_counts_and_lengths_end_at_once_with_fastavros_verdict() -> None:
    """Counts and lengths far beyond the message: an array of 2**62 links, a string of 2**62 bytes, a negative
    length, a block whose item count is negative and whose byte size lies."""
    record = {**AvroCodec("action").decode(_SIMULATED[0]), "links": []}
    body = fastavro_bytes(_ACTION, record)
    links_at = len(links_prefix(body))
    assert body[links_at] == 0  # the empty array's end block
    huge = b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f"  # an item count of 2**62 - 1, as a 9-byte varint
    cases = [
        body[:links_at] + huge + body[links_at:],  # an array count of about 2**62
        body[:links_at] + b"\x01" + body[links_at:],  # count -1 with no byte size after it
        body[:links_at] + b"\x03\xfe\xff\xff\xff\x0f" + body[links_at:],  # count -2 with a lying byte size
        body[:1] + b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01" + body[1:],  # a 10-byte length for the event id
        b"\x01" + body[1:],  # a negative length for the event id
        body + b"\x00",  # a trailing byte
        body[:-1],  # one byte short
    ]
    for case in cases:
        started = time.monotonic()
        _assert_same_verdict(_COMPILED.frame(case))
        assert time.monotonic() - started < 1.0
