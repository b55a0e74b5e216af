"""``agentaudit store`` under a hostile read-only query (issue 11): does anyone else wait?

While a read-only client runs ``SELECT sum(cityHash64(number)) FROM numbers(5e10)`` until the
store stops it at ``max_execution_time``, another read-only client sends ``SELECT 1`` in a loop
and a sink-like writer (its own process) inserts a 1,000-row Arrow batch, sleeping 50 ms between batches.
Both are measured the same way with no
hostile query first (the baseline). The store is ``python -m agentaudit.infra.store`` with a
password and a reader user, as ``agentaudit up`` starts it.

``python -m benchmarks store_hostile`` (``AGENTAUDIT_BENCH_HOSTILE_SECONDS``: the store's
``max_execution_time`` and so the length of each phase, default 10).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa

HOSTILE = "SELECT sum(cityHash64(number)) FROM numbers(5e10)"
_PASSWORD, _READER = "bench-admin", "bench-reader"
_READER_HEADERS = {"X-ClickHouse-User": "reader", "X-ClickHouse-Key": _READER}
_BATCH = 1000
_PACE = 0.05  # seconds between batches: up to 20,000 rows/s


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _p99(seconds: list[float]) -> float:
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3


def _write(url: str, seconds: float) -> None:
    """The sink-like writer (its own process, so its Arrow work never holds the measuring client's GIL):
    prints rows inserted per second."""
    from agentaudit.infra.clickhouse import connect
    from agentaudit.settings import StoreSettings

    batch = pa.table({"id": pa.array(range(_BATCH), pa.uint64()), "agent": pa.array(["a"] * _BATCH)})
    inserted = 0
    with connect(StoreSettings(clickhouse_url=url, clickhouse_password=_PASSWORD,  # type: ignore[arg-type]  # a str; pydantic makes it a SecretStr
                               database="default")) as store:
        store.insert_arrow("sink", batch)  # warm up (imports, connection)
        began = time.perf_counter()
        while time.perf_counter() - began < seconds:
            store.insert_arrow("sink", batch)  # a sink's pace, not a tight loop
            inserted += _BATCH
            time.sleep(_PACE)
    print(inserted / (time.perf_counter() - began))


def _phase(url: str, seconds: float, hostile: bool) -> dict[str, Any]:
    """SELECT 1 latencies and inserted rows for ``seconds``, with or without the hostile query running."""
    hostile_result: dict[str, Any] = {}
    me = __spec__.name if __spec__ else "benchmarks.bench_store_hostile"
    writer = subprocess.Popen([sys.executable, "-m", me, "write", url, f"{seconds - 1:g}"],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)  # the writer is warm

    def attacker() -> None:
        began = time.perf_counter()
        reply = httpx.post(url, content=HOSTILE.encode(), headers=_READER_HEADERS,
                           params={"max_execution_time": "0"}, timeout=seconds * 4)
        hostile_result.update(seconds=time.perf_counter() - began, status=reply.status_code,
                              stopped="TIMEOUT_EXCEEDED" in reply.text)

    threads = [threading.Thread(target=attacker)] if hostile else []
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # the hostile query is running
    latencies: list[float] = []
    began = time.perf_counter()
    deadline = began + seconds - 2.0
    with httpx.Client(headers=_READER_HEADERS, timeout=30) as client:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            assert client.post(url, content=b"SELECT 1").text == "1\n"
            latencies.append(time.perf_counter() - t0)
    rows_per_s = float(writer.communicate(timeout=seconds * 4)[0].split()[-1])
    for thread in threads:
        thread.join()
    return {"latencies": latencies, "rows_per_s": rows_per_s, "hostile": hostile_result}


def run() -> list[dict]:
    seconds = float(os.environ.get("AGENTAUDIT_BENCH_HOSTILE_SECONDS", "10"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTAUDIT_STORE_")}
    env.update(AGENTAUDIT_STORE_PASSWORD=_PASSWORD, AGENTAUDIT_STORE_READER_PASSWORD=_READER,
               AGENTAUDIT_STORE_MAX_EXECUTION_TIME=f"{seconds:g}")
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen([sys.executable, "-m", "agentaudit.infra.store", "--data-dir",
                                   str(Path(tmp) / "data"), "--port", str(port)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        try:
            assert server.stdout is not None
            if "serving" not in server.stdout.readline():
                raise RuntimeError("agentaudit store did not start")
            httpx.post(url, content=b"CREATE TABLE default.sink (id UInt64, agent String) ENGINE = MergeTree "
                                    b"ORDER BY id", headers={"X-ClickHouse-Key": _PASSWORD}).raise_for_status()
            calm = _phase(url, seconds, hostile=False)
            attacked = _phase(url, seconds, hostile=True)
        finally:
            server.terminate()
            server.wait(timeout=60)
    calm_p99, attacked_p99 = _p99(calm["latencies"]), _p99(attacked["latencies"])
    hostile = attacked["hostile"]
    return [
        {"name": f"SELECT 1 p99 from another reader while a hostile read runs to its {seconds:g} s limit "  # noqa: S608 - a result label, not a query
                 f"({len(attacked['latencies'])} queries)", "value": attacked_p99, "unit": "ms",
         "baseline": calm_p99, "baseline_name": "p99 with no hostile query", "ratio": attacked_p99 / calm_p99,
         "goal": "< 50 ms"},
        {"name": "sink-like Arrow inserts (1,000-row batches) while the hostile read runs",
         "value": attacked["rows_per_s"], "unit": "rows/s", "baseline": calm["rows_per_s"],
         "baseline_name": "with no hostile query", "ratio": attacked["rows_per_s"] / calm["rows_per_s"],
         "goal": "keep flowing (~1 of baseline)"},
        {"name": f"hostile read stopped by the store (HTTP {hostile.get('status')}, "
                 f"TIMEOUT_EXCEEDED={hostile.get('stopped')}, asked max_execution_time=0)",
         "value": hostile.get("seconds", float("nan")), "unit": "s", "baseline": seconds,
         "baseline_name": "max_execution_time", "ratio": hostile.get("seconds", float("nan")) / seconds,
         "goal": "~1 (stopped at the limit)"},
    ]


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "write":
        _write(sys.argv[2], float(sys.argv[3]))
        sys.exit(0)
    for row in run():
        print(row)
