"""``agentaudit store`` speaks ClickHouse's HTTP interface: the real clickhouse-connect client
(and plain HTTP) against the real server process.

These tests import clickhouse_connect on purpose: they prove the server is compatible with the
client our wrapper and analysts use.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator

import clickhouse_connect
import httpx
import lz4.frame
import pyarrow as pa
import pytest
import zstandard
from clickhouse_connect.driver.exceptions import DatabaseError

from agentaudit.settings import StoreSettings
from tests.fixtures.store import StoreProcess, start_store_process

pytestmark = pytest.mark.integration


@pytest.fixture
def database(store_settings_factory: Callable[[], StoreSettings]) -> str:
    return store_settings_factory().database


@pytest.fixture
def client_factory(store_server: StoreProcess, database: str) -> Iterator[Callable[..., object]]:
    clients = []

    def make(**kwargs: object):
        port = int(store_server.url.rsplit(":", 1)[1])
        client = clickhouse_connect.get_client(host="127.0.0.1", port=port, database=database, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _events_table(client, name: str = "events", dedup_window: int = 0) -> str:
    extra = f" SETTINGS non_replicated_deduplication_window = {dedup_window}" if dedup_window else ""
    client.command(f"CREATE TABLE {name} (id UInt64, agent String, cost Float64, ts DateTime64(3, 'UTC')) "
                   f"ENGINE = MergeTree ORDER BY id{extra}")
    return name


def _arrow(n: int, start: int = 0) -> pa.Table:
    return pa.table({
        "id": pa.array(range(start, start + n), pa.uint64()),
        "agent": pa.array([f"a{i % 7}" for i in range(n)]),
        "cost": pa.array([i * 0.5 for i in range(n)], pa.float64()),
        "ts": pa.array([1_700_000_000_000 + i for i in range(n)], pa.timestamp("ms", tz="UTC")),
    })


def test_ping_and_root_answer_ok(store_server: StoreProcess, client_factory) -> None:
    assert httpx.get(f"{store_server.url}/ping").text == "Ok.\n"
    assert httpx.get(f"{store_server.url}/").text == "Ok.\n"
    assert client_factory().ping() is True


def test_parameters_are_bound_as_values_not_sql(client_factory) -> None:
    client = client_factory()
    _events_table(client)
    client.insert("events", [[1, "x'); DROP TABLE events; --", 1.0, 0]], column_names=["id", "agent", "cost", "ts"])
    evil = "x'); DROP TABLE events; --"
    result = client.query("SELECT id, {s:String} AS echoed FROM events WHERE agent = {s:String} AND id IN {ids:Array(UInt64)}",
                          parameters={"s": evil, "ids": [1, 2]})
    assert result.result_rows == [(1, evil)]
    assert client.command("EXISTS TABLE events") == 1


def test_insert_arrow_and_native_rows_round_trip(client_factory) -> None:
    client = client_factory()
    _events_table(client)
    client.insert_arrow("events", _arrow(1000))
    client.insert("events", [[5000, "native", 2.5, 1_700_000_000]], column_names=["id", "agent", "cost", "ts"])
    assert client.command("SELECT count() FROM events") == 1001
    table = client.query_arrow("SELECT id, agent FROM events ORDER BY id", use_strings=True)
    assert table.num_rows == 1001 and table.column("agent")[1000].as_py() == "native"
    assert client.query("SELECT sum(cost) FROM events").result_rows[0][0] == pytest.approx(
        sum(i * 0.5 for i in range(1000)) + 2.5)


@pytest.mark.parametrize("compression", ["lz4", "gzip", "zstd"])
def test_client_compression_both_ways(client_factory, compression: str) -> None:
    client = client_factory(compress=compression)
    _events_table(client)
    client.insert_arrow("events", _arrow(20_000))
    result = client.query("SELECT id, agent FROM events ORDER BY id")
    assert len(result.result_rows) == 20_000 and result.result_rows[-1] == (19_999, f"a{19_999 % 7}")


@pytest.mark.parametrize(("encoding", "decode"), [
    ("gzip", gzip.decompress),
    ("lz4", lz4.frame.decompress),
    ("zstd", lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b)),
])
def test_http_body_and_response_are_really_compressed(store_server: StoreProcess, database: str,
                                                      encoding: str, decode) -> None:
    base = {"database": database}
    httpx.post(store_server.url, params={**base, "query": "CREATE TABLE c (a UInt32) ENGINE = MergeTree ORDER BY a"}
               ).raise_for_status()
    body = "".join(f"{i}\n" for i in range(500)).encode()
    packed = {"gzip": gzip.compress, "lz4": lz4.frame.compress, "zstd": zstandard.ZstdCompressor().compress}[encoding](body)
    inserted = httpx.post(store_server.url, params={**base, "query": "INSERT INTO c FORMAT CSV"}, content=packed,
                          headers={"Content-Encoding": encoding})
    assert inserted.status_code == 200, inserted.text
    assert json.loads(inserted.headers["X-ClickHouse-Summary"])["written_rows"] == "500"
    with httpx.stream("POST", store_server.url, content=b"SELECT a FROM c ORDER BY a",
                      params={**base, "enable_http_compression": "1"},
                      headers={"Accept-Encoding": encoding}) as response:
        assert response.headers["Content-Encoding"] == encoding
        raw = b"".join(response.iter_raw())
    assert decode(raw) == body


def test_settings_apply_per_request_and_do_not_leak(client_factory) -> None:
    client = client_factory()
    with pytest.raises(DatabaseError) as info:
        client.query("SELECT number FROM numbers(100)", settings={"max_result_rows": 10})
    assert "396" in str(info.value)
    capped = client.query("SELECT number FROM numbers(100)",
                          settings={"max_result_rows": 10, "result_overflow_mode": "break", "max_block_size": 10})
    assert 10 <= len(capped.result_rows) < 100
    assert len(client.query("SELECT number FROM numbers(100)").result_rows) == 100
    assert client.command("SELECT getSetting('max_result_rows')") == 0


def test_a_dropped_current_database_is_reported_not_reused(store_server: StoreProcess) -> None:
    # The server skips USE when a request wants the database the previous one used; a DROP must undo that.
    name = f"gone_{uuid.uuid4().hex[:10]}"
    port = int(store_server.url.rsplit(":", 1)[1])
    admin = clickhouse_connect.get_client(host="127.0.0.1", port=port)
    admin.command(f"CREATE DATABASE {name}")
    user = clickhouse_connect.get_client(host="127.0.0.1", port=port, database=name)
    try:
        assert user.command("SELECT currentDatabase()") == name
        user.command(f"DROP DATABASE {name}")  # from inside it: the next request must not find it current
        with pytest.raises(DatabaseError) as info:
            user.command("SELECT currentDatabase()")
        assert "81" in str(info.value)
    finally:
        user.close()
        admin.close()


def test_responses_are_sized_and_the_connection_is_kept(store_server: StoreProcess, database: str) -> None:
    import http.client

    port = int(store_server.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", f"/?database={database}", body=b"SELECT 42")
        first = conn.getresponse()
        assert first.read() == b"42\n" and first.getheader("Content-Length") == "3"
        assert first.getheader("Transfer-Encoding") is None
        sock = conn.sock
        conn.request("POST", f"/?database={database}", body=b"SELECT number FROM numbers(3)")
        assert conn.getresponse().read() == b"0\n1\n2\n"
        assert sock is not None and conn.sock is sock  # HTTP/1.1 keep-alive: no reconnect
    finally:
        conn.close()


def test_error_code_reaches_the_client(store_server: StoreProcess, client_factory) -> None:
    with pytest.raises(DatabaseError) as info:
        client_factory().query("SELECT * FROM no_such_table")
    assert "code: 60" in str(info.value).lower()
    response = httpx.post(store_server.url, content=b"SELECT * FROM no_such_table")
    assert response.status_code >= 400 and response.headers["X-ClickHouse-Exception-Code"] == "60"
    assert response.text.startswith("Code: 60. DB::Exception:")


def test_raw_query_with_format_jsoneachrow(client_factory) -> None:
    raw = client_factory().raw_query("SELECT number AS n, toString(number) AS s FROM numbers(3) FORMAT JSONEachRow")
    assert [json.loads(line) for line in raw.decode().splitlines()] == [
        {"n": 0, "s": "0"}, {"n": 1, "s": "1"}, {"n": 2, "s": "2"}]


def test_large_result_streams_completely(client_factory) -> None:
    table = client_factory().query_arrow("SELECT number, toString(number) AS s FROM numbers(2000000)")
    assert table.num_rows == 2_000_000


_WRITER = """
import sys, clickhouse_connect
c = clickhouse_connect.get_client(host='127.0.0.1', port=int(sys.argv[1]), database=sys.argv[2])
for i in range(20):
    c.insert('events', [[10_000_000 + i * 100 + j, 'proc', 1.0, 0] for j in range(100)],
             column_names=['id', 'agent', 'cost', 'ts'])
