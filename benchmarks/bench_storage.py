"""Bytes per event in ClickHouse: N simulator events through ``agentaudit consume`` into the
``actions`` table, merged (OPTIMIZE FINAL), then ``system.parts`` bytes_on_disk / rows, projections
and skip indexes included (everything a trace lookup needs). In the same run the same rows are copied
into the layout before issue 15 (``_layout_before.py``: hex hashes, the full-copy ``by_trace``
projection) and measured the same way; the framed Avro size on the wire is the other baseline.
``python -m benchmarks storage`` (``AGENTAUDIT_BENCH_STORAGE_EVENTS`` sets N, default 50000).
"""

from __future__ import annotations

import os

from agentaudit.infra.clickhouse import Store, connect
from agentaudit.settings import StoreSettings
from benchmarks._layout_before import actions_before_ddl
from benchmarks._stack import embedded_stack, produce, simulated, wait_for


def _sizes(store: Store, database: str, table: str) -> tuple[int, float, float, float, float]:
    """``(rows, bytes on disk, of which projections, compressed column bytes, uncompressed)`` of merged parts."""
    rows, on_disk, compressed, raw = store.query(
        "SELECT sum(rows), sum(bytes_on_disk), sum(data_compressed_bytes), sum(data_uncompressed_bytes) "
        "FROM system.parts WHERE database = {db:String} AND table = {t:String} AND active",
        parameters={"db": database, "t": table}).rows[0]
    projections = store.query(
        "SELECT sum(bytes_on_disk) FROM system.projection_parts WHERE database = {db:String} "
        "AND table = {t:String} AND active", parameters={"db": database, "t": table}).rows[0][0] or 0
    return int(rows), float(on_disk), float(projections), float(compressed), float(raw)


def _copy_to_layout_before(store: Store, settings: StoreSettings) -> None:
    """The stored rows, read through the hex ALIAS columns, into main's layout."""
    store.command(actions_before_ddl(settings, "actions_before"))
    columns = [row[0] for row in store.query(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = 'actions_before' "
        "AND default_kind != 'MATERIALIZED' ORDER BY position", {"db": settings.database}).rows]
    names = ", ".join(columns)
    store.command(f"INSERT INTO actions_before ({names}) SELECT {names} FROM actions",  # noqa: S608 - names from system.columns
                  settings={"insert_deduplicate": 0})
    store.command("OPTIMIZE TABLE actions_before FINAL")


def run() -> list[dict]:
    total = int(os.environ.get("AGENTAUDIT_BENCH_STORAGE_EVENTS", "50000"))
    log = simulated(total)
    wire = sum(len(v) for _, v in log) / len(log)
    with embedded_stack() as stack, connect(stack.store) as store:
        produce(stack.kafka, log)
        with stack.consumer("--builtin-rules"):
            wait_for(lambda: store.query("SELECT count() FROM actions").rows[0][0] >= total, 300, "events stored")
        store.command("OPTIMIZE TABLE actions FINAL")
        store.command("OPTIMIZE TABLE action_digests FINAL")
        db = stack.store.database
        rows, on_disk, projections, compressed, raw = _sizes(store, db, "actions")
        _copy_to_layout_before(store, stack.store)
        rows_before, before, projections_before, _, _ = _sizes(store, db, "actions_before")
        if rows_before != rows:
            raise AssertionError(f"copied {rows_before} rows into the layout before, {rows} stored")
        digest_rows, digests, _, _, _ = _sizes(store, db, "action_digests")
    per_event, per_event_before = on_disk / rows, before / rows
    return [
        {"name": f"actions bytes on disk per event ({rows:,} simulator events, merged, trace lookup included)",
         "value": per_event, "unit": "bytes", "baseline": per_event_before,
         "baseline_name": "the same rows in the layout before issue 15 (hex hashes, full-copy by_trace)",
         "ratio": per_event / per_event_before, "goal": "<= 200 B"},
        {"name": "  the same, against the Avro on the wire", "value": per_event, "unit": "bytes", "baseline": wire,
         "baseline_name": "framed Avro per event (wire)", "ratio": per_event / wire, "goal": "< Avro wire size"},
        {"name": "  of which the by_trace projection, per event", "value": projections / rows, "unit": "bytes",
         "baseline": projections_before / rows, "baseline_name": "full-copy by_trace projection before, per event",
         "ratio": projections / projections_before if projections_before else None, "goal": "informational"},
        {"name": "actions uncompressed column bytes per event", "value": raw / rows, "unit": "bytes",
         "baseline": compressed / rows, "baseline_name": "compressed column bytes per event",
         "ratio": raw / compressed, "goal": "compression ratio, informational"},
        {"name": f"action_digests bytes on disk per stored event ({digest_rows:,} digest records)",
         "value": digests / rows, "unit": "bytes", "baseline": per_event, "baseline_name": "actions per event",
         "ratio": digests / on_disk, "goal": "informational (signed store digests, on by default)"},
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
