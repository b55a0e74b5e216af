"""The chDB directory the store server owns, and one chDB connection per request.

chDB 4.x opens any number of connections to one directory in one process; each keeps its
own session (``USE``, ``SET``) and they run at the same time. So every request gets a fresh
connection: its settings and database are its own, nothing of an earlier request (a failed
statement, a half-read result, a ``SET``) can reach it, and a slow query holds only its own
connection. Opening one costs about 2 ms.

A statement is parsed, never executed, before it runs: ``parseQueryToJSON`` /
``formatQuerySingleLine`` take the text as a bound parameter on a read-only parser
connection, so a second statement in it is a parse error and nothing of it executes.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentaudit.infra.clickhouse._errors import parse_code
from agentaudit.infra.exceptions import StoreError
from agentaudit.infra.store._authz import Refused, check_explain_ast, check_read_ast
from agentaudit.infra.store._sql import STREAM_SAFE_FORMATS, leading_keyword
from agentaudit.infra.store.exceptions import StoreLockedError

__all__ = ["Engine", "EngineError", "InsertStats"]

_LOCK_FILE = "agentaudit-store.lock"
_STREAMING_KEYWORDS = frozenset({"SELECT", "WITH"})
_SETTING_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_PARSERS = 2
_TAG_PREFIX = "agentaudit-store:"
_IDLE_PER_KEY = 4  # idle connections kept per (database, settings, readonly)
_IDLE_TOTAL = 64
_VERDICTS = 4096  # parse results and read verdicts remembered (the sink and dashboards repeat a few statements)
_REMEMBER_CHARS = 8192  # longer statements are parsed each time (bounds the memory of what is remembered)


class EngineError(Exception):
    """A statement failed inside chDB or was refused before it; ``code`` is the ClickHouse code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class InsertStats:
    rows: int
    bytes: int


def _engine_error(exc: BaseException) -> EngineError:
    text = str(exc)
    idx = text.find("Code: ")
    message = text[idx:] if idx >= 0 else f"Code: 1001. DB::Exception: {text}"
    return EngineError(message.strip(), parse_code(message) or 1001)


