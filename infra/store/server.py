"""``agentaudit store``: one process owns a chDB directory and serves ClickHouse's HTTP interface.

Other processes use a plain ``clickhouse_connect.get_client(host=..., port=...)`` against it, as
against a production server. chDB is an embedded engine with one session, so each request gets
its own connection in a read or a write lane, every statement is parsed before it runs, and
read-only sessions are held to an allow-list. What differs from a ClickHouse server:
``docs/store-server.md``.

>>> server = StoreServer("./.agentaudit/store", port=0)
>>> server.start_in_thread()
>>> server.url
'http://127.0.0.1:41234'
>>> server.shutdown()
"""

from __future__ import annotations

import base64
import hmac
import http.client
import json
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agentaudit.infra.store._authz import DENIED_DATABASES, READER_DENIED_SETTINGS
from agentaudit.infra.store._codecs import compressor, decompress_stream, pick_encoding
from agentaudit.infra.store._engine import Engine, EngineError
from agentaudit.infra.store._lanes import Lane, LaneFullError
from agentaudit.infra.store._limits import StoreLimits
from agentaudit.infra.store._metrics import StoreMetrics
from agentaudit.infra.store._sessions import Session, Sessions, parse_set, parse_use
from agentaudit.infra.store._sql import leading_keyword, output_format, split_insert
from agentaudit.infra.store._watch import watch_disconnect

__all__ = ["StoreServer"]

_log = logging.getLogger(__name__)

_READ_CHUNK = 1 << 20
_SPOOL_MEMORY = 32 << 20  # larger request bodies and results go to a temporary file
_SPOOL_SLACK = 1 << 20  # a result may pass max_result_bytes by one block before the engine stops it
_READ_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"})
# Query-string keys that are HTTP-interface controls, not ClickHouse settings to SET.
_NOT_SETTINGS = frozenset({
    "query", "database", "default_format", "user", "password", "query_id", "session_id", "session_timeout",
    "session_check", "compress", "decompress", "enable_http_compression", "wait_end_of_query", "buffer_size",
    "client_protocol_version", "role", "quota_key", "send_progress_in_http_headers",
    "cancel_http_readonly_queries_on_client_close", "add_http_cors_header", "readonly",
})
_DISPLAY_NAME = "agentaudit-store"
_MAX_HEADERS = 100
_MAX_HEADER_BYTES = 256 << 10
READER_USER = "reader"


class _HTTPError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class _HeaderBudget:
    """``rfile`` while the headers are read: at most ``_MAX_HEADERS`` lines and ``_MAX_HEADER_BYTES`` bytes."""

    def __init__(self, raw: Any) -> None:
        self._raw, self._lines, self._bytes = raw, 0, 0

    def readline(self, limit: int = -1) -> bytes:
        line = self._raw.readline(limit)
        self._lines += 1
        self._bytes += len(line)
        if self._lines > _MAX_HEADERS or self._bytes > _MAX_HEADER_BYTES:
            raise http.client.HTTPException(f"more than {_MAX_HEADERS} headers or {_MAX_HEADER_BYTES} bytes of them")
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    store: StoreServer


