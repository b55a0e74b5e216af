"""Columnar decode (issue 15, item 1): the ways from Avro bytes to the sink's ``actions`` Arrow table, measured
side by side on the same records in the same run, and what each reader does with hostile bodies.

The baseline is the path before compiled readers: fastavro's per-record ``schemaless_reader``
(``AvroCodec(compiled=False).decode_batch``, with the semantic checks), the body hash, and ``actions_table``
building the columns from the dicts. Each option is timed alternately with it (best of ``REPEATS`` each), so that
load from other processes falls on both. The options:

- the sink's path today: the same with the reader compiled from the schema (``schemas/_avro_compiled.py``), also
  timed alone against fastavro alone, and the SDK's side of it, the compiled writer against fastavro's;

- the record bodies concatenated under an Avro object-container header (one block), read by a Rust reader into
  Arrow and cast to ``ACTIONS_SCHEMA``: ``polars-avro`` (arrow-rs's ``arrow-avro`` reader) and ``jetliner``
  (its own reader; it reads paths only, so the container goes to a ``memfd``). Neither is a dependency of
  agentaudit: a reader that is not installed gets a row saying so.
- the same container read by ClickHouse's own Avro input format in chDB (C++, avro-cpp underneath; from a
  ``memfd`` too), a dependency already. chDB is one engine per process, so this runs only in a process that has
  no chDB store open (the benchmarks and the tests open theirs in child processes).
- the same container read by fastavro's ``reader`` (the block reader underneath), then ``actions_table``.

``polars.read_avro`` itself is not an option: polars 2.1 panics on any Avro map ("Avro maps are mapped to
MapArrays"), and ``attributes`` is one. Each hostile body runs in a child process with a time limit, so a reader
that hangs or aborts the process is recorded as such instead of stopping the benchmark; each case also runs
sealed (:func:`seals`: a random value after each body, read back as a last field), which shows a body that did
not end where it should, but cannot stop a reader that hangs or aborts on the way.

``python -m benchmarks decode`` (``AGENTAUDIT_BENCH_DECODE_EVENTS`` sets the record count, default 20000).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from agentaudit.consumers._columns import ACTIONS_SCHEMA, actions_table, stored_actions
from agentaudit.schemas import AvroCodec, DecodeError, frame_body
from agentaudit.schemas._avro_compiled import varint

REPEATS = 3
HOSTILE_TIMEOUT_S = 15.0
_SYNC = bytes(range(16))


def container(schema_json: str, bodies: Sequence[bytes]) -> bytes:
    """An Avro object container file holding ``bodies`` (bare Avro bodies of ``schema_json``) in one block."""
    meta = [(b"avro.schema", schema_json.encode()), (b"avro.codec", b"null")]
    head = [b"Obj\x01", varint(len(meta))]
    for key, value in meta:
        head += [varint(len(key)), key, varint(len(value)), value]
    data = b"".join(bodies)
    return b"".join([*head, varint(0), _SYNC, varint(len(bodies)), varint(len(data)), data, _SYNC])


def hashes(values: Sequence[bytes]) -> list[str]:
    return [hashlib.sha256(frame_body(v)).hexdigest() for v in values]


def today(codec: AvroCodec, values: Sequence[bytes]) -> pa.Table:
    """The sink's path: per-record decode and checks, body hash, columns from the dicts."""
    records, indexes, failures = codec.decode_batch(values)
    assert not failures, failures[:1]
    for record, index in zip(records, indexes, strict=True):
        record["event_hash"] = hashlib.sha256(frame_body(values[index])).hexdigest()
    return actions_table(records, partitions=[0] * len(records), offsets=list(range(len(records))))