def _readonly_error(reason: str) -> EngineError:
    return EngineError(f"Code: 164. DB::Exception: default: Cannot execute query in readonly mode: {reason}. "
                       "(READONLY)", 164)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _param(text: str) -> str:
    """A query-parameter value for ``{q:String}``: chDB reads it in TSV-escaped form."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


class Engine:
    """Owns the chDB directory: an exclusive lock file, then connections on demand."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        import chdb

        self._chdb = chdb
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._take_directory_lock()
        try:
            self._control = chdb.connect(str(self.data_dir))
        except Exception as exc:
            self._release_directory_lock()
            if "lock" in str(exc).lower() or "EmbeddedServer" in str(exc):
                raise StoreLockedError(
                    f"cannot open store directory {self.data_dir}: another process owns it ({exc}); stop that "
                    "store or pass a different --data-dir / AGENTAUDIT_STORE_DIR", code=parse_code(str(exc))) from exc
            raise StoreError(f"cannot open chDB directory {self.data_dir}: {exc}", code=parse_code(str(exc))) from exc
        self._control_lock = threading.Lock()
        self._parsers: queue.Queue[Any] = queue.Queue()
        for _ in range(_PARSERS):
            parser = chdb.connect(str(self.data_dir))
            parser.query("SET readonly = 1", "TabSeparated")
            self._parsers.put(parser)
        self._closed = False
        self._idle: OrderedDict[tuple[Any, ...], list[_Connection]] = OrderedDict()
        self._idle_count = 0
        self._idle_lock = threading.Lock()
        self._verdicts: OrderedDict[tuple[str, str | None], dict[str, str]] = OrderedDict()
        self._parsed: OrderedDict[str, str | None] = OrderedDict()  # statements parsed single (the sink repeats its few)
        self.timezone = self._scalar("SELECT timezone()")
        self.version = self._scalar("SELECT version()")

    # -- directory ownership -----------------------------------------------------------

    def _take_directory_lock(self) -> int:
        path = self.data_dir / _LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreLockedError(
                f"store directory {self.data_dir} is owned by another store process (pid {owner}); only one "
                "process may serve a chDB directory: use that store's URL, stop it, or pass a different "
                "--data-dir / AGENTAUDIT_STORE_DIR") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return fd

    def _release_directory_lock(self) -> None:
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def close(self) -> None:
        """Close chDB (flushes parts) and release the directory; idempotent."""
        with self._control_lock:
            if self._closed:
                return
            self._closed = True
            with self._idle_lock:
                for conns in self._idle.values():
                    for conn in conns:
                        conn.close()
                self._idle.clear()
            while not self._parsers.empty():
                self._parsers.get_nowait().close()
            self._control.close()
            self._release_directory_lock()

    def _scalar(self, sql: str) -> str:
        with self._control_lock:
            return self._control.query(sql, "TabSeparated").bytes().decode().strip()

    # -- parsing (executes nothing) ----------------------------------------------------

    @contextmanager
    def _parser(self) -> Iterator[Any]:
        parser = self._parsers.get()
        try:
            yield parser
        finally:
            self._parsers.put(parser)

    def _parse_call(self, function: str, sql: str) -> str:
        with self._parser() as parser:
            try:
                result = parser.query(f"SELECT {function}({{q:String}})", "TSVRaw", params={"q": _param(sql)})
            except Exception as exc:
                raise _engine_error(exc) from exc
        return result.bytes().decode()

    def parse(self, sql: str) -> str | None:
        """The statement's tree as ``parseQueryToJSON`` gives it; ``None`` for the few kinds it cannot
        serialise (DESCRIBE, SHOW CREATE, ...), which are then checked single by ``formatQuerySingleLine``.

        :raises EngineError: code 62 for a syntax error or more than one statement; 36 for an INSERT
            with inline data (send its data as the body after ``INSERT ... FORMAT X``).
        """
        with self._idle_lock:
            if sql in self._parsed:
                self._parsed.move_to_end(sql)
                return self._parsed[sql]
        tree = self._parse(sql)
        if len(sql) > _REMEMBER_CHARS:
            return tree
        with self._idle_lock:
            self._parsed[sql] = tree
            if len(self._parsed) > _VERDICTS:
                self._parsed.popitem(last=False)
        return tree

    def _parse(self, sql: str) -> str | None:
        try:
            return self._parse_call("parseQueryToJSON", sql)
        except EngineError as exc:
            text = str(exc)
            if "does not support JSON serialization" not in text and "not supported by parseQueryToJSON" not in text:
                raise
            if "INSERT with inline data" in text:
                raise EngineError("Code: 36. DB::Exception: agentaudit store runs an INSERT's data through the "
                                  "input format only: send `INSERT INTO t [(cols)] FORMAT <fmt>` then the data "
                                  "(VALUES rows included). (BAD_ARGUMENTS)", 36) from exc
        self._parse_call("formatQuerySingleLine", sql)  # raises 62 unless exactly one statement
        return None

    def authorize_read(self, sql: str, database: str | None) -> dict[str, str]:
        """Refuse (``EngineError`` 164) what a read-only session may not run (see ``_authz``);
        returns the statement's top-level SETTINGS to set on its connection before ``readonly = 1``.

        A statement allowed once for a database is remembered (the verdict depends on nothing else).
        """
        key = (sql, database)
        with self._idle_lock:
            clause = self._verdicts.get(key)
            if clause is not None:
                self._verdicts.move_to_end(key)
                return dict(clause)
        clause = self._authorize_read(sql, database)
        if len(sql) > _REMEMBER_CHARS:
            return clause
        with self._idle_lock:
            self._verdicts[key] = clause
            if len(self._verdicts) > _VERDICTS:
                self._verdicts.popitem(last=False)
        return dict(clause)

    def _authorize_read(self, sql: str, database: str | None) -> dict[str, str]:
        tree = self.parse(sql)
        try:
            if tree is not None:
                return check_read_ast(tree, database)
            with self._parser() as parser:  # one statement (checked above): EXPLAIN AST only parses it
                try:
                    explain = parser.query(f"EXPLAIN AST {sql}", "TSVRaw").bytes().decode()
                except Exception as exc:
                    raise _engine_error(exc) from exc
            check_explain_ast(explain, database)
            return {}
        except Refused as exc:
            raise _readonly_error(str(exc)) from exc

    def check_insert_head(self, head: str, fmt: str) -> str:
        """``INSERT INTO t [(cols)] [SETTINGS ...]`` checked to be exactly that (no SELECT, no data);
        returns the head to hand to chDB's streaming insert."""
        tree = json.loads(self._parse_call("parseQueryToJSON", f"{head} FORMAT {fmt}"))
        if tree.get("type") != "InsertQuery" or tree.get("select") is not None or tree.get("infile") is not None:
            raise EngineError("Code: 62. DB::Exception: an INSERT with a body must be `INSERT INTO t [(cols)] "
                              "FORMAT <fmt>` followed by the data. (SYNTAX_ERROR)", 62)
        return head

    # -- running -----------------------------------------------------------------------

    @contextmanager
    def connection(self, database: str | None, settings: Mapping[str, str], *, readonly: bool,
                   reuse: bool = True) -> Iterator[_Connection]:
        """A connection with exactly this database and these settings, for one statement.

        Connections are kept for the next request with the same key: nothing a statement can do
        changes their session (SET/USE never reach them, multi-statements are refused, and
        ``readonly = 1`` refuses even a SETTINGS clause). One that saw an error is closed.
        ``reuse=False`` (DDL, which may drop its database) always gets and closes a fresh one.
        """
        key = (database, tuple(sorted(settings.items())), readonly)
        conn = self._take_idle(key) if reuse else None
        if conn is None:
            conn = self.open(database, settings, readonly=readonly)
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        if reuse:
            self._give_back(key, conn)
        else:
            conn.close()

    def forget_idle(self) -> None:
        """Close every kept connection: after DDL one may name a database that is gone or renamed."""
        with self._idle_lock:
            conns = [conn for kept in self._idle.values() for conn in kept]
            self._idle.clear()
            self._idle_count = 0
        for conn in conns:
            conn.close()

    def _take_idle(self, key: tuple[Any, ...]) -> _Connection | None:
        with self._idle_lock:
            conns = self._idle.get(key)
            if not conns:
                return None
            self._idle_count -= 1
            self._idle.move_to_end(key)
            return conns.pop()

    def _give_back(self, key: tuple[Any, ...], conn: _Connection) -> None:
        evicted: list[_Connection] = []
        with self._idle_lock:
            conns = self._idle.setdefault(key, [])
            if self._closed or len(conns) >= _IDLE_PER_KEY:
                evicted.append(conn)
            else:
                conns.append(conn)
                self._idle_count += 1
                self._idle.move_to_end(key)
                while self._idle_count > _IDLE_TOTAL:
                    oldest_key, oldest = next(iter(self._idle.items()))
                    if oldest:
                        evicted.append(oldest.pop(0))
                        self._idle_count -= 1
                    if not oldest:
                        del self._idle[oldest_key]
        for old in evicted:
            old.close()

    def open(self, database: str | None, settings: Mapping[str, str], *, readonly: bool) -> _Connection:
        """A fresh connection with ``database`` current and exactly ``settings`` set, then
        ``readonly = 1`` when asked (from then on the engine refuses any change of setting)."""
        tag = _TAG_PREFIX + uuid.uuid4().hex
        try:
            conn = self._chdb.connect(str(self.data_dir))
        except Exception as exc:
            raise _engine_error(exc) from exc
        try:
            if database:
                conn.query(f"USE {_quote_ident(database)}", "TabSeparated")
            for name in settings:
                if not name or not set(name) <= _SETTING_NAME_OK:
                    raise EngineError(f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)", 115)
            # one round trip; the tag names this connection's running statement for KILL QUERY
            assignments = [f"{name} = {_quote(value)}" for name, value in settings.items() if name != "log_comment"]
            conn.query("SET " + ", ".join([*assignments, f"log_comment = {_quote(tag)}"]), "TabSeparated")
            if readonly:
                conn.query("SET readonly = 1", "TabSeparated")
        except EngineError:
            conn.close()
            raise
        except Exception as exc:
            conn.close()
            raise _engine_error(exc) from exc
        return _Connection(conn, tag)

    def kill(self, tag: str) -> None:
        """Cancel the statement running on the connection tagged ``tag`` (its client went away)."""
        if not tag.startswith(_TAG_PREFIX) or not set(tag[len(_TAG_PREFIX):]) <= set("0123456789abcdef"):
            return
        with self._control_lock:
            if not self._closed:
                try:
                    self._control.query(f"KILL QUERY WHERE Settings['log_comment'] = {_quote(tag)} ASYNC",
                                        "TabSeparated")
                except Exception:  # noqa: BLE001,S110 - the query may have just finished
                    pass