class StoreServer:
    """A ClickHouse-compatible HTTP server over a chDB directory.

    :param data_dir: the chDB directory (created if missing); only one process may own it.
    :param host: interface to bind, default ``127.0.0.1`` (loopback only).
    :param port: TCP port, default 8123; 0 picks a free one (see :attr:`port`).
    :param password: when set, every request must carry it (``X-ClickHouse-Key``, basic auth or
        the ``password`` query parameter) for user ``default``; env ``AGENTAUDIT_STORE_PASSWORD``.
    :param reader_password: password of user ``reader``, whose every request is read-only; env
        ``AGENTAUDIT_STORE_READER_PASSWORD``. Unset: no ``reader`` user.
    :param limits: :class:`StoreLimits`, default from ``AGENTAUDIT_STORE_*`` at the CLI.
    :param protect_metrics: ``/metrics`` needs a password too (when one is set), default True.
    :raises StoreLockedError: another process already serves ``data_dir``.
    """

    def __init__(self, data_dir: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8123,
                 password: str | None = None, *, reader_password: str | None = None,
                 limits: StoreLimits | None = None, protect_metrics: bool = True) -> None:
        self.limits = limits or StoreLimits()
        self.engine = Engine(data_dir)
        self.metrics = StoreMetrics()
        self.sessions = Sessions()
        self.password = password or None
        self.reader_password = reader_password or None
        self.protect_metrics = protect_metrics
        lim = self.limits
        self.read_lane = Lane("reads", lim.max_concurrent_reads, lim.max_queued_reads, lim.read_queue_timeout)
        self.write_lane = Lane("writes", lim.max_concurrent_writes, 1024, 300.0)
        try:
            self._httpd = _Server((host, port), _Handler)
        except OSError:
            self.engine.close()
            raise
        self._httpd.store = self
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for ``AGENTAUDIT_CLICKHOUSE_URL``."""
        return f"http://{self.host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` is called from another thread (or a signal handler's thread)."""
        try:
            self._httpd.serve_forever(poll_interval=0.2)
        finally:
            self._close()

    def start_in_thread(self) -> threading.Thread:
        """Serve from a daemon thread (tests, embedding); returns the thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="agentaudit-store", daemon=True)
        self._thread.start()
        return self._thread

    def shutdown(self) -> None:
        """Stop accepting requests, finish the running one, close chDB and free the directory."""
        self._httpd.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._close()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._httpd.server_close()
            self.engine.close()

    def __enter__(self) -> StoreServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "agentaudit-store"
    # Small responses must leave at once: with Nagle on, a second small write waits for the
    # client's delayed ACK (~40 ms a request). Buffered writes send headers and a small body
    # in one segment; handle_one_request flushes after each response.
    disable_nagle_algorithm = True
    wbufsize = 1 << 16
    timeout = 300  # a stalled client must not hold the engine lock forever
    server: _Server

    def parse_request(self) -> bool:
        # clickhouse-connect raises http.client's process-wide header count to 10,000: hold our own
        # budget while the stdlib reads the headers (over it: 431 before anything else is read).
        real = self.rfile
        self.rfile = _HeaderBudget(real)  # type: ignore[assignment]  # has the file methods http.server reads
        try:
            return super().parse_request()
        finally:
            self.rfile = real

    def log_message(self, format: str, *args: object) -> None:  # the stdlib's signature
        _log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:  # http.server's name
        self._serve()

    def do_HEAD(self) -> None:
        self._respond_simple(200, b"", "text/plain")

    # -- plumbing --------------------------------------------------------------------------

    def _serve(self) -> None:
        store = self.server.store
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        path = parts.path.rstrip("/") or "/"
        if path == "/ping" or (path == "/" and "query" not in params and self.command == "GET"):
            store.metrics.requests.labels("ping").inc()
            self._respond_simple(200, b"Ok.\n", "text/plain; charset=UTF-8", close=self._has_body())
            return
        if path == "/metrics":
            try:
                if store.protect_metrics:
                    self._authenticate(params)
            except _HTTPError as exc:
                self._error(exc)
                return
            self._respond_simple(200, generate_latest(store.metrics.registry), CONTENT_TYPE_LATEST,
                                 close=self._has_body())
            return
        if path != "/":
            self._error(_HTTPError(404, 0, f"Code: 0. DB::Exception: There is no handle {parts.path}. (UNKNOWN)"))
            return
        kind = "query"
        started = time.perf_counter()
        try:
            forced_readonly = self._authenticate(params)
            self._check_body_size()
            kind = self._run(params, forced_readonly)
        except LaneFullError as exc:
            store.metrics.errors.labels("202").inc()
            self._error(_HTTPError(503, 202, f"Code: 202. DB::Exception: Too many simultaneous queries ({exc}); "
                                             "retry later. (TOO_MANY_SIMULTANEOUS_QUERIES)"))
        except _HTTPError as exc:
            store.metrics.errors.labels(str(exc.code)).inc()
            self._error(exc)
        except EngineError as exc:
            store.metrics.errors.labels(str(exc.code)).inc()
            self._error(_HTTPError(_status_for(exc.code), exc.code, str(exc)))
        except Exception as exc:  # noqa: BLE001 - answer instead of dropping the connection
            _log.exception("store request failed")
            store.metrics.errors.labels("1001").inc()
            self._error(_HTTPError(500, 1001, f"Code: 1001. DB::Exception: {type(exc).__name__}: {exc}. (STD_EXCEPTION)"))
        finally:
            store.metrics.requests.labels(kind).inc()
            store.metrics.latency.labels(kind).observe(time.perf_counter() - started)

    def _authenticate(self, params: dict[str, str]) -> bool:
        """Check the user and password before any of the body is read; True: a read-only user."""
        store = self.server.store
        user = self.headers.get("X-ClickHouse-User") or params.get("user")
        supplied = self.headers.get("X-ClickHouse-Key") or params.get("password")
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                basic_user, _, basic_password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except ValueError:
                basic_user, basic_password = "", None
            user = user or basic_user
            supplied = supplied if supplied is not None else basic_password
        user = user or "default"
        if user == READER_USER and store.reader_password is not None:
            expected: str | None = store.reader_password
        elif user == "default":
            expected = store.password
            if expected is None:
                return False
        else:
            expected = None
        if expected is None or supplied is None or not hmac.compare_digest(supplied.encode(), expected.encode()):
            raise _HTTPError(401, 516, f"Code: 516. DB::Exception: {user[:64]}: Authentication failed: password is "
                                       "incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)")
        return user == READER_USER

    def _check_body_size(self) -> None:
        """Refuse an announced body over the limit before reading a byte of it."""
        limit = self.server.store.limits.max_body_bytes
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _HTTPError(400, 1001, "Code: 1001. DB::Exception: bad Content-Length. (STD_EXCEPTION)") from None
        if length > limit:
            raise _body_too_large(limit, length)

    def _body_chunks(self) -> Iterator[bytes]:
        """The raw request body (Content-Length or chunked), in pieces, counted in metrics."""
        counter = self.server.store.metrics.bytes_in
        limit = self.server.store.limits.max_body_bytes
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            total = 0
            while True:
                size_line = self.rfile.readline(1024)
                try:
                    size = int(size_line.split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    raise _HTTPError(400, 33, "Code: 33. DB::Exception: bad chunk size in a chunked request "
                                              "body. (CANNOT_READ_ALL_DATA)") from None
                total += size
                if total > limit:
                    raise _body_too_large(limit, total)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                remaining = size
                while remaining:
                    piece = self.rfile.read(min(remaining, _READ_CHUNK))
                    if not piece:
                        raise _HTTPError(400, 33, "Code: 33. DB::Exception: request body ended early. (CANNOT_READ_ALL_DATA)")
                    remaining -= len(piece)
                    counter.inc(len(piece))
                    yield piece
                self.rfile.readline(1024)
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining > 0:
                piece = self.rfile.read(min(remaining, _READ_CHUNK))
                if not piece:
                    raise _HTTPError(400, 33, "Code: 33. DB::Exception: request body ended early. (CANNOT_READ_ALL_DATA)")
                remaining -= len(piece)
                counter.inc(len(piece))
                yield piece

    def _has_body(self) -> bool:
        return (self.headers.get("Transfer-Encoding", "").lower() == "chunked"
                or int(self.headers.get("Content-Length") or 0) > 0)

    def _decoded_body(self, params: dict[str, str]) -> Iterator[bytes]:
        if params.get("decompress") == "1":
            raise _HTTPError(400, 48, "Code: 48. DB::Exception: ClickHouse's native compressed request format "
                                      "(decompress=1) is not supported by agentaudit store; use HTTP "
                                      "Content-Encoding. (NOT_IMPLEMENTED)")
        limit = self.server.store.limits.max_body_bytes
        total = 0
        try:
            for chunk in decompress_stream(self._body_chunks(), self.headers.get("Content-Encoding")):
                total += len(chunk)
                if total > limit:
                    raise _body_too_large(limit, total, decoded=True)
                yield chunk
        except _HTTPError:
            raise
        except Exception as exc:  # any codec failure is a bad request
            raise _HTTPError(400, 354, f"Code: 354. DB::Exception: cannot decode request body: {exc}. "
                                       "(CANNOT_DECOMPRESS)") from exc

    # -- the request -------------------------------------------------------------------

    def _run(self, params: dict[str, str], forced_readonly: bool) -> str:
        store = self.server.store
        engine, limits = store.engine, store.limits
        body = self._decoded_body(params)
        if "query" in params:
            text = params["query"].encode()
            insert = split_insert(text)
            if insert is None and self._has_body():
                # ClickHouse runs query parameter + body as one statement (e.g. "INSERT ... VALUES" + rows).
                text = text + b"\n" + _read_at_most(body, limits.max_query_bytes - len(text))
                insert = split_insert(text)
                body = iter(())
        else:
            # The whole statement is in the body, maybe followed by binary insert data.
            head = bytearray()
            for chunk in body:
                head += chunk
                if len(head) >= _READ_CHUNK:
                    break
            text = bytes(head)
            insert = split_insert(text)
            if insert is None:
                text += _read_at_most(body, limits.max_query_bytes - len(text))
                body = iter(())
        try:
            query = insert[0] if insert is not None else text.decode()
        except UnicodeDecodeError as exc:
            raise _HTTPError(400, 1001, f"Code: 1001. DB::Exception: query is not valid UTF-8: {exc}. (STD_EXCEPTION)") from exc
        if len(query) > limits.max_query_bytes:
            raise _HTTPError(413, 62, f"Code: 62. DB::Exception: Max query size exceeded: the statement text is over "
                                      f"{limits.max_query_bytes} bytes (AGENTAUDIT_STORE_MAX_QUERY_BYTES); send insert "
                                      "data after `INSERT ... FORMAT X`. (SYNTAX_ERROR)")
        if not query.strip():
            raise _HTTPError(400, 62, "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)")
        bind = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        session = None
        if params.get("session_id"):
            session = store.sessions.get(params["session_id"], _float(params.get("session_timeout"), 60.0))
        settings = dict(session.settings) if session else {}
        settings.update((k, v) for k, v in params.items()
                        if k not in _NOT_SETTINGS and not k.startswith(("param_", "http_")))
        database = (self.headers.get("X-ClickHouse-Database") or params.get("database")
                    or (session.database if session else None))
        # Read-only if the user, the session or the request says so: a request cannot undo its session's.
        session_readonly = session is not None and session.settings.get("readonly", "0") not in ("0", "")
        readonly = (forced_readonly or session_readonly or settings.pop("readonly", "0") not in ("0", "")
                    or params.get("readonly", "0") not in ("0", ""))
        settings.pop("readonly", None)
        if insert is None and leading_keyword(query) in ("SET", "USE"):
            self._session_statement(query, session, database, settings, readonly)
            return "command"
        query_id = params.get("query_id") or str(uuid.uuid4())
        fmt = (self.headers.get("X-ClickHouse-Format") or params.get("default_format") or "TabSeparated")
        fmt = output_format(query, fmt) if insert is None else fmt
        encoding = pick_encoding(self.headers.get("Accept-Encoding")) \
            if params.get("enable_http_compression") == "1" else None
        # Authorization: parsed by ClickHouse's parser, nothing executed yet.
        if insert is not None:
            if readonly:
                raise _HTTPError(403, 164, "Code: 164. DB::Exception: default: Cannot execute query in readonly "
                                           "mode. (READONLY)")
            engine.check_insert_head(insert[0], insert[1])
        elif readonly:
            settings.update(engine.authorize_read(query, database))
        else:
            engine.parse(query)
        if insert is not None:
            # Take the whole body off the network before taking a lane, so a slow uploader never
            # holds a slot (memory up to _SPOOL_MEMORY, then disk).
            upload = _spool(_prefixed(insert[2], body))
            with store.write_lane.slot(), \
                    engine.connection(database, _write_settings(limits, settings), readonly=False) as conn:
                stats = conn.insert(insert[0], insert[1], _unspool(upload))
            store.metrics.rows_inserted.inc(stats.rows)
            summary = {"written_rows": stats.rows, "written_bytes": stats.bytes}
            self._respond_stream(iter(()), query_id, fmt, summary, encoding, 0)
            return "insert"
        # Lanes by session: read-only sessions (dashboards, analysts) queue among themselves; the
        # read-write user (the sink, migrations) has its own lane, so no reader can delay an insert.
        reading = readonly or leading_keyword(query) in _READ_KEYWORDS
        lane = store.read_lane if readonly else store.write_lane
        with lane.slot(), engine.connection(database, _read_settings(limits, settings) if readonly  # noqa: SIM117 - the disconnect watch wraps the query alone, inside the held lane and connection
                                            else _write_settings(limits, settings), readonly=readonly,
                                            reuse=reading) as conn:
            with watch_disconnect(self.connection, lambda: engine.kill(conn.tag)):
                # Spooled, then sent after the connection is back and the slot freed: a client
                # that reads slowly cannot hold either.
                try:
                    result = _spool(conn.execute(query, fmt, bind), limits.max_result_bytes + _SPOOL_SLACK)
                finally:
                    if not reading:
                        engine.forget_idle()  # DROP/RENAME/DETACH may have removed a kept connection's database
        size = result.tell()
        self._respond_stream(_unspool(result), query_id, fmt, {"result_bytes": size}, encoding, size)
        return "query" if size or _is_select(query) else "command"

    def _session_statement(self, query: str, session: Session | None, database: str | None,
                           settings: dict[str, str], readonly: bool) -> None:
        """SET/USE: checked single and validated on a connection, kept in the HTTP session only."""
        store = self.server.store
        store.engine.parse(query)  # exactly one statement, or refused before anything runs
        assignments = parse_set(query)
        target = parse_use(query)
        if assignments is None and target is None:
            raise _HTTPError(400, 62, f"Code: 62. DB::Exception: agentaudit store understands only "
                                      f"`SET name = value, ...` and `USE db` here: {query[:200]}. (SYNTAX_ERROR)")
        if readonly and assignments and set(assignments) - {"readonly"}:
            # the request's connection runs with readonly = 1, which refuses every SET
            raise _HTTPError(403, 164, f"Code: 164. DB::Exception: Cannot modify '{min(assignments)}' setting "
                                       "in readonly mode. (READONLY)")
        if readonly and assignments and assignments.get("readonly") not in ("1", "2"):
            raise _HTTPError(403, 164, "Code: 164. DB::Exception: Cannot modify 'readonly' setting in readonly "
                                       "mode. (READONLY)")
        if readonly and target is not None and target.lower() in DENIED_DATABASES:
            raise _HTTPError(403, 164, f"Code: 164. DB::Exception: database {target} is not readable by a "
                                       "read-only session. (READONLY)")
        checked = {k: v for k, v in (assignments or {}).items() if k != "readonly"}
        merged = {**settings, **checked}
        with store.read_lane.slot(), store.engine.connection(
                target or database, _read_settings(store.limits, merged) if readonly else merged,
                readonly=readonly, reuse=False):  # raises 115 / 81 / 164 when wrong
            pass
        if session is not None:
            if assignments:
                session.settings.update(assignments)
            if target:
                session.database = target
        self._respond_stream(iter(()), str(uuid.uuid4()), "TabSeparated", {}, None, 0)

    # -- responses -------------------------------------------------------------------------

    def _common_headers(self, query_id: str, fmt: str, summary: dict[str, int]) -> None:
        tz = self.server.store.engine.timezone
        full = {"read_rows": 0, "read_bytes": 0, "written_rows": 0, "written_bytes": 0, "total_rows_to_read": 0,
                "result_rows": 0, "result_bytes": 0, **summary}
        self.send_header("X-ClickHouse-Summary", json.dumps({k: str(v) for k, v in full.items()}))
        self.send_header("X-ClickHouse-Query-Id", query_id)
        self.send_header("X-ClickHouse-Format", fmt)
        self.send_header("X-ClickHouse-Timezone", tz)
        self.send_header("X-ClickHouse-Server-Display-Name", _DISPLAY_NAME)

    def _respond_stream(self, chunks: Iterator[bytes], query_id: str, fmt: str, summary: dict[str, int],
                        encoding: str | None, size: int) -> None:
        """Send ``size`` bytes of ``chunks``: with Content-Length as they are, chunked when compressed."""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream" if fmt in ("Native", "RowBinary", "Arrow",
                                                                              "Parquet") else "text/plain; charset=UTF-8")
        self._common_headers(query_id, fmt, summary)
        if encoding:
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Content-Encoding", encoding)
        else:
            self.send_header("Content-Length", str(size))
        self.end_headers()
        # Results are spooled before the headers go, so nothing here can fail half-way with an engine error.
        counter = self.server.store.metrics.bytes_out
        codec = compressor(encoding) if encoding else None
        for chunk in chunks:
            counter.inc(len(chunk))
            if codec is None:
                self.wfile.write(chunk)
            else:
                self._write_chunk(codec.compress(chunk))
        if codec is not None:
            self._write_chunk(codec.flush())
            self.wfile.write(b"0\r\n\r\n")

    def _write_chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _respond_simple(self, status: int, body: bytes, content_type: str, *, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if close:  # an unread request body must not be taken for the next request
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, exc: _HTTPError) -> None:
        body = (str(exc).rstrip() + "\n").encode()
        self.send_response(exc.status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("X-ClickHouse-Exception-Code", str(exc.code))
        self.send_header("X-ClickHouse-Server-Display-Name", _DISPLAY_NAME)
        self.send_header("Content-Length", str(len(body)))
        # The request body may be unread: close rather than misread it as the next request.
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        self.wfile.write(body)


def _spool(chunks: Iterator[bytes], limit: int | None = None) -> tempfile.SpooledTemporaryFile[bytes]:
    spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115 - returned open to the caller, which closes it; closed here on error
    try:
        for chunk in chunks:
            spool.write(chunk)
            if limit is not None and spool.tell() > limit:
                raise _HTTPError(500, 396, f"Code: 396. DB::Exception: Limit for result exceeded: over {limit} bytes "
                                           "(AGENTAUDIT_STORE_MAX_RESULT_BYTES). (TOO_MANY_ROWS_OR_BYTES)")
    except BaseException:
        spool.close()
        raise
    return spool


def _unspool(spool: tempfile.SpooledTemporaryFile[bytes]) -> Iterator[bytes]:
    try:
        spool.seek(0)
        while chunk := spool.read(_READ_CHUNK):
            yield chunk
    finally:
        spool.close()


def _read_at_most(chunks: Iterator[bytes], limit: int) -> bytes:
    """The rest of a statement's text; refused (413) past ``limit`` bytes, without reading on."""
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) > limit:
            raise _HTTPError(413, 62, "Code: 62. DB::Exception: Max query size exceeded: the statement text is over "
                                      "AGENTAUDIT_STORE_MAX_QUERY_BYTES; send insert data after `INSERT ... FORMAT "
                                      "X`. (SYNTAX_ERROR)")
    return bytes(out)