def to_actions(read: pa.Table, hashes: Sequence[str]) -> pa.Table:
    """A reader's Arrow table (the Avro record's own fields) cast to ``ACTIONS_SCHEMA`` and stored as the sink
    stores it (:func:`stored_actions`: hashes as bytes), the table :func:`today` builds.

    :param hashes: each body's ``event_hash``, in hex.
    """
    n = read.num_rows
    actor = read.column("actor").combine_chunks()
    columns: list[Any] = []
    for field in ACTIONS_SCHEMA:
        name = field.name
        if name == "event_hash":
            column = pa.array(hashes, pa.string())
        elif name == "kafka_partition":
            column = pa.array([0] * n, field.type)
        elif name == "kafka_offset":
            column = pa.array(range(n), field.type)
        elif name == "later_copy":
            column = pa.array([0] * n, field.type)
        elif name == "signature":
            column = pa.array([""] * n, field.type)
        elif name.startswith("actor_"):
            column = actor.field(name.removeprefix("actor_")).cast(field.type)
        else:
            column = read.column(f"{name}_us" if field.type == ACTIONS_SCHEMA.field("event_time").type else name)
            if name == "attributes" and not pa.types.is_map(column.type):  # jetliner: list<struct<key, value>>
                flat = column.combine_chunks()
                entries = flat.flatten()
                column = pa.MapArray.from_arrays(flat.offsets, entries.field("key"), entries.field("value"))
            if pa.types.is_dictionary(column.type):
                column = column.cast(pa.string())
            if name in _NULLABLE_TEXT:
                column = pc.fill_null(column.cast(pa.string()), "")
            column = column.cast(field.type)
        columns.append(column)
    return stored_actions(pa.Table.from_arrays(columns, schema=ACTIONS_SCHEMA))


_NULLABLE_TEXT = frozenset(ACTIONS_SCHEMA.names) & {
    "parent_action_id", "error_type", "error_message", "model", "input_digest", "output_digest", "input_body",
    "output_body"}


def _polars_avro(data: bytes) -> pa.Table:
    import polars_avro

    return polars_avro.read_avro(io.BytesIO(data)).to_arrow()


