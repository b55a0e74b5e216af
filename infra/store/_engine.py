"""The chDB session the store server owns, used by one request at a time.

chDB allows one open connection per data directory per process, and a connection runs one
statement at a time (a second concurrent call deadlocks in the engine), so every request
takes :attr:`Engine.lock` while its statement runs.
Each request's settings and database are brought about with ``SET``/``USE`` under that lock;
the engine remembers what it last applied and issues only the difference, so a request sees
exactly its own settings (all others at default) without paying a reset round trip each time.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentaudit.infra.clickhouse._errors import parse_code
from agentaudit.infra.exceptions import StoreError
from agentaudit.infra.store._sql import READ_AST_ROOTS, STREAM_SAFE_FORMATS, leading_keyword
from agentaudit.infra.store.exceptions import StoreLockedError

__all__ = ["Engine", "EngineError", "InsertStats"]

_LOCK_FILE = "agentaudit-store.lock"
_STREAMING_KEYWORDS = frozenset({"SELECT", "WITH"})
# Statements after which the current database may be gone or renamed: USE it again next time.
_KEEPS_DATABASE = frozenset({"SELECT", "WITH", "INSERT", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"})
_VERDICTS = 1024  # read-only verdicts remembered (dashboards repeat the same few queries)
_SETTING_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class EngineError(Exception):
    """A statement failed inside chDB; ``code`` is the ClickHouse exception code."""

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


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


class Engine:
    """Owns the chDB directory: an exclusive lock file, then the one chDB connection."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        import chdb

        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._take_directory_lock()
        try:
            self._conn = chdb.connect(str(self.data_dir))
        except Exception as exc:
            self._release_directory_lock()
            if "lock" in str(exc).lower() or "EmbeddedServer" in str(exc):
                raise StoreLockedError(
                    f"cannot open store directory {self.data_dir}: another process owns it ({exc}); stop that "
                    "store or pass a different --data-dir / AGENTAUDIT_STORE_DIR", code=parse_code(str(exc))) from exc
            raise StoreError(f"cannot open chDB directory {self.data_dir}: {exc}", code=parse_code(str(exc))) from exc
        self.lock = threading.Lock()
        self._database: str | None = None  # what the last USE selected; None: unknown, USE again
        self._settings: dict[str, str] = {}  # settings SET on the connection; all others are at default
        self._verdicts: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], bool] = OrderedDict()
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
        with self.lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
            self._release_directory_lock()

    # -- statements (call with self.lock held) ----------------------------------------

    def _scalar(self, sql: str) -> str:
        return self._conn.query(sql, "TabSeparated").bytes().decode().strip()

    def apply(self, database: str | None, settings: Mapping[str, str]) -> None:
        """Make ``database`` current and exactly ``settings`` set (every other setting at default).

        Only what differs from the previous request runs (``USE``, ``SET x = ...``,
        ``SET x = DEFAULT``): each is a chDB round trip, and most requests repeat the last one's.
        """
        target = database or "default"
        try:
            if self._database != target:
                self._database = None
                self._conn.query(f"USE {_quote_ident(target)}", "TabSeparated")
                self._database = target
            for name in [n for n in self._settings if n not in settings]:
                self._set_default(name)
            for name, value in settings.items():
                if self._settings.get(name) == value:
                    continue
                if not name or not set(name) <= _SETTING_NAME_OK:
                    raise EngineError(f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)", 115)
                self._conn.query(f"SET {name} = {_quote(value)}", "TabSeparated")
                self._settings[name] = value
        except EngineError:
            raise
        except Exception as exc:
            raise _engine_error(exc) from exc

    def _set_default(self, name: str) -> None:
        del self._settings[name]
        try:
            self._conn.query(f"SET {name} = DEFAULT", "TabSeparated")
        except Exception:  # noqa: BLE001,S110 - a setting that cannot be reset was never applied
            pass

    def is_read_only_statement(self, sql: str, params: Mapping[str, str]) -> bool:
        """ClickHouse's own parser decides whether ``sql`` only reads (for ``readonly`` requests).

        Parsed with default settings (a request's own limits must not break the check); verdicts
        are remembered, so a repeated dashboard query is not parsed again.
        """
        key = (sql, tuple(sorted(params.items())))
        verdict = self._verdicts.get(key)
        if verdict is not None:
            self._verdicts.move_to_end(key)
            return verdict
        for name in list(self._settings):
            self._set_default(name)
        try:
            ast = self._conn.query(f"EXPLAIN AST {sql}", "TabSeparated", params=dict(params)).bytes()
        except Exception as exc:
            raise _engine_error(exc) from exc
        lines = ast.decode(errors="replace").splitlines()
        root = lines[0].split(" ", 1)[0] if lines else ""
        # SELECT ... INTO OUTFILE writes a file on this machine.
        verdict = root in READ_AST_ROOTS and not any("INTO OUTFILE" in line.upper() for line in lines)
        self._verdicts[key] = verdict
        if len(self._verdicts) > _VERDICTS:
            self._verdicts.popitem(last=False)
        return verdict

    def execute(self, sql: str, fmt: str, params: Mapping[str, str]) -> Iterator[bytes]:
        """Run ``sql``; yields result chunks (SELECTs in block-concatenable formats stream block by
        block; Arrow, Parquet, JSON etc. come whole because each block would repeat the file header).
        ``fmt`` is the effective output format (the query's own FORMAT clause wins).

        The first chunk is produced eagerly by callers that need to send an error status.
        """
        keyword = leading_keyword(sql)
        if keyword not in _KEEPS_DATABASE:
            self._database = None  # DROP/RENAME/DETACH may have removed it
        try:
            if keyword in _STREAMING_KEYWORDS and fmt in STREAM_SAFE_FORMATS:
                stream = self._conn.send_query(sql, fmt, params=dict(params))
                return self._drain(stream)
            result = self._conn.query(sql, fmt, params=dict(params))
        except Exception as exc:
            raise _engine_error(exc) from exc
        data = result.bytes()
        return iter((data,) if data else ())

    @staticmethod
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