"""


def test_concurrent_writers_from_threads_and_a_process(store_server: StoreProcess, client_factory,
                                                       database: str) -> None:
    _events_table(client_factory())
    port = store_server.url.rsplit(":", 1)[1]
    other = subprocess.Popen([sys.executable, "-c", _WRITER, port, database])
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            client = client_factory()
            for batch in range(10):
                client.insert_arrow("events", _arrow(500, start=worker * 1_000_000 + batch * 500))
                client.query("SELECT count() FROM events")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert other.wait(120) == 0
    assert errors == []
    assert client_factory().command("SELECT count() FROM events") == 4 * 10 * 500 + 20 * 100


def test_readonly_requests_cannot_write(client_factory) -> None:
    writer = client_factory()
    _events_table(writer)
    reader = client_factory(settings={"readonly": 1})
    assert reader.command("SELECT count() FROM events") == 0
    for attempt in (lambda: reader.insert("events", [[1, "x", 1.0, 0]], column_names=["id", "agent", "cost", "ts"]),
                    lambda: reader.command("DROP TABLE events"),
                    lambda: reader.command("INSERT INTO events SELECT 1, 'x', 1.0, now()")):
        with pytest.raises(DatabaseError) as info:
            attempt()
        assert "164" in str(info.value)
    assert writer.command("EXISTS TABLE events") == 1
    assert writer.command("SELECT count() FROM events") == 0


def test_dedup_token_drops_a_repeated_insert_only_with_a_window(client_factory) -> None:
    client = client_factory()
    _events_table(client, "with_window", dedup_window=100)
    _events_table(client, "without_window")
    for table in ("with_window", "without_window"):
        for _ in range(2):
            client.insert_arrow(table, _arrow(10), settings={"insert_deduplication_token": "batch-1"})
        client.insert_arrow(table, _arrow(10), settings={"insert_deduplication_token": "batch-2"})
    assert client.command("SELECT count() FROM with_window") == 20
    assert client.command("SELECT count() FROM without_window") == 30


def test_metrics_count_requests_and_rows(store_server: StoreProcess, client_factory) -> None:
    client = client_factory()
    _events_table(client)
    client.insert_arrow("events", _arrow(123))
    text = httpx.get(f"{store_server.url}/metrics").text
    assert 'agentaudit_store_requests_total{kind="insert"}' in text
    inserted = [line for line in text.splitlines() if line.startswith("agentaudit_store_inserted_rows_total")]
    assert inserted and float(inserted[0].split()[-1]) >= 123


@pytest.fixture(scope="module")
def guarded_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreProcess]:
    server = start_store_process(tmp_path_factory.mktemp("guarded") / "data", password="s3cret")
    try:
        yield server
    finally:
        server.stop()


def test_password_is_enforced(guarded_store: StoreProcess) -> None:
    port = int(guarded_store.url.rsplit(":", 1)[1])
    with pytest.raises(DatabaseError) as info:
        clickhouse_connect.get_client(host="127.0.0.1", port=port, password="wrong")
    assert "516" in str(info.value)
    assert httpx.post(guarded_store.url, content=b"SELECT 1").headers["X-ClickHouse-Exception-Code"] == "516"
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port, password="s3cret")
    try:
        assert client.command("SELECT 42") == 42
    finally:
        client.close()
    by_params = httpx.post(guarded_store.url, params={"user": "default", "password": "s3cret"}, content=b"SELECT 7")
    assert by_params.text == "7\n"
    by_header = httpx.post(guarded_store.url, headers={"X-ClickHouse-User": "default", "X-ClickHouse-Key": "s3cret"},
                           content=b"SELECT 8")
    assert by_header.text == "8\n"


def test_second_store_on_the_same_directory_refuses(store_server: StoreProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agentaudit.infra.store", "--data-dir", str(store_server.data_dir), "--port", "0"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "owned by another store process" in result.stderr
    assert httpx.get(f"{store_server.url}/ping").text == "Ok.\n"  # the owner is unharmed


def test_unknown_database_is_reported(store_server: StoreProcess) -> None:
    response = httpx.post(store_server.url, params={"database": f"missing_{uuid.uuid4().hex[:8]}"}, content=b"SELECT 1")
    assert response.headers["X-ClickHouse-Exception-Code"] == "81"


def test_sigterm_stops_cleanly_and_data_survives_a_restart(tmp_path) -> None:
    first = start_store_process(tmp_path / "data")
    try:
        httpx.post(first.url, content=b"CREATE TABLE keep (a UInt8) ENGINE = MergeTree ORDER BY a").raise_for_status()
        httpx.post(first.url, params={"query": "INSERT INTO keep FORMAT TSV"}, content=b"7\n").raise_for_status()
    finally:
        code = first.stop()
    assert code == 0 and "agentaudit store stopped" in first.log.read_text()
    second = start_store_process(tmp_path / "data")  # the directory lock was released
    try:
        assert httpx.post(second.url, content=b"SELECT a FROM keep").text == "7\n"
    finally:
        second.stop()


def test_set_and_use_stay_in_their_session(client_factory, database: str) -> None:
    analyst = client_factory()  # clickhouse-connect's default: a generated session_id per client
    other = client_factory(autogenerate_session_id=False)
    _events_table(other)
    analyst.command("SET max_result_rows = 5, result_overflow_mode = 'throw'")
    with pytest.raises(DatabaseError) as info:
        analyst.query("SELECT number FROM numbers(100)")
    assert "396" in str(info.value)
    assert len(other.query("SELECT number FROM numbers(100)").result_rows) == 100
    analyst.command("SET readonly = 1")
    with pytest.raises(DatabaseError) as denied:
        analyst.command("DROP TABLE events")
    assert "164" in str(denied.value)
    other.insert("events", [[1, "x", 1.0, 0]], column_names=["id", "agent", "cost", "ts"])  # others still write
    assert other.command("SELECT count() FROM events") == 1
    with pytest.raises(DatabaseError) as unknown:
        other.command("SET no_such_setting_xyz = 1")
    assert "115" in str(unknown.value)
    other.command("USE system")  # no session: validated, no lasting effect
    assert other.command("SELECT currentDatabase()") == database


def test_multi_statements_are_refused_like_clickhouse(store_server: StoreProcess) -> None:
    response = httpx.post(store_server.url, content=b"SELECT 1; SET max_threads = 1")
    assert response.headers["X-ClickHouse-Exception-Code"] == "62"
    assert httpx.post(store_server.url, content=b"SELECT getSetting('max_threads') = 1").text == "0\n"


def test_querying_while_iterating_a_stream_does_not_block(client_factory) -> None:
    reader, other = client_factory(), client_factory()
    seen = 0
    with reader.query_rows_stream("SELECT number FROM numbers(3000000)") as stream:
        for _row in stream:
            if seen == 0:
                assert other.command("SELECT 1") == 1  # the engine is free while the stream is read
            seen += 1
    assert seen == 3_000_000
