"""agentaudit.infra.clickhouse.Store against the real store process: the API the sink,
migrations and the dashboard use."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pyarrow as pa
import pytest

from agentaudit.infra.clickhouse import Store, connect
from agentaudit.infra.exceptions import StoreError
from agentaudit.settings import StoreSettings
from tests.fixtures.store import StoreProcess

pytestmark = pytest.mark.integration

_DDL = "CREATE TABLE actions (id UInt64, agent String, cost Float64) ENGINE = MergeTree ORDER BY id"


def _rows(n: int) -> pa.Table:
    return pa.table({"id": pa.array(range(n), pa.uint64()), "agent": [f"bot-{i % 3}" for i in range(n)],
                     "cost": pa.array([float(i) for i in range(n)])})


def test_query_command_and_inserts(store_factory: Callable[..., Store]) -> None:
    store = store_factory()
    store.command(_DDL)
    assert store.insert_arrow("actions", _rows(10)) == 10
    assert store.insert_batch("actions", [[100, "bot-9", 1.5]], ["id", "agent", "cost"]) == 1
    assert store.insert_batch("actions", [[200, 201], ["c1", "c2"], [0.0, 0.0]], ["id", "agent", "cost"],
                              column_oriented=True) == 2
    result = store.query("SELECT agent, count() AS n FROM actions WHERE agent != {x:String} GROUP BY agent ORDER BY agent",
                         {"x": "bot-9"})
    assert result.column_names == ("agent", "n")
    assert result.named_rows()[0] == {"agent": "bot-0", "n": 4}
    assert store.command("SELECT count() FROM actions") == 13
    arrow = store.query_arrow("SELECT agent FROM actions ORDER BY id LIMIT 1")
    assert arrow.schema.field("agent").type == pa.string() and arrow.column(0)[0].as_py() == "bot-0"
    assert store.query_df("SELECT id FROM actions ORDER BY id")["id"].tolist()[-1] == 201
    assert store.ping() is True


def test_empty_results_keep_their_column_names(store_settings_factory: Callable[[], StoreSettings],
                                               store_factory: Callable[..., Store]) -> None:
    settings = store_settings_factory()
    store = store_factory(settings)
    store.command(_DDL)
    empty = store.query("SELECT agent, sum(cost) AS total FROM actions WHERE agent = {a:String} GROUP BY agent",
                        {"a": "nobody"})
    assert (empty.column_names, empty.rows) == (("agent", "total"), [])
    reader = store_factory(settings, readonly=True)
    assert reader.query("SELECT id FROM actions SETTINGS max_threads = 1;").column_names == ("id",)
    assert reader.query("SHOW TABLES LIKE 'nothing%'").column_names == ("name",)


def test_errors_keep_the_clickhouse_code_and_name_the_statement(store_factory: Callable[..., Store]) -> None:
    store = store_factory()
    with pytest.raises(StoreError) as info:
        store.query("SELECT *\nFROM missing_table")
    assert info.value.code == 60
    assert "[SELECT *]" in str(info.value) and "missing_table" in str(info.value)
    with pytest.raises(StoreError) as syntax:
        store.command("CREATE TABEL x")
    assert syntax.value.code == 62


def test_readonly_store_refuses_writes_but_reads(store_settings_factory: Callable[[], StoreSettings],
                                                 store_factory: Callable[..., Store]) -> None:
    settings = store_settings_factory()
    writer = store_factory(settings)
    writer.command(_DDL)
    writer.insert_arrow("actions", _rows(3))
    reader = store_factory(settings, readonly=True)
    assert reader.readonly and reader.query("SELECT count() FROM actions").first_item == 3
    assert reader.query("SELECT id FROM actions ORDER BY id", settings={"max_result_rows": 5}).rows == [(0,), (1,), (2,)]
    for write in (lambda: reader.insert_arrow("actions", _rows(1)), lambda: reader.command("DROP TABLE actions"),
                  lambda: reader.insert_arrow("actions", _rows(1), settings={"readonly": 0})):
        with pytest.raises(StoreError) as info:
            write()
        assert info.value.code == 164
    assert writer.command("SELECT count() FROM actions") == 3


def test_dedup_token_makes_a_retried_insert_idempotent(store_factory: Callable[..., Store]) -> None:
    store = store_factory()
    store.command(_DDL + " SETTINGS non_replicated_deduplication_window = 1000")
    for _ in range(3):
        store.insert_arrow("actions", _rows(50), settings={"insert_deduplication_token": "topic-0-42"})
    store.insert_arrow("actions", _rows(50), settings={"insert_deduplication_token": "topic-0-43"})
    assert store.command("SELECT count() FROM actions") == 100


def test_database_created_after_connect_is_adopted(store_server: StoreProcess) -> None:
    database = f"late_{uuid.uuid4().hex[:12]}"
    with connect(StoreSettings(clickhouse_url=store_server.url, database=database)) as store:
        store.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        store.command(_DDL)
        assert store.database == database
        assert store.command(f"SELECT count() FROM system.tables WHERE database = '{database}' AND name = 'actions'") == 1


def test_url_forms_and_unreachable_store(store_server: StoreProcess) -> None:
    with connect(f"{store_server.url}/system") as store:
        assert store.query("SELECT count() > 0 FROM one").first_item in (True, 1)
    with pytest.raises(StoreError) as info:
        connect("ftp://example/x")
    assert "chdb:///path" in str(info.value)
    with pytest.raises(StoreError) as unreachable:
        connect("http://127.0.0.1:1")
    assert unreachable.value.code is None and "agentaudit store" in str(unreachable.value)


_CHDB_SCRIPT = """
import sys
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.exceptions import StoreError
url = 'chdb://' + sys.argv[1]
with connect(url, database='app') as store:
    store.command('CREATE DATABASE IF NOT EXISTS app')
    store.command('CREATE TABLE t (a UInt32) ENGINE = MergeTree ORDER BY a')
    store.insert_batch('t', [[1], [2]], ['a'])
with connect(url, database='app', readonly=True) as reader:
    try:
        reader.command('DROP TABLE t')
    except StoreError as exc:
        print('drop', exc.code)
    print('rows', reader.query('SELECT count() FROM t').first_item)
    print('empty', *reader.query('SELECT a, a * 2 AS b FROM t WHERE a > 9').column_names)
with connect(url, database='app') as store:
    store.insert_batch('t', [[3]], ['a'])  # the read-only session did not stick to the shared chDB session
    print('after', store.command('SELECT count() FROM t'))
"""


def test_chdb_url_in_its_own_process(tmp_path) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _CHDB_SCRIPT, str(tmp_path / "db")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["drop", "164", "rows", "2", "empty", "a", "b", "after", "3"]


def test_chdb_url_on_a_served_directory_points_to_the_server(store_server: StoreProcess) -> None:
    import subprocess
    import sys

    script = ("from agentaudit.infra.clickhouse import connect\n"
              f"connect('chdb://{store_server.data_dir}')\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "use its http:// URL" in out.stderr


def test_one_store_is_shared_by_threads(store_factory: Callable[..., Store]) -> None:
    import threading

    store = store_factory()
    store.command(_DDL)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for batch in range(5):
                rows = _rows(200)
                ids = pa.array(range(worker * 10_000 + batch * 200, worker * 10_000 + batch * 200 + 200), pa.uint64())
                store.insert_arrow("actions", rows.set_column(0, "id", ids))
                store.query("SELECT count() FROM actions")
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert store.command("SELECT uniqExact(id) FROM actions") == 4 * 5 * 200
