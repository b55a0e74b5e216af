"""``agentaudit migrate`` takes a store written in the layout before issue 15 (hex hashes, full-copy ``by_trace``)
to the current one (hashes as bytes, narrow ``by_trace``), on a real store: every row and value survives, and
every reader (signed store digests, the dashboard's trace queries, replay, the analyst views) answers the same.

The rows are written as main wrote them: main's ``actions`` DDL and ``actions_first`` view
(``tests/fixtures/layout_v1/actions.sql``), main's Arrow rows (``actions_hex_table`` is main's ``actions_table``),
and the sink's signed digests over them. Besides simulator events, rows carry what producers may send: digests
that are not SHA-256 hex, uppercase hex, all zeros, none, and a re-sent event id with another body.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas
import pyarrow as pa
import pytest

from agentaudit.consumers._columns import ACTIONS_SCHEMA, actions_hex_table
from agentaudit.consumers.digests import DigestChain, DigestSigner, digests_table, verify_store
from agentaudit.consumers.migrate import ddl_files, migrate, render, split_statements, upgrade_actions
from agentaudit.consumers.replay import read_actions
from agentaudit.dashboard import queries as q
from agentaudit.infra.clickhouse import Store, connect
from agentaudit.producers.simulator import SimConfig, Simulator
from agentaudit.schemas import AvroCodec, frame_body
from agentaudit.settings import StoreSettings

pytestmark = [pytest.mark.integration]

V1 = Path(__file__).parents[1] / "fixtures" / "layout_v1" / "tables.sql"
EVENTS = 3000
PARTITIONS = 3
_ALL = ", ".join(ACTIONS_SCHEMA.names) + ", ingested_at"
_DIGEST_COLUMNS = ("digest_id, topic, kafka_partition, first_offset, last_offset, rows, min_event_time, max_event_time, "
                   "offsets, leaves, root, prev_digest, sink_run, created_at, key_id, signature")  # main's, all of them


def _main_schema(settings: StoreSettings, tmp_path: Path) -> None:
    """Every DDL file as today, with main's actions table and actions_first view: the store main left."""
    directory = tmp_path / "ddl_v1"
    directory.mkdir()
    for path in ddl_files():
        shutil.copy(path, directory / path.name)
    v1 = {st.split("\n", 1)[0]: st for st in split_statements(V1.read_text())}
    for name in ("0001_base.sql", "0002_digests.sql"):
        path = directory / name
        statements = [v1.get(st.split("\n", 1)[0], st) for st in split_statements(path.read_text())]
        path.write_text(";\n".join(statements) + ";\n")
    views = directory / "0010_analyst_views.sql"
    views.write_text(views.read_text().replace(
        "AS SELECT *, prev_hash, event_hash, input_digest, output_digest\nFROM", "AS SELECT *\nFROM"))
    migrate(settings, directory=directory)


