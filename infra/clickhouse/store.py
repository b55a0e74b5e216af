"""The one wrapper around clickhouse-connect: :func:`connect` and :class:`Store`.

Everything in agentaudit that talks to ClickHouse (the sink, migrations, the dashboard,
tests) goes through a :class:`Store`, so errors come out as :class:`StoreError` with the
ClickHouse exception code, and switching between the ``agentaudit store`` server, a
production ClickHouse server and an in-process chDB directory is only a URL change.

>>> with connect("http://127.0.0.1:8123/agentaudit") as store:
...     store.query("SELECT count() FROM actions WHERE agent_id = {a:String}", {"a": "bot-1"}).first_item
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError

from agentaudit.infra.clickhouse._errors import store_error
from agentaudit.infra.exceptions import StoreError
from agentaudit.settings import StoreSettings

if TYPE_CHECKING:
    import pandas
    import pyarrow

__all__ = ["QueryResult", "Store", "connect"]

# ClickHouse's "readonly" levels: 1 forbids writes AND changing settings per query, 2 forbids
# writes but lets a query set e.g. max_result_rows. Read-only sessions we open use 2.
_READONLY_LEVEL = "2"


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Rows of a query with their column names (row-oriented tuples)."""

    column_names: tuple[str, ...]
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def first_row(self) -> tuple[Any, ...] | None:
        """The first row, or ``None`` when there is none."""
        return self.rows[0] if self.rows else None

    @property
    def first_item(self) -> Any:
        """The first column of the first row (``SELECT count() ...``), ``None`` when empty."""
        return self.rows[0][0] if self.rows else None

    def named_rows(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name; handy for small results and JSON."""
        names = self.column_names
        return [dict(zip(names, row, strict=True)) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)


class Store:
    """A connection to ClickHouse (server over HTTP, or in-process chDB).

    Thread-safe for the HTTP transport (clickhouse-connect pools connections, and no
    server session is used). Create with :func:`connect`; close with :meth:`close` or
    ``with``.

    >>> with connect(StoreSettings()) as store:
    ...     store.insert_arrow("actions", table, settings={"insert_deduplication_token": token})
    """

    def __init__(self, client: Any, *, where: str, database: str | None, readonly: bool,
                 default_settings: Mapping[str, str] | None = None, chdb: bool = False) -> None:
        self._client = client
        self._where = where
        self._readonly = readonly
        self._chdb = chdb
        self._defaults = dict(default_settings or {})
        # A database that does not exist yet (before `agentaudit migrate`) is taken on
        # after the command that creates it.
        self._pending_database: str | None = None
        self._database = database
        if database is not None:
            self._use(database)

    # -- introspection -----------------------------------------------------------------

    @property
    def where(self) -> str:
        """The URL (password masked) this store talks to, for logs and messages."""
        return self._where

    @property
    def database(self) -> str | None:
        """The database unqualified table names refer to (``None``: the server default)."""
        return self._database

    @property
    def readonly(self) -> bool:
        """Whether this session refuses writes."""
        return self._readonly

    # -- statements --------------------------------------------------------------------

    def command(self, sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None = None,
                settings: Mapping[str, Any] | None = None) -> Any:
        """Run a statement that returns no table (DDL, ``INSERT ... SELECT``, ``OPTIMIZE``).

        Returns the single value a scalar statement yields (``SELECT 1`` -> ``1``), else ``None``.
        """
        with self._translating("command", sql):
            if self._readonly and self._chdb:
                # chDB applies command settings with SET on a process-shared session and cannot
                # reset `readonly` afterwards, so read-only chDB commands go through query().
                result = self._client.query(sql, parameters=parameters, settings=self._settings(settings))
                rows = result.result_rows
                return rows[0][0] if rows and len(rows[0]) == 1 else None
            value = self._client.command(sql, parameters=parameters, settings=self._settings(settings))
        if self._pending_database is not None:
            self._adopt_pending_database()
        if isinstance(value, (str, int, float)) or value is None:
            return value
        if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
            return list(value)
        return None  # a QuerySummary: nothing to return

    def query(self, sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None = None,
              settings: Mapping[str, Any] | None = None) -> QueryResult:
        """Run a ``SELECT``; ``{name:Type}`` placeholders are bound server-side from ``parameters``."""
        with self._translating("query", sql):
            result = self._client.query(sql, parameters=parameters, settings=self._settings(settings))
            names = tuple(result.column_names)
            rows = list(result.result_rows)
            if not names and not rows:
                names = self._empty_result_names(sql, parameters, settings)
            return QueryResult(names, rows)

    def query_arrow(self, sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None = None,
                    settings: Mapping[str, Any] | None = None) -> pyarrow.Table:
        """Run a ``SELECT`` and return an Arrow table (strings as ``string``, not binary)."""
        with self._translating("query_arrow", sql):
            return self._client.query_arrow(sql, parameters=parameters, settings=self._settings(settings),
                                            use_strings=True)

    def query_df(self, sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None = None,
                 settings: Mapping[str, Any] | None = None) -> pandas.DataFrame:
        """Run a ``SELECT`` and return a pandas DataFrame (for the dashboard and notebooks)."""
        with self._translating("query_df", sql):
            frame: pandas.DataFrame = self._client.query_df(sql, parameters=parameters, settings=self._settings(settings))
            return frame

    def insert_arrow(self, table: str, arrow_table: pyarrow.Table,
                     settings: Mapping[str, Any] | None = None) -> int:
        """Insert an Arrow table as one block; returns the rows sent.

        Pass ``settings={"insert_deduplication_token": token}`` to make a retried insert
        idempotent: ClickHouse drops a block whose token it has seen (replicated tables always;
        non-replicated MergeTree only with ``SETTINGS non_replicated_deduplication_window = N``).
        """
        with self._translating("insert_arrow", f"INSERT INTO {table} FORMAT Arrow"):
            self._client.insert_arrow(table, arrow_table, settings=self._settings(settings))
        rows: int = arrow_table.num_rows
        return rows

    def insert_batch(self, table: str, data: Sequence[Sequence[Any]], column_names: Sequence[str], *,
                     column_oriented: bool = False, settings: Mapping[str, Any] | None = None) -> int:
        """Insert Python rows (or columns, with ``column_oriented=True``) as a Native block.

        Returns the rows sent.
        """
        with self._translating("insert_batch", f"INSERT INTO {table} FORMAT Native"):
            self._client.insert(table, data, column_names=list(column_names), column_oriented=column_oriented,
                                settings=self._settings(settings))
        if column_oriented:
            return len(data[0]) if data else 0
        return len(data)

    def ping(self) -> bool:
        """Whether the store answers (never raises)."""
        try:
            return bool(self._client.ping())
        except Exception:  # noqa: BLE001 - a health probe reports, it does not fail
            return False

    def close(self) -> None:
        """Release the connection pool (or the chDB session reference)."""
        try:
            self._client.close()
        except Exception as exc:
            raise store_error(exc, action="close", where=self._where) from exc

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = ", readonly" if self._readonly else ""
        return f"Store({self._where!r}, database={self._database!r}{mode})"

    # -- internals ---------------------------------------------------------------------

    def _settings(self, settings: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if not settings and not self._defaults:
            return None
        merged = dict(self._defaults)
        if settings:
            merged.update(settings)  # the caller's explicit settings win
        if self._readonly and "readonly" in self._defaults:
            merged["readonly"] = self._defaults["readonly"]  # ... except that a read-only store stays so
        return merged

    def _empty_result_names(self, sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None,
                            settings: Mapping[str, Any] | None) -> tuple[str, ...]:
        """Column names of a query that returned nothing.

        chDB sends no Native block at all for an empty result (a ClickHouse server sends a header
        block), so names come from ``DESCRIBE`` (parsed, not run), else from an Arrow schema.
        """
        statement = sql.strip().rstrip(";")
        try:
            described = self._client.query(f"DESCRIBE TABLE ({statement})", parameters=parameters,
                                           settings=self._settings(settings))
            return tuple(str(row[0]) for row in described.result_rows)
        except (ClickHouseError, OSError, RuntimeError, ValueError):
            pass  # not a SELECT (SHOW, EXPLAIN, a trailing FORMAT ...): its Arrow schema still names the columns
        table = self._client.query_arrow(sql, parameters=parameters, settings=self._settings(settings))
        return tuple(table.column_names)

    @contextmanager
    def _translating(self, action: str, sql: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except (ClickHouseError, OSError, RuntimeError, ValueError) as exc:
            where = f"{self._where} (database {self._database or 'default'})"
            raise store_error(exc, action=action, where=where, sql=sql) from exc

    def _exists(self, database: str) -> bool:
        with self._translating("query", "SELECT ... FROM system.databases"):
            result = self._client.query("SELECT count() FROM system.databases WHERE name = {db:String}",
                                        parameters={"db": database})
        return bool(result.result_rows[0][0])

    def _use(self, database: str) -> None:
        if self._exists(database):
            with self._translating("use", f"USE {database}"):
                self._client.database = database
            self._pending_database = None
        else:
            self._pending_database = database

    def _adopt_pending_database(self) -> None:
        pending = self._pending_database
        if pending is not None and self._exists(pending):
            with self._translating("use", f"USE {pending}"):
                self._client.database = pending
            self._pending_database = None


def connect(settings: StoreSettings | str, *, readonly: bool = False, database: str | None = None) -> Store:
    """Open a :class:`Store` for a ClickHouse URL or :class:`StoreSettings`.

    :param settings: ``StoreSettings`` (user, password, database, compression) or a URL:
        ``http(s)://[user[:password]@]host:port[/database]`` for a ClickHouse server or
        ``agentaudit store``, ``chdb:///path`` for an in-process chDB directory (only one
        process may open it).
    :param readonly: refuse writes in this session (ClickHouse setting ``readonly = 2``, which
        still lets queries set limits). A production user whose profile already has
        ``readonly = 1`` or ``2`` is left as it is.
    :param database: database for unqualified table names; default the URL path, else
        ``settings.database`` (a plain URL without a path uses the server's default). A
        database that does not exist yet is used once a command has created it.
    :raises StoreError: the store cannot be reached or refused the login.
    """
    if isinstance(settings, str):
        url, user, password, compression, default_db = settings, None, None, "lz4", None
    else:
        url = settings.clickhouse_url
        user = settings.clickhouse_user
        password = settings.clickhouse_password.get_secret_value()
        compression = settings.compression
        default_db = settings.database
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    path_db = unquote(parts.path.strip("/")) or None
    if scheme == "chdb":
        return _connect_chdb(url, readonly=readonly, database=database or default_db)
    if scheme not in ("http", "https"):
        raise StoreError(f"unsupported ClickHouse URL {url!r}: use http(s)://host:port[/database] or "
                         "chdb:///path (AGENTAUDIT_CLICKHOUSE_URL)")
    where = _redact(url)
    target_db = database or path_db or default_db
    try:
        client = clickhouse_connect.get_client(
            interface=scheme,
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8443 if scheme == "https" else 8123),
            username=unquote(parts.username) if parts.username else (user or "default"),
            password=unquote(parts.password) if parts.password else (password or ""),
            compress=False if compression == "none" else compression,
            # No server session: a session serialises queries and breaks sharing across threads.
            autogenerate_session_id=False,
        )
    except (ClickHouseError, OSError) as exc:
        raise store_error(exc, action="connect", where=where) from exc
    defaults: dict[str, str] = {}
    if readonly:
        try:
            level = str(client.query("SELECT getSetting('readonly')").result_rows[0][0])
        except (ClickHouseError, OSError) as exc:
            client.close()
            raise store_error(exc, action="connect", where=where) from exc
        if level == "0":
            defaults["readonly"] = _READONLY_LEVEL
    try:
        return Store(client, where=where, database=target_db, readonly=readonly, default_settings=defaults)
    except StoreError:
        client.close()
        raise


def _connect_chdb(url: str, *, readonly: bool, database: str | None) -> Store:
    where = url
    try:
        client = clickhouse_connect.get_client(dsn=url)
    except (ClickHouseError, OSError, RuntimeError) as exc:
        err = store_error(exc, action="open chDB directory", where=where)
        raise type(err)(f"{err}; only one process may open a chDB directory: if `agentaudit store` serves it, "
                        "use its http:// URL instead", code=err.code) from exc
    defaults = {"readonly": _READONLY_LEVEL} if readonly else {}
    try:
        return Store(client, where=where, database=database, readonly=readonly, default_settings=defaults, chdb=True)
    except StoreError:
        client.close()
        raise


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
