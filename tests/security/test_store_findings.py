"""The store findings of issue 11, each replayed as the attack and now failing closed.

Every test runs against a real ``agentaudit store`` process (``python -m agentaudit.infra.store``)
with a password, a ``reader`` user and a short execution-time limit.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import httpx
import pytest

from tests.fixtures.store import StoreProcess, start_store_process

pytestmark = pytest.mark.integration

PASSWORD = "findings-" + uuid.uuid4().hex
READER_PASSWORD = "findings-reader-" + uuid.uuid4().hex
ADMIN = {"X-ClickHouse-User": "default", "X-ClickHouse-Key": PASSWORD}
READER = {"X-ClickHouse-User": "reader", "X-ClickHouse-Key": READER_PASSWORD}
HOSTILE = "SELECT sum(cityHash64(number)) FROM numbers(5e10)"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreProcess]:
    server = start_store_process(tmp_path_factory.mktemp("findings") / "data", password=PASSWORD,
                                 reader_password=READER_PASSWORD,
                                 env={"AGENTAUDIT_STORE_MAX_EXECUTION_TIME": "8"})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def db(store: StoreProcess) -> str:
    name = f"aa_{uuid.uuid4().hex[:12]}"
    _post(store, f"CREATE DATABASE {name}")
    _post(store, f"CREATE TABLE {name}.x (a UInt64) ENGINE = MergeTree ORDER BY a")
    _post(store, f"INSERT INTO {name}.x FORMAT CSV\n1\n")
    return name


def _post(store: StoreProcess, sql: str, headers: dict[str, str] | None = None, **params: str) -> httpx.Response:
    reply = httpx.post(store.url, params=params, content=sql.encode(), headers=headers or ADMIN, timeout=60)
    if headers is None:
        assert reply.status_code == 200, reply.text
    return reply


def _port(store: StoreProcess) -> int:
    return int(store.url.rsplit(":", 1)[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_dollar_quoted_multi_statement_drops_nothing(store: StoreProcess, db: str) -> None:
    """Attack (issue 11): ``SELECT $$'$$; DROP TABLE t.x; SELECT $$'$$`` with ``readonly=2`` and the
    password answered 400 but dropped the table. Now: refused by ClickHouse's parser, table intact."""
    for readonly in ("2", "0"):
        reply = _post(store, f"SELECT $$'$$; DROP TABLE {db}.x; SELECT $$'$$", ADMIN, readonly=readonly)
        assert reply.status_code == 400 and "Multi-statements are not allowed" in reply.text
        reply = _post(store, f"SELECT $$'$$; INSERT INTO {db}.x VALUES (99); SELECT $$'$$", ADMIN, readonly=readonly)
        assert reply.status_code == 400
    assert _post(store, f"SELECT groupArray(a) FROM {db}.x").text.strip() == "[1]"


def test_into_outfile_pth_and_file_url_are_refused_read_only(store: StoreProcess, tmp_path: Path) -> None:
    """Attack (issue 11): with ``readonly=2``, ``SELECT '<python>' INTO OUTFILE '<venv>/...pth'`` wrote a
    file Python runs at start; ``file('/etc/passwd')`` and ``url(...)`` read. Now all refused (164)."""
    target = tmp_path / "zz.pth"
    for headers, extra in ((ADMIN, {"readonly": "2"}), (READER, {})):
        reply = _post(store, f"SELECT 'import os; os.system(\"id\")' INTO OUTFILE '{target}' FORMAT LineAsString",
                      headers, **extra)
        assert reply.status_code == 403 and "INTO OUTFILE" in reply.text
        assert _post(store, "SELECT * FROM file('/etc/passwd', 'LineAsString')", headers, **extra).status_code == 403
        assert _post(store, "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')", headers, **extra
                     ).status_code == 403
    assert not target.exists()