def _from_memfd(data: bytes, read: Callable[[str], pa.Table]) -> pa.Table:
    """``read`` of a path holding ``data`` (a ``memfd``, so nothing touches the disk), for readers of paths only."""
    fd = os.memfd_create("agentaudit-decode")
    try:
        with open(fd, "wb", closefd=False) as out:
            out.write(data)
        return read(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _jetliner(data: bytes) -> pa.Table:
    import jetliner

    return _from_memfd(data, lambda path: jetliner.read_avro(path).to_arrow())


#: chDB reads an Avro enum as a ClickHouse Enum8 (Arrow int8): the query reads each as its symbol instead
_CHDB_SQL = ("SELECT * REPLACE (toString(kind) AS kind, toString(phase) AS phase, toString(status) AS status, "
             "CAST(actor, 'Tuple(type String, id String)') AS actor) FROM file('{path}', Avro)")


def _chdb(data: bytes) -> pa.Table:
    import chdb

    return _from_memfd(data, lambda path: chdb.query(_CHDB_SQL.format(path=path), "ArrowTable"))


READERS: dict[str, Callable[[bytes], pa.Table]] = {"polars-avro": _polars_avro, "jetliner": _jetliner, "chdb": _chdb}


def real_size(codec: AvroCodec, values: Sequence[bytes], seed: int = 5) -> list[bytes]:
    """The same events with 1-8 KB input and output bodies (JSON-like text, some of it non-ASCII)."""
    import random

    rng = random.Random(seed)
    words = ["tool", "call", "résumé", "数据", "payload", "user", "assistant", "\u00e9t\u00e9", "{\"k\": 1}", "🙂"]
    out = []
    for value in values:
        record = codec.decode(value)
        record["input_body"] = " ".join(rng.choice(words) for _ in range(rng.randint(150, 1200)))
        record["output_body"] = " ".join(rng.choice(words) for _ in range(rng.randint(150, 1200)))
        out.append(codec.encode(record))
    return out


def _paired(baseline: Callable[[], Any], option: Callable[[], Any]) -> tuple[float, float, Any]:
    """Best seconds of ``baseline`` and of ``option``, run alternately so that load from other processes on a
    shared machine falls on both alike; and the option's last result."""
    base = best = float("inf")
    result = None
    for _ in range(REPEATS):
        started = time.perf_counter()
        baseline()
        base = min(base, time.perf_counter() - started)
        started = time.perf_counter()
        result = option()
        best = min(best, time.perf_counter() - started)
    return base, best, result


def measure(label: str, codec: AvroCodec, values: list[bytes]) -> list[dict]:
    """µs per record of every option on ``values``, each timed alternately with today's path in the same run."""
    import fastavro

    n = len(values)
    schema_json = codec.schema.canonical_form
    bodies = [bytes(frame_body(v)) for v in values]
    reference = AvroCodec(codec.schema.name, compiled=False)
    expected = today(reference, values)
    rows: list[dict] = []

    def timed(name: str, option: Callable[[], Any]) -> Any:
        base, seconds, result = _paired(lambda: today(reference, values), option)
        rows.append({"name": f"{name} ({label})", "value": seconds / n * 1e6, "unit": "µs/record",
                     "baseline": base / n * 1e6, "baseline_name": "fastavro per record + actions_table, "
                     "timed alternately", "ratio": base / seconds, "goal": ">= 5x"})
        return result

    def alone(name: str, baseline_name: str, baseline: Callable[[], Any], option: Callable[[], Any]) -> None:
        base, seconds, _ = _paired(baseline, option)
        rows.append({"name": f"{name} ({label})", "value": seconds / n * 1e6, "unit": "µs/record",
                     "baseline": base / n * 1e6, "baseline_name": baseline_name, "ratio": base / seconds,
                     "goal": None})

    table = timed("compiled reader per record + actions_table (the sink's path)", lambda: today(codec, values))
    assert table.equals(expected), "the compiled reader's table differs from fastavro's"
    alone("compiled reader per record, decode alone", "fastavro per record, decode alone, timed alternately",
          lambda: reference.decode_batch(values), lambda: codec.decode_batch(values))
    records = reference.decode_batch(values)[0]
    assert [codec.encode_body(r) for r in records] == bodies, "the compiled writer's bytes differ from fastavro's"
    alone("compiled writer per record (the SDK's encode_body)", "fastavro's writer, timed alternately",
          lambda: [reference.encode_body(r) for r in records], lambda: [codec.encode_body(r) for r in records])

    def fastavro_container() -> pa.Table:
        records = list(fastavro.reader(io.BytesIO(container(schema_json, bodies))))
        for record, digest in zip(records, hashes(values), strict=True):
            record["event_hash"] = digest
        return actions_table(records, partitions=[0] * n, offsets=list(range(n)))

    timed("fastavro per-record decode alone (no columns)", lambda: reference.decode_batch(values))
    table = timed("container + fastavro.reader + actions_table", fastavro_container)
    assert table.equals(expected), "fastavro container path differs from today's table"
    for name, read in READERS.items():
        try:
            read(container(schema_json, bodies[:1]))
        except ImportError:
            rows.append({"name": f"container + {name} ({label})", "value": None, "unit": "not installed",
                         "baseline": None, "baseline_name": "", "ratio": None, "goal": None})
            continue

        def columns(read: Callable[[bytes], pa.Table] = read) -> pa.Table:
            return to_actions(read(container(schema_json, bodies)), hashes(values))

        def with_dicts(columns: Callable[[], pa.Table] = columns) -> None:
            codec.decode_batch(values)  # the per-event evaluator, digests and later_copy still read dicts
            columns()

        table = timed(f"container + {name} -> Arrow, cast to ACTIONS_SCHEMA", columns)
        assert table.equals(expected), f"{name} differs from today's table"
        timed(f"container + {name} read alone", lambda read=read: read(container(schema_json, bodies)))
        timed(f"fastavro dicts (kept for the evaluator) + {name} columns", with_dicts)
    return rows


# -- hostile bodies ----------------------------------------------------------------------------------------------

#: name -> how the good bodies ``g`` (three of them) are spoilt; each read as one container block.
HOSTILE: dict[str, Callable[[list[bytes]], list[bytes]]] = {
    "2 trailing bytes after the last body": lambda g: [g[0], g[1], g[2] + b"\x00\x00"],
    "2 trailing bytes after the first body": lambda g: [g[0] + b"\x00\x00", g[1], g[2]],
    "first body cut short by 5 bytes": lambda g: [g[0][:-5], g[1], g[2]],
    "7 bytes moved from body 2 to body 1": lambda g: [g[0] + g[1][:7], g[1][7:], g[2]],
    "string length 2**60": lambda g: [varint(1 << 60) + b"abc", g[1]],
    "array count 2**40 in links": lambda g: [links_prefix(g[0]) + varint(1 << 40) + b"x", g[1]],
    "invalid UTF-8 in event_id": lambda g: [varint(3) + b"\xff\xfe\xfd" + g[0][1 + g[0][0] // 2:], g[1]],
}


def links_prefix(body: bytes) -> bytes:
    """The bytes of ``body`` before its ``links`` array: the 8 fields ahead of it, all strings or a null union."""
    pos = 0
    for index in range(8):
        if index == 7:  # parent_action_id: ["null", "string"]
            branch = body[pos]
            pos += 1
            if branch == 0:
                break
        length, shift, size = 0, 0, 0
        while True:
            byte = body[pos + size]
            length |= (byte & 0x7F) << shift
            size += 1
            shift += 7
            if not byte & 0x80:
                break
        pos += size + ((length >> 1) ^ -(length & 1))
    return body[:pos]


def sealed_schema(schema_json: str) -> str:
    """The record schema plus a last field ``_seal`` (fixed, 16 bytes) that :func:`seals` fill in."""
    raw = json.loads(schema_json)
    raw["fields"].append({"name": "_seal", "type": {"type": "fixed", "name": "Seal", "size": 16}})
    return json.dumps(raw)


def seals(count: int) -> list[bytes]:
    """A fresh random 12 bytes and the row number, one per body: a row whose ``_seal`` differs was not read
    from exactly its own body (a body's bytes cannot carry a seal drawn after it was sent)."""
    nonce = os.urandom(12)
    return [nonce + i.to_bytes(4, "big") for i in range(count)]


def _hostile_child(reader: str, case: str, sealed: bool) -> None:
    """Run in a child: read one hostile container and print what came back."""
    from benchmarks._stack import simulated

    codec = AvroCodec("action")
    good = [bytes(frame_body(v)) for _, v in simulated(3)]
    bodies = HOSTILE[case](good)
    schema, expected = codec.schema.canonical_form, []
    if sealed:
        schema, expected = sealed_schema(schema), seals(len(bodies))
    try:
        table = READERS[reader](container(schema, [b + s for b, s in zip(bodies, expected, strict=True)]
                                          if sealed else bodies))
    except BaseException as exc:  # noqa: BLE001 - a Rust panic arrives as pyo3's PanicException, a BaseException
        print(f"error {type(exc).__name__}: {str(exc)[:120]}")
        return
    rejected = 0
    for body in bodies:
        try:
            codec.decode(codec.frame(body))
        except DecodeError:
            rejected += 1
    found = f"accepted {table.num_rows} rows from {len(bodies)} bodies, of which the per-record path rejects {rejected}"
    if sealed:
        wrong = [i for i, seal in enumerate(table.column("_seal").to_pylist()) if seal != expected[i]]
        found += f"; rows with a wrong seal: {wrong}"
    print(found)


def hostile(reader: str, *, sealed: bool = False) -> list[dict]:
    """What ``reader`` does with each hostile body: an error, wrong rows, a hang or a dead process; ``sealed``,
    with a :func:`seals` field after each body."""
    rows = []
    for case in HOSTILE:
        code = (f"from benchmarks.bench_decode import _hostile_child; "
                f"_hostile_child({reader!r}, {case!r}, {sealed!r})")
        try:
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                                  timeout=HOSTILE_TIMEOUT_S, cwd=Path(__file__).resolve().parents[1],
                                  env={**os.environ, "RUST_BACKTRACE": "0"})
            last = (done.stdout.strip().splitlines() or [""])[-1]
            outcome = last if done.returncode == 0 else f"process died, exit {done.returncode}"
        except subprocess.TimeoutExpired:
            outcome = f"HANG (killed after {HOSTILE_TIMEOUT_S:.0f} s)"
        rows.append({"name": f"{reader}{', sealed' if sealed else ''}: {case}", "value": None, "unit": outcome, "baseline": None,
                     "baseline_name": "", "ratio": None, "goal": "an error, never a hang or a crash"})
    return rows


def run() -> list[dict]:
    from benchmarks._stack import simulated

    n = int(os.environ.get("AGENTAUDIT_BENCH_DECODE_EVENTS", "20000"))
    codec = AvroCodec("action")
    values = [v for _, v in simulated(n)]
    sizes = sum(len(v) for v in values) / len(values)
    rows = measure(f"simulator, {len(values)} events, {sizes:.0f} B avg", codec, values)
    big = real_size(codec, values[: max(n // 4, 1)])
    rows += measure(f"real-size, {len(big)} events, {sum(len(v) for v in big) / len(big):.0f} B avg", codec, big)
    for reader in READERS:
        if any(r["unit"] == "not installed" and reader in r["name"] for r in rows):
            continue
        rows += hostile(reader) + hostile(reader, sealed=True)
    return rows


if __name__ == "__main__":
    for r in run():
        value = "" if r["value"] is None else f"{r['value']:.2f} "
        ratio = f"  ratio {r['ratio']:.2f}x vs {r['baseline']:.2f} µs/record today" if r.get("ratio") else ""
        print(f"{r['name']}: {value}{r['unit']}{ratio}", json.dumps(r["goal"]) if r.get("goal") else "")
