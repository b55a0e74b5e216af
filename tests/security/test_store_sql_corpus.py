"""Attack: abuse SQL through a read-only (and a read-write) session of ``agentaudit store`` (issue 11).

Every statement of ``_store_corpus.CORPUS`` is sent with the real clickhouse-connect client to a
real store process, as the ``reader`` user and as ``default`` with ``readonly = 2``; each must be
refused with the code its case names. Afterwards nothing changed: the same databases, tables and
rows, no file in the directory the corpus writes to, no process listing or host file in any reply.
The multi-statement part is also sent on a read-write session: the second statement never runs.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import httpx
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from agentaudit.infra.store import StoreServer
from tests.fixtures.store import StoreProcess, start_store_process
from tests.security._store_corpus import CORPUS, MULTI_STATEMENT, Case

pytestmark = pytest.mark.integration

PASSWORD = "corpus-admin-" + uuid.uuid4().hex
READER_PASSWORD = "corpus-reader-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreProcess]:
    server = start_store_process(tmp_path_factory.mktemp("corpus") / "data", password=PASSWORD,
                                 reader_password=READER_PASSWORD)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def target(guarded: StoreProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The agentaudit database under attack (one table, one row) and the directory no file may reach."""
    db = f"aa_{uuid.uuid4().hex[:12]}"
    admin = _client(guarded, "default", PASSWORD)
    admin.command(f"CREATE DATABASE {db}")
    admin.command(f"CREATE TABLE {db}.events (id String) ENGINE = MergeTree ORDER BY id")
    admin.command(f"INSERT INTO {db}.events VALUES ('e1')")
    out = tmp_path_factory.mktemp("outfiles")
    return {"db": db, "out": str(out)}


def _client(server: StoreProcess, user: str, password: str, **settings: Any) -> Any:
    port = int(server.url.rsplit(":", 1)[1])
    return clickhouse_connect.get_client(host="127.0.0.1", port=port, username=user, password=password,
                                         settings=settings or None, autogenerate_session_id=False)


def _snapshot(server: StoreProcess, target: dict[str, str]) -> tuple[Any, ...]:
    admin = _client(server, "default", PASSWORD)
    tables = admin.query("SELECT database, name, engine FROM system.tables WHERE database NOT IN "
                         "('system', 'INFORMATION_SCHEMA', 'information_schema') ORDER BY database, name").result_rows
    rows = admin.query(f"SELECT groupArray(id) FROM {target['db']}.events").result_rows
    files = sorted(p.name for p in Path(target["out"]).iterdir())
    return tuple(tables), tuple(rows), tuple(files)


class _Session:
    """A read-only session: the ``reader`` user, or ``default`` sending ``readonly = 2`` with each query."""

    def __init__(self, server: StoreServer | StoreProcess, kind: str) -> None:
        self.server, self.kind = server, kind
        user, password = ("reader", READER_PASSWORD) if kind == "reader-user" else ("default", PASSWORD)
        self.client = _client(server, user, password)
        self.auth = {"X-ClickHouse-User": user, "X-ClickHouse-Key": password}
        self.forced = {} if kind == "reader-user" else {"readonly": "2"}

    def query(self, sql: str, **kwargs: Any) -> Any:
        settings = {**kwargs.pop("settings", {}), **self.forced}
        return self.client.query(sql, settings=settings or None, **kwargs)

    def send(self, case: Case, target: dict[str, str]) -> str:
        sql = case.sql.replace("{db}", target["db"]).replace("{out}", target["out"])
        if case.params:
            # clickhouse-connect drops settings a read-only user cannot change; a hostile client does not
            reply = httpx.post(self.server.url, params={**case.params, **self.forced}, content=sql.encode(),
                               headers=self.auth, timeout=30)
            if reply.status_code != 200:
                raise DatabaseError(reply.text)
            return reply.text
        return self.client.raw_query(sql, settings=self.forced or None).decode(errors="replace")


def _send(client: Any, case: Case, target: dict[str, str]) -> str:
    sql = case.sql.replace("{db}", target["db"]).replace("{out}", target["out"])
    return client.raw_query(sql).decode(errors="replace")


def _refusal_code(exc: Exception) -> int:
    match = re.search(r"Code: (\d+)", str(exc))
    return int(match.group(1)) if match else -1


SESSIONS = ("reader-user", "readonly-2")


