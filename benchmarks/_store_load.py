"""Insert throughput: 1M-row Arrow insert through ``agentaudit store`` (HTTP) vs direct chDB.

Run: ``python -m benchmarks._store_load [rows]``. Prints rows/s; not part of the tests.
Each side runs in its own process, since one process may open only one chDB directory.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

_DDL = ("CREATE TABLE bench (id UInt64, agent String, tool LowCardinality(String), cost Float64, "
        "ts DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY id")


def _table(rows: int) -> pa.Table:
    return pa.table({
        "id": pa.array(range(rows), pa.uint64()),
        "agent": pa.array([f"agent-{i % 1000}" for i in range(rows)]),
        "tool": pa.array([("search", "shell", "http")[i % 3] for i in range(rows)]),
        "cost": pa.array([i * 0.001 for i in range(rows)], pa.float64()),
        "ts": pa.array([1_700_000_000_000 + i for i in range(rows)], pa.timestamp("ms", tz="UTC")),
    })


def _measure(url: str, rows: int, compression: str) -> float:
    from agentaudit.infra.clickhouse import connect
    from agentaudit.settings import StoreSettings

    table = _table(rows)
    target = url if url.startswith("chdb") else StoreSettings(clickhouse_url=url, database="default",
                                                             compression=compression)  # type: ignore[arg-type]  # a checked choice
    with connect(target) as store:
        store.command("DROP TABLE IF EXISTS bench")
        store.command(_DDL)
        started = time.perf_counter()
        store.insert_arrow("bench", table)
        elapsed = time.perf_counter() - started
        assert store.command("SELECT count() FROM bench") == rows
    return elapsed


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    if len(sys.argv) > 3:  # child: measure one target
        print(_measure(sys.argv[2], rows, sys.argv[3]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        direct = float(subprocess.check_output([sys.executable, "-m", __spec__.name, str(rows),
                                                f"chdb://{Path(tmp) / 'direct'}", "none"], text=True).split()[-1])
        from agentaudit.infra.store.server import StoreServer

        with StoreServer(Path(tmp) / "served", port=0) as server:
            server.start_in_thread()
            # The client runs in another process, as in production.
            results = {c: float(subprocess.check_output([sys.executable, "-m", __spec__.name, str(rows), server.url, c],
                                                        text=True).split()[-1]) for c in ("none", "lz4")}
    print(f"{rows:,} rows Arrow insert: direct chDB {direct:.2f}s ({rows / direct:,.0f} rows/s)")
    for compression, seconds in results.items():
        print(f"  via agentaudit store HTTP, compress={compression}: {seconds:.2f}s ({rows / seconds:,.0f} rows/s)")


if __name__ == "__main__":
    main()