def _body_too_large(limit: int, size: int, *, decoded: bool = False) -> _HTTPError:
    what = "decompressed request body" if decoded else "request body"
    return _HTTPError(413, 307, f"Code: 307. DB::Exception: {what} of {size} bytes or more is over the store's limit "
                                f"of {limit} bytes (AGENTAUDIT_STORE_MAX_BODY_BYTES); send smaller inserts. "
                                "(TOO_MANY_BYTES)")


def _write_settings(limits: StoreLimits, settings: dict[str, str]) -> dict[str, str]:
    """A read-write request's settings: the limits as defaults, its own settings win."""
    return {**limits.engine_settings(readonly=False), **settings}


def _read_settings(limits: StoreLimits, settings: dict[str, str]) -> dict[str, str]:
    """A read-only request's settings: its own, then the limits (a lower value of its own kept);
    ``readonly = 1`` comes after, so the query cannot change any of them."""
    denied = sorted(set(settings) & READER_DENIED_SETTINGS)
    if denied:
        raise _HTTPError(403, 164, f"Code: 164. DB::Exception: setting {', '.join(denied)} is not allowed in a "
                                   "read-only session. (READONLY)")
    merged = dict(settings)
    for name, cap in limits.engine_settings(readonly=True).items():
        mine = merged.get(name)
        try:
            lower = mine is not None and 0 < float(mine) < float(cap)
        except ValueError:
            lower = False
        merged[name] = mine if lower else cap  # type: ignore[assignment]  # both are numbers parsed above
    return merged


def _prefixed(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _float(text: str | None, default: float) -> float:
    try:
        return float(text) if text else default
    except ValueError:
        return default


def _is_select(sql: str) -> bool:
    return leading_keyword(sql) in ("SELECT", "WITH")


def _status_for(code: int) -> int:
    if code == 164:
        return 403
    if code in (516, 192, 193):
        return 401
    if code in (60, 81):
        return 404
    if code in (62, 47, 46, 27, 26, 6, 41, 117):
        return 400
    return 500