def test_no_password_no_sql(store: StoreProcess) -> None:
    """Attack (issue 11): the store of ``agentaudit up`` had no password: any local user had full SQL.
    Now a store with a password refuses a request without it, a wrong one and an unknown user."""
    for headers in ({}, {"X-ClickHouse-Key": "wrong"}, {"X-ClickHouse-User": "admin", "X-ClickHouse-Key": PASSWORD},
                    {"X-ClickHouse-User": "reader", "X-ClickHouse-Key": PASSWORD}):
        reply = httpx.post(store.url, content=b"INSERT INTO FUNCTION file('x.csv', 'CSV', 'a UInt8') SELECT 1",
                           headers=headers, timeout=10)
        assert reply.status_code == 401 and "AUTHENTICATION_FAILED" in reply.text


def test_metrics_are_behind_the_password(store: StoreProcess) -> None:
    assert httpx.get(f"{store.url}/metrics", timeout=10).status_code == 401
    assert httpx.get(f"{store.url}/metrics", headers=READER, timeout=10).status_code == 200


def test_each_reply_is_its_own_after_failing_multi_statements(store: StoreProcess, db: str) -> None:
    """Attack (issue 11): after a failing multi-statement request, another client's ``SELECT 42 FORMAT
    JSON`` came back with the first client's row in front. Now: 200 rounds side by side, each reply is
    exactly its own."""
    stop = threading.Event()
    errors: list[str] = []

    def hostile() -> None:
        with httpx.Client(headers=ADMIN, timeout=30) as client:
            while not stop.is_set():
                client.post(store.url, content=f"SELECT 'LEAK' AS a FROM {db}.x; SELECT 1 FROM {db}.nope".encode())
                client.post(store.url, content=b"SELECT 'LEAK'; SELECT 2")

    threads = [threading.Thread(target=hostile) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        with httpx.Client(headers=READER, timeout=30) as client:
            for _ in range(200):
                reply = client.post(store.url, content=b"SELECT 42 FORMAT JSON")
                data = json.loads(reply.text)["data"]
                if data != [{"42": 42}]:
                    errors.append(reply.text[:200])
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors


def test_a_hostile_read_only_query_blocks_no_one_and_stops_at_its_limit(store: StoreProcess, db: str) -> None:
    """Attack (issue 11): a read-only ``SELECT sum(cityHash64(number)) FROM numbers(5e10)`` blocked every
    other query, inserts included, for 35 s. Now: other reads and inserts go on while it runs; it is
    stopped at ``max_execution_time`` (8 s here) even with ``max_execution_time=0`` asked."""
    result: dict[str, Any] = {}

    def hostile() -> None:
        started = time.monotonic()
        reply = httpx.post(store.url, params={"max_execution_time": "0"}, content=HOSTILE.encode(), headers=READER,
                           timeout=60)
        result.update(status=reply.status_code, text=reply.text, seconds=time.monotonic() - started)

    thread = threading.Thread(target=hostile)
    thread.start()
    time.sleep(1)
    latencies, inserted = [], 0
    with httpx.Client(timeout=30) as client:
        while thread.is_alive() and len(latencies) < 400:
            began = time.perf_counter()
            assert client.post(store.url, content=b"SELECT 1", headers=READER).text == "1\n"
            latencies.append(time.perf_counter() - began)
            assert client.post(store.url, params={"query": f"INSERT INTO {db}.x FORMAT CSV"}, content=b"7\n",
                               headers=ADMIN).status_code == 200
            inserted += 1
    thread.join()
    latencies.sort()
    assert inserted >= 20
    assert latencies[int(len(latencies) * 0.99) - 1] < 0.5, latencies[-5:]
    assert result["status"] == 500 and "TIMEOUT_EXCEEDED" in result["text"]
    assert 7 < result["seconds"] < 20


def test_a_query_is_killed_when_its_client_hangs_up(store: StoreProcess) -> None:
    """Attack (issue 11): the hostile query's client gave up after 3 s, the query ran on. Now it is
    killed within about a second of the hang-up (its slot is free, system.processes is empty)."""
    marker = uuid.uuid4().hex
    with pytest.raises(httpx.TimeoutException):
        httpx.post(store.url, content=f"SELECT sum(cityHash64(number)) + 0 * length('{marker}') "
                                      "FROM numbers(5e10)".encode(), headers=READER, timeout=2)
    deadline = time.monotonic() + 5
    running = "1"
    while time.monotonic() < deadline:
        running = _post(store, f"SELECT count() FROM system.processes WHERE query LIKE '%{marker}%' "
                               "AND query NOT LIKE '%system.processes%'").text.strip()
        if running == "0":
            break
        time.sleep(0.2)
    assert running == "0"


def test_an_announced_300mb_body_is_refused_before_it_is_read(store: StoreProcess) -> None:
    """Attack (issue 11): a 300 MB body took the store from 359 MB to 3 GB RSS. Now a Content-Length
    over the limit (128 MiB) is answered 413 at once, and without a password 401, before any read."""
    pid = store.process.pid
    for headers, status in ((ADMIN, 413), ({}, 401)):
        with socket.create_connection(("127.0.0.1", _port(store)), timeout=10) as sock:
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            sock.sendall(f"POST /?query=INSERT+INTO+t+FORMAT+CSV HTTP/1.1\r\nHost: x\r\n{head}"
                         f"Content-Length: {300 << 20}\r\n\r\n".encode())
            reply = sock.recv(65536).decode(errors="replace")
        assert reply.startswith(f"HTTP/1.1 {status}"), reply[:200]
        assert ("AGENTAUDIT_STORE_MAX_BODY_BYTES" in reply) == (status == 413)
    assert _rss_mb(pid) < 1024


def test_a_streamed_300mb_body_stops_at_the_limit_and_rss_stays_low(store: StoreProcess, db: str) -> None:
    """Attack: the same 300 MB as a chunked body (no length to check first), and as a gzip bomb of
    300 MB of zeros; both are cut at the limit with a clear 413 while RSS stays under 1 GB."""
    pid = store.process.pid
    piece = b"1\n" * (1 << 19)  # 1 MiB of CSV rows
    peak = [_rss_mb(pid)]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak.append(_rss_mb(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", _port(store), timeout=60)
        conn.putrequest("POST", f"/?query=INSERT+INTO+{db}.x+FORMAT+CSV")
        for key, value in {**ADMIN, "Transfer-Encoding": "chunked"}.items():
            conn.putheader(key, value)
        conn.endheaders()
        try:
            for _ in range(300):
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            conn.send(b"0\r\n\r\n")
        except OSError:
            pass  # the store answered and closed before the end: as it should
        reply = conn.getresponse()
        assert reply.status == 413 and b"AGENTAUDIT_STORE_MAX_BODY_BYTES" in reply.read()
        conn.close()
        bomb = gzip.compress(b"1\n" * (150 << 20), compresslevel=9)
        assert len(bomb) < 2 << 20
        reply2 = httpx.post(store.url, params={"query": f"INSERT INTO {db}.x FORMAT CSV"}, content=bomb,
                            headers={**ADMIN, "Content-Encoding": "gzip"}, timeout=60)
        assert reply2.status_code == 413 and "decompressed request body" in reply2.text
    finally:
        stop.set()
        sampler.join()
    assert max(peak) < 1024, f"peak RSS {max(peak):.0f} MB"
    assert _post(store, f"SELECT count() FROM {db}.x WHERE a = 1").text.strip() == "1"  # nothing of either landed


def test_a_long_statement_text_is_refused(store: StoreProcess) -> None:
    """A 2 MiB statement (not insert data) is over ``max_query_bytes`` (1 MiB): 413, nothing parsed."""
    reply = httpx.post(store.url, content=b"SELECT '" + b"a" * (2 << 20) + b"'", headers=ADMIN, timeout=30)
    assert reply.status_code == 413 and "AGENTAUDIT_STORE_MAX_QUERY_BYTES" in reply.text


def test_readers_beyond_the_queue_are_told_to_retry_and_inserts_still_pass(tmp_path: Path) -> None:
    """Attack: flood the store with hostile reads. At most 1 runs and 1 waits here; the rest get 503
    at once, and the sink's inserts, in their own lane, still land."""
    server = start_store_process(tmp_path / "data", password=PASSWORD, reader_password=READER_PASSWORD, env={
        "AGENTAUDIT_STORE_MAX_CONCURRENT_READS": "1", "AGENTAUDIT_STORE_MAX_QUEUED_READS": "1",
        "AGENTAUDIT_STORE_MAX_EXECUTION_TIME": "4", "AGENTAUDIT_STORE_READ_QUEUE_TIMEOUT": "30"})
    try:
        _post(server, "CREATE TABLE default.sink (a UInt64) ENGINE = MergeTree ORDER BY a")
        statuses: list[int] = []

        def hostile() -> None:
            statuses.append(httpx.post(server.url, content=HOSTILE.encode(), headers=READER, timeout=60).status_code)

        client = clickhouse_connect.get_client(host="127.0.0.1", port=_port(server), password=PASSWORD)
        client.insert("default.sink", [[0]], column_names=["a"])  # warm the client's lazy imports first
        threads = [threading.Thread(target=hostile) for _ in range(5)]
        for thread in threads:
            thread.start()
            time.sleep(0.2)
        began = time.monotonic()
        client.insert("default.sink", [[1], [2]], column_names=["a"])
        assert time.monotonic() - began < 2
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [500, 500, 503, 503, 503]  # two hit their limit, three were turned away
        assert client.command("SELECT count() FROM default.sink") == 3
    finally:
        server.stop()


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_stack_password_is_generated_once_and_private(tmp_path: Path) -> None:
    """``agentaudit up`` keeps the store's passwords under its home, mode 0600, the same on every start."""
    from agentaudit.infra.stack import store_credentials

    first = store_credentials(tmp_path)
    again = store_credentials(tmp_path)
    assert first == again and len(first.password) >= 32 and first.password != first.reader_password
    path = tmp_path / "store.credentials"
    assert path.stat().st_mode & 0o777 == 0o600


def test_oversized_request_line_and_headers_are_refused_before_authentication(store: StoreProcess) -> None:
    """Attack: a 70 KB URL, a 70 KB header line, 150 headers (clickhouse-connect, imported by the store,
    lifts Python's process-wide header count to 10,000). Each gets 414/431 before anything else."""
    cases = {
        b"POST /?" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n": 414,
        b"POST / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n": 431,
        b"POST / HTTP/1.1\r\n" + b"".join(b"X-H%d: a\r\n" % i for i in range(150)) + b"\r\n": 431,
        b"POST / HTTP/1.1\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 4000) for i in range(90)) + b"\r\n": 431,
    }
    for raw, status in cases.items():
        with socket.create_connection(("127.0.0.1", _port(store)), timeout=10) as sock:
            sock.sendall(raw)
            reply = sock.recv(200).decode(errors="replace")
        assert reply.startswith(f"HTTP/1.1 {status}"), reply[:80]


def test_a_read_only_session_stays_read_only_whatever_a_later_request_says(store: StoreProcess, db: str) -> None:
    """Attack: ``SET readonly = 1`` in an HTTP session, then a request of that session with ``readonly=0``
    (and with ``SET readonly = 0``) that drops a table. Both refused: the session stays read-only."""
    session = {"session_id": uuid.uuid4().hex}
    assert _post(store, "SET readonly = 1", ADMIN, **session).status_code == 200
    assert _post(store, f"DROP TABLE {db}.x", ADMIN, readonly="0", **session).status_code == 403
    assert _post(store, "SET readonly = 0", ADMIN, **session).status_code == 403
    assert _post(store, f"SELECT count() FROM {db}.x", ADMIN, **session).status_code == 200
