"""Bytes per event in ClickHouse: N simulator events through ``agentaudit consume`` into the
``actions`` table, merged (OPTIMIZE FINAL), then ``system.parts`` bytes_on_disk / rows. The
baseline is the same events' framed Avro size on the wire, measured in the same run.
``python -m benchmarks storage`` (``AGENTAUDIT_BENCH_STORAGE_EVENTS`` sets N, default 50000).
"""

from __future__ import annotations

import os

from agentaudit.infra.clickhouse import connect
from benchmarks._stack import embedded_stack, produce, simulated, wait_for


def run() -> list[dict]:
    total = int(os.environ.get("AGENTAUDIT_BENCH_STORAGE_EVENTS", "50000"))
    log = simulated(total)
    wire = sum(len(v) for _, v in log) / len(log)
    with embedded_stack() as stack, connect(stack.store) as store:
        produce(stack.kafka, log)
        with stack.consumer("--builtin-rules"):
            wait_for(lambda: store.query("SELECT count() FROM actions").rows[0][0] >= total, 300, "events stored")
        store.command("OPTIMIZE TABLE actions FINAL")
        rows, on_disk, compressed, raw = store.query(
            "SELECT sum(rows), sum(bytes_on_disk), sum(data_compressed_bytes), sum(data_uncompressed_bytes) "
            "FROM system.parts WHERE database = {db:String} AND table = 'actions' AND active",
            parameters={"db": stack.store.database}).rows[0]
        projections = store.query(
            "SELECT sum(bytes_on_disk) FROM system.projection_parts WHERE database = {db:String} "
            "AND table = 'actions' AND active", parameters={"db": stack.store.database}).rows[0][0] or 0
    per_event = on_disk / rows
    return [
        {"name": f"actions bytes on disk per event ({rows:,} simulator events, merged)", "value": per_event,
         "unit": "bytes", "baseline": wire, "baseline_name": "framed Avro per event (wire)",
         "ratio": per_event / wire, "goal": "< Avro wire size"},
        {"name": "  of which the by_trace projection, per event", "value": projections / rows, "unit": "bytes",
         "baseline": per_event, "baseline_name": "actions bytes on disk per event",
         "ratio": projections / on_disk, "goal": "informational"},
        {"name": "actions uncompressed column bytes per event", "value": raw / rows, "unit": "bytes",
         "baseline": compressed / rows, "baseline_name": "compressed column bytes per event",
         "ratio": raw / compressed, "goal": "compression ratio, informational"},
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