class _Connection:
    """One request's chDB connection; closed after its statement."""

    def __init__(self, conn: Any, tag: str) -> None:
        self._conn = conn
        self.tag = tag

    def close(self) -> None:
        self._conn.close()

    def execute(self, sql: str, fmt: str, params: Mapping[str, str]) -> Iterator[bytes]:
        """Run ``sql``; yields result chunks (SELECTs in block-concatenable formats stream block by
        block; Arrow, Parquet, JSON etc. come whole because each block would repeat the file header).
        """
        keyword = leading_keyword(sql)
        try:
            if keyword in _STREAMING_KEYWORDS and fmt in STREAM_SAFE_FORMATS:
                return _drain(self._conn.send_query(sql, fmt, params=dict(params)))
            result = self._conn.query(sql, fmt, params=dict(params))
        except Exception as exc:
            raise _engine_error(exc) from exc
        data = result.bytes()
        return iter((data,) if data else ())

    def insert(self, head: str, fmt: str, chunks: Iterable[bytes]) -> InsertStats:
        """Stream FORMAT-encoded ``chunks`` into ``head`` (``INSERT INTO t [(cols)] [SETTINGS ...]``)."""
        try:
            inserter = self._conn.send_insert(head, fmt)
        except Exception as exc:
            raise _engine_error(exc) from exc
        with inserter:
            try:
                for chunk in chunks:
                    if chunk:
                        inserter.append(chunk)
                result = inserter.finish()
            except EngineError:
                raise
            except Exception as exc:
                raise _engine_error(exc) from exc
        return InsertStats(rows=result.rows_written, bytes=result.bytes_written)


def _drain(stream: Any) -> Iterator[bytes]:
    try:
        while True:
            try:
                chunk = next(stream)
            except StopIteration:
                return
            except Exception as exc:
                raise _engine_error(exc) from exc
            data = chunk.bytes()
            if data:
                yield data
    finally:
        stream.close()