def test_corpus_is_at_least_a_hundred_distinct_statements() -> None:
    assert len(CORPUS) >= 100
    assert len({case.id for case in CORPUS}) == len(CORPUS)
    assert len({(case.sql, tuple(case.params.items())) for case in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("session", SESSIONS)
def test_every_corpus_statement_is_refused_in_a_read_only_session(
        guarded: StoreProcess, target: dict[str, str], session: str) -> None:
    """Each case: the attack its ``attack`` names, refused with its ``code``; nothing changed after all."""
    before = _snapshot(guarded, target)
    client = _Session(guarded, session)
    wrong: list[str] = []
    for case in CORPUS:
        try:
            reply = client.send(case, target)
        except DatabaseError as exc:
            code = _refusal_code(exc)
            if code != case.code:
                wrong.append(f"{case.id} ({case.attack}): refused with {code}, expected {case.code}: {str(exc)[:200]}")
            continue
        wrong.append(f"{case.id} ({case.attack}): NOT refused, replied {reply[:120]!r}")
    assert not wrong, "\n".join(wrong)
    assert _snapshot(guarded, target) == before


def test_multi_statement_text_never_runs_its_second_statement_in_a_read_write_session(
        guarded: StoreProcess, target: dict[str, str]) -> None:
    """The read-write user may run any one statement, but never two: ClickHouse's parser refuses the text."""
    before = _snapshot(guarded, target)
    client = _client(guarded, "default", PASSWORD)
    wrong = []
    for case in MULTI_STATEMENT:
        try:
            reply = _send(client, case, target)
        except DatabaseError as exc:
            if _refusal_code(exc) != case.code:
                wrong.append(f"{case.id}: {str(exc)[:200]}")
            continue
        wrong.append(f"{case.id} ({case.attack}): NOT refused, replied {reply[:120]!r}")
    assert not wrong, "\n".join(wrong)
    assert _snapshot(guarded, target) == before


def test_insert_values_rows_never_reach_the_sql_executor(guarded: StoreProcess, target: dict[str, str]) -> None:
    """Attack: ``INSERT INTO t VALUES ('x'); DROP TABLE t`` on a read-write session. The rows go
    through the Values input format only: the DROP is never a statement; the table stays."""
    client = _client(guarded, "default", PASSWORD)
    db = target["db"]
    client.command(f"CREATE TABLE {db}.victim (id String) ENGINE = MergeTree ORDER BY id")
    try:
        client.raw_query(f"INSERT INTO {db}.victim VALUES ('x'); DROP TABLE {db}.victim")
    except DatabaseError:
        pass  # refusing the trailing text is as good
    assert client.command(f"EXISTS TABLE {db}.victim") == 1
    client.command(f"DROP TABLE {db}.victim")


@pytest.mark.parametrize("session", SESSIONS)
def test_a_read_only_session_still_reads_the_agentaudit_tables(
        guarded: StoreProcess, target: dict[str, str], session: str) -> None:
    """The allow-list is not a wall: what a dashboard or an analyst runs goes through."""
    client = _Session(guarded, session)
    db = target["db"]
    assert client.query(f"SELECT id FROM {db}.events").result_rows == [("e1",)]
    assert client.query(f"SELECT count() FROM {db}.events AS e JOIN (SELECT 'e1' AS id) AS x USING id "
                        "SETTINGS join_use_nulls = 0").result_rows == [(1,)]
    assert client.query("SELECT sum(number) FROM numbers(10)").result_rows == [(45,)]
    assert client.query("SELECT name FROM system.databases WHERE name = {d:String}", parameters={"d": db}
                        ).result_rows == [(db,)]
    assert client.query(f"DESCRIBE TABLE {db}.events").result_rows[0][:2] == ("id", "String")
    assert (db,) in client.query("SHOW DATABASES").result_rows
    assert len(client.query(f"EXPLAIN SELECT * FROM {db}.events").result_rows) > 0


@pytest.mark.parametrize("session", SESSIONS)
def test_a_read_only_session_cannot_lift_the_limits_by_url_parameter(
        guarded: StoreProcess, session: str) -> None:
    """Attack: ``max_execution_time=0``, ``max_memory_usage=0`` as URL parameters. They are clamped to
    the store's limits before ``readonly = 1``; a lower value of the client's own is kept."""
    client = _Session(guarded, session)
    row = client.query("SELECT getSetting('max_execution_time'), getSetting('max_memory_usage'), "
                       "getSetting('readonly')",
                       ).result_rows[0] if session == "reader-user" else client.query(
        "SELECT getSetting('max_execution_time'), getSetting('max_memory_usage'), getSetting('readonly')",
        settings={"max_execution_time": 0, "max_memory_usage": 0}).result_rows[0]
    assert float(row[0]) == 30 and int(row[1]) == 2 << 30 and int(row[2]) == 1
    raw = httpx.post(guarded.url, params={"max_execution_time": "0", "max_memory_usage": "0", **client.forced},
                     content=b"SELECT getSetting('max_execution_time'), getSetting('max_memory_usage')",
                     headers=client.auth, timeout=30)
    assert raw.text.split() == ["30", str(2 << 30)]
    lower = httpx.post(guarded.url, params={"max_execution_time": "5", **client.forced},
                       content=b"SELECT getSetting('max_execution_time')", headers=client.auth, timeout=30)
    assert lower.text.strip() == "5"
