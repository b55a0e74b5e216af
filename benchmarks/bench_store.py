"""``agentaudit store`` overhead: ``SELECT 1`` latency (median, p99) through the HTTP server vs chDB
in-process, and a 1M-row Arrow insert through HTTP vs direct, both sides measured in the same run.

Each side runs in its own process (one process may open only one chDB directory); the server is
``python -m agentaudit.infra.store`` as in production. ``python -m benchmarks store``
(``AGENTAUDIT_BENCH_STORE_QUERIES`` default 200, ``AGENTAUDIT_BENCH_STORE_ROWS`` default 1000000).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_WARMUP = 20


def _latencies(url: str, count: int) -> list[float]:
    from agentaudit.infra.clickhouse import connect

    with connect(url) as store:
        for _ in range(_WARMUP):
            store.query("SELECT 1")
        out = []
        for _ in range(count):
            began = time.perf_counter()
            store.query("SELECT 1")
            out.append(time.perf_counter() - began)
    return out


def _child(*args: str) -> str:
    return subprocess.check_output([sys.executable, *args], text=True, timeout=900)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _quantiles(seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    return ordered[len(ordered) // 2] * 1e3, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3


def run() -> list[dict]:
    count = int(os.environ.get("AGENTAUDIT_BENCH_STORE_QUERIES", "200"))
    rows = int(os.environ.get("AGENTAUDIT_BENCH_STORE_ROWS", "1000000"))
    me = __spec__.name if __spec__ else "benchmarks.bench_store"
    insert = "benchmarks._store_load"  # its child mode prints the seconds one insert took
    with tempfile.TemporaryDirectory() as tmp:
        direct = json.loads(_child("-m", me, "latency", f"chdb://{Path(tmp) / 'direct'}", str(count)))
        direct_insert = float(_child("-m", insert, str(rows), f"chdb://{Path(tmp) / 'direct-insert'}", "none").split()[-1])
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-m", "agentaudit.infra.store", "--data-dir", str(Path(tmp) / "served"),
                                   "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert server.stdout is not None
            if "serving" not in server.stdout.readline():
                raise RuntimeError("agentaudit store did not start")
            url = f"http://127.0.0.1:{port}"
            served = json.loads(_child("-m", me, "latency", url, str(count)))
            served_insert = float(_child("-m", insert, str(rows), url, "none").split()[-1])
        finally:
            server.terminate()
            server.wait(timeout=60)
    http_median, http_p99 = _quantiles(served)
    chdb_median, chdb_p99 = _quantiles(direct)
    http_rate, chdb_rate = rows / served_insert, rows / direct_insert
    return [
        {"name": f"SELECT 1 median latency via agentaudit store HTTP ({count} sequential)", "value": http_median,
         "unit": "ms", "baseline": chdb_median, "baseline_name": "chDB in-process median",
         "ratio": http_median / chdb_median, "goal": "< 2 ms (no fixed Nagle/delayed-ACK 40 ms)"},
        {"name": f"SELECT 1 p99 latency via agentaudit store HTTP ({count} sequential)", "value": http_p99,
         "unit": "ms", "baseline": chdb_p99, "baseline_name": "chDB in-process p99",
         "ratio": http_p99 / chdb_p99, "goal": "< 5 ms"},
        {"name": f"{rows:,}-row Arrow insert via agentaudit store HTTP", "value": http_rate, "unit": "rows/s",
         "baseline": chdb_rate, "baseline_name": "direct chDB insert", "ratio": http_rate / chdb_rate,
         "goal": ">= 0.5 of direct"},
    ]


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "latency":
        print(json.dumps(_latencies(sys.argv[2], int(sys.argv[3]))))
    else:
        for row in run():
            print(row)
