"""The notifier's committed state: a SQLite outbox beside what it has applied.

One transaction per consumed batch records the events applied (by event id, so a re-read batch
changes nothing), each incident's folded state, and the notifications decided (primary key
incident/state/route: the deduplication). Offsets are committed only after it. Deliveries read
the outbox, so a notification decided before a crash or during a receiver outage is delivered
after it, once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agentaudit.consumers.notify.payloads import Notification

_SCHEMA = """
CREATE TABLE IF NOT EXISTS applied (event_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS incidents (
    incident_id TEXT PRIMARY KEY, doc TEXT NOT NULL, status TEXT NOT NULL, reopens INTEGER NOT NULL,
    level INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, delivery_id TEXT NOT NULL UNIQUE, route_id TEXT NOT NULL,
    doc TEXT NOT NULL, decided_at REAL NOT NULL, delivered INTEGER NOT NULL DEFAULT 0,
    recorded INTEGER NOT NULL DEFAULT 0, outcome TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (route_id, recorded, seq);
"""


class Outbox:
    """SQLite in WAL mode, synchronous FULL: a committed transaction survives a crash. One connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def transaction(self) -> _Transaction:
        """``with outbox.transaction() as tx:`` one atomic batch of decisions."""
        return _Transaction(self._conn())

    def pending(self, route_id: str, limit: int = 50) -> list[tuple[int, Notification, int]]:
        """``(seq, notification, delivered)`` not yet recorded for ``route_id``, oldest first."""
        rows = self._conn().execute(
            "SELECT seq, doc, delivered FROM outbox WHERE route_id = ? AND recorded = 0 ORDER BY seq LIMIT ?",
            (route_id, limit)).fetchall()
        return [(seq, Notification(**json.loads(doc)), delivered) for seq, doc, delivered in rows]

    def routes_pending(self) -> list[str]:
        return [r for (r,) in self._conn().execute("SELECT DISTINCT route_id FROM outbox WHERE recorded = 0")]

    def mark_delivered(self, seq: int, outcome: str, attempts: int) -> None:
        self._conn().execute("UPDATE outbox SET delivered = 1, outcome = ?, attempts = ? WHERE seq = ?",
                             (outcome, attempts, seq))

    def mark_recorded(self, seq: int) -> None:
        self._conn().execute("UPDATE outbox SET recorded = 1 WHERE seq = ?", (seq,))

    def decided_at(self, seq: int) -> float:
        row = self._conn().execute("SELECT decided_at FROM outbox WHERE seq = ?", (seq,)).fetchone()
        return float(row[0]) if row else 0.0

    def outcome(self, seq: int) -> tuple[str, int]:
        row = self._conn().execute("SELECT outcome, attempts FROM outbox WHERE seq = ?", (seq,)).fetchone()
        return (str(row[0]), int(row[1])) if row else ("", 0)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> _Transaction:
        self.conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")

    def first_time(self, event_id: str) -> bool:
        """True once per event id: whether this event is applied now (False: applied before)."""
        return self.conn.execute("INSERT OR IGNORE INTO applied (event_id) VALUES (?)", (event_id,)).rowcount == 1

    def incident(self, incident_id: str) -> tuple[dict[str, Any], str, int, int] | None:
        row = self.conn.execute("SELECT doc, status, reopens, level FROM incidents WHERE incident_id = ?",
                                (incident_id,)).fetchone()
        return None if row is None else (json.loads(row[0]), str(row[1]), int(row[2]), int(row[3]))

    def save_incident(self, incident_id: str, doc: dict[str, Any], status: str, reopens: int, level: int) -> None:
        self.conn.execute("INSERT OR REPLACE INTO incidents VALUES (?, ?, ?, ?, ?)",
                          (incident_id, json.dumps(doc), status, reopens, level))

    def decide(self, notification: Notification) -> bool:
        """Queue ``notification`` unless one for the same incident, state and route exists; True if queued."""
        return self.conn.execute(
            "INSERT OR IGNORE INTO outbox (delivery_id, route_id, doc, decided_at) VALUES (?, ?, ?, ?)",
            (notification.delivery_id, notification.route_id, json.dumps(asdict(notification)), time.time()),
        ).rowcount == 1
