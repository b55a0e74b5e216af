"""Hypothesis strategies for records of a parsed Avro schema, and the fastavro reference the compiled
reader and writer (``schemas/_avro_compiled.py``) are held to."""

from __future__ import annotations

import io
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from hypothesis import strategies as st

from agentaudit.schemas import known_schemas

#: every shipped schema, by ``name.vN``
SCHEMAS = {f"{info.name}.v{info.version}": info for info in known_schemas().values()}


def values_of(schema: Any) -> st.SearchStrategy[Any]:
    """Any value of ``schema``'s type, edges included: NaN, -0.0, 64-bit extremes, astral characters."""
    if isinstance(schema, list):
        return st.one_of([values_of(branch) for branch in schema])
    kind = schema if isinstance(schema, str) else schema["type"]
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "int":
        return st.integers(-(2**31), 2**31 - 1)
    if kind == "long":
        return st.integers(-(2**63), 2**63 - 1)
    if kind == "float":
        return st.floats(width=32)
    if kind == "double":
        return st.floats() | st.integers(-(2**64), 2**64)  # an int is written as its float
    if kind == "string":
        return st.text(max_size=80)
    if kind == "bytes":
        return st.binary(max_size=80)
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(values_of(schema["items"]), max_size=4)
    if kind == "map":
        return st.dictionaries(st.text(max_size=20), values_of(schema["values"]), max_size=4)
    if kind == "record":
        return st.fixed_dictionaries({f["name"]: values_of(f["type"]) for f in schema["fields"]})
    raise AssertionError(f"no strategy for {schema!r}")


def fastavro_bytes(schema: Any, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    schemaless_writer(buffer, schema, record)
    return buffer.getvalue()


def fastavro_read(schema: Any, body: bytes) -> tuple[dict[str, Any], int]:
    """fastavro's record and where it stopped reading."""
    stream = io.BytesIO(body)
    record = schemaless_reader(stream, schema, None)
    return record, stream.tell()


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN and 0.0 told from -0.0 (``repr`` of floats round-trips)."""
    return type(a) is type(b) and repr(a) == repr(b)