def _records() -> list[dict[str, Any]]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    codec = AvroCodec("action")
    out = []
    for n, (_, value, _) in enumerate(Simulator(SimConfig(seed=5, events=EVENTS, start=start)).events()):
        record = codec.decode(value)
        record.update(event_hash=hashlib.sha256(frame_body(value)).hexdigest(), _partition=n % PARTITIONS,
                      _offset=n // PARTITIONS)
        out.append(record)
    # What producers may send besides SHA-256 hex: kept verbatim, not forced into bytes.
    odd = {0: dict(input_digest="same-input"), 1: dict(output_digest=hashlib.md5(b"x").hexdigest()),  # noqa: S324 - a 32-digit digest a producer may send, not a security use
           2: dict(prev_hash=out[1]["event_hash"].upper()), 3: dict(input_digest="0" * 64, output_digest=None),
           4: dict(prev_hash="not-a-hash"), 5: dict(input_digest=None, output_digest="")}
    for index, change in odd.items():
        out[10 * index + 7].update(change)
    # A re-sent event id with another body, stored beside the first and marked (the sink's later_copy).
    copy = dict(out[100], name="crm.export", event_hash=hashlib.sha256(b"other body").hexdigest(), later_copy=1,
                _offset=out[-1]["_offset"] + 1, _partition=out[100]["_partition"])
    return [*out, copy]


def _write(store: Store, records: list[dict[str, Any]], signer: DigestSigner) -> None:
    chain = DigestChain(signer, "agentaudit.actions")
    for partition in range(PARTITIONS):
        rows = sorted((r for r in records if r["_partition"] == partition), key=lambda r: r["_offset"])
        store.insert_arrow("actions", actions_hex_table(rows))
        digests = chain.build(rows)
        store.insert_arrow("action_digests", _hex_leaves(digests_table(digests)))
        chain.advance(digests)


def _plain(frame: pandas.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as comparable values: arrays as lists, a missing value (NaN, NaT) as None."""
    return [{k: v.tolist() if isinstance(v, np.ndarray) else None if pandas.isna(v) is True else v
             for k, v in row.items()} for row in frame.to_dict("records")]


def _hex_leaves(table: pa.Table) -> pa.Table:
    """The digest rows as main's ``digests_table`` wrote them: leaves as hex strings."""
    leaves = [[leaf.hex() for leaf in row] for row in table.column("leaves_bin").to_pylist()]
    index = table.column_names.index("leaves_bin")
    return table.set_column(index, "leaves", pa.array(leaves, pa.list_(pa.string())))


def _answers(store: Store, traces: list[tuple[str, str]], conflict: dict[str, Any]) -> dict[str, Any]:
    """What every reader sees: the rows, the dashboard's trace pages, replay, the analyst views."""
    out: dict[str, Any] = {
        "rows": store.query(f"SELECT {_ALL} FROM actions ORDER BY event_id, event_hash").rows,
        "first": store.query(f"SELECT {_ALL} FROM actions_first ORDER BY event_id").rows,
        "verified": store.query("SELECT * FROM actions_verified ORDER BY tenant, stream_id, seq").rows,
        "conflicts": store.query("SELECT * FROM action_conflicts ORDER BY event_id").rows,
        "digests": store.query(f"SELECT {_DIGEST_COLUMNS} FROM action_digests ORDER BY digest_id").rows,
        "owned": store.query("SELECT * FROM actions_owned ORDER BY event_id").rows,
        "replay": [r for batch in read_actions(store) for r in batch],
        # sums of floats: the last bit depends on the order rows are read in, which the layout changes
        "recent": [dict(r, cost_usd=round(r["cost_usd"], 9)) for r in _plain(q.recent_traces(
            store, since=datetime.now(UTC) - timedelta(days=30), limit=10_000))],
        "triggering": _plain(q.triggering_events(store, conflict["tenant"], [conflict["event_id"]], conflict["trace_id"])),
    }
    for tenant, trace_id in traces:
        out[f"trace {trace_id}"] = _plain(q.trace(store, tenant, trace_id))
        out[f"tenants {trace_id}"] = q.trace_tenants(store, trace_id)
    return out


def test_a_store_written_by_main_is_migrated_with_every_value_and_answer_kept(
        store_settings_factory: Callable[[], StoreSettings], tmp_path: Path) -> None:
    settings = store_settings_factory()
    _main_schema(settings, tmp_path)
    records = _records()
    signer = DigestSigner.load_or_create(tmp_path / "sink-digest.key")
    keys = {signer.key_id: signer.public_key}
    traces = sorted({(r["tenant"], r["trace_id"]) for r in records})[:: max(1, len(records) // 200)]
    with connect(settings) as store:
        _write(store, records, signer)
        layout = store.query("SELECT name, type FROM system.columns WHERE database = {d:String} AND table = 'actions' "
                             "AND name = 'event_hash'", {"d": settings.database}).rows
        assert layout == [("event_hash", "String")]  # main's layout: the hash is a stored hex string
        before = _answers(store, traces, records[100])
        clean = verify_store(store, keys)
        assert clean.findings == [] and clean.rows == clean.covered == len(records)
    assert len(before["rows"]) == len(records) and len(before["first"]) == len(records) - 1
    assert before["conflicts"] and any(len(v) for k, v in before.items() if k.startswith("trace "))

    migrate(settings)

    with connect(settings) as store:
        stored = dict(store.query("SELECT name, type FROM system.columns WHERE database = {d:String} "
                                  "AND table = 'actions' AND name LIKE '%hash%'", {"d": settings.database}).rows)
        assert stored["event_hash_bin"] == stored["prev_hash_bin"] == "FixedString(32)"
        leaves = store.query("SELECT type FROM system.columns WHERE database = {d:String} AND table = 'action_digests' "
                             "AND name = 'leaves_bin'", {"d": settings.database}).rows
        assert leaves == [("Array(FixedString(16))",)]
        projection = store.query("SELECT query FROM system.projections WHERE database = {d:String} "
                                 "AND table = 'actions'", {"d": settings.database}).rows
        assert projection == [("SELECT _part_offset ORDER BY tenant, trace_id",)]
        after = _answers(store, traces, records[100])
        # the signed digests recompute every row's leaf over all its values: all of them survived
        migrated = verify_store(store, keys)
        assert migrated.findings == [] and migrated.rows == migrated.covered == len(records)
        assert upgrade_actions(store, settings) is False  # a current table is left alone
    assert after.keys() == before.keys()
    for name in before:
        assert after[name] == before[name], name
    odd = {r["event_id"]: r for r in records[:60]}
    kept = {row[0]: row for row in after["rows"] if row[0] in odd}
    names = ACTIONS_SCHEMA.names
    for event_id, record in odd.items():
        row = dict(zip(names, kept[event_id], strict=False))
        for column in ("prev_hash", "input_digest", "output_digest", "event_hash"):
            assert row[column] == (record[column] or ""), (event_id, column)


def test_the_upgrade_refuses_an_event_hash_the_bytes_cannot_hold(
        store_settings_factory: Callable[[], StoreSettings], tmp_path: Path) -> None:
    settings = store_settings_factory()
    _main_schema(settings, tmp_path)
    record = _records()[0]
    with connect(settings) as store:
        store.insert_arrow("actions", actions_hex_table([dict(record, event_hash="not-a-sha256")]))
    with pytest.raises(Exception, match="not SHA-256 hex") as caught:
        migrate(settings)
    assert type(caught.value).__name__ == "MigrationError"
    with connect(settings) as store:  # nothing was changed: the rows are where they were, as they were
        assert store.query("SELECT event_hash FROM actions").rows == [("not-a-sha256",)]
        assert store.query(render("EXISTS TABLE {database}.actions__upgrade", settings)).rows == [(0,)]
