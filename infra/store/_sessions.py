"""HTTP sessions (``session_id``): the SET and USE state a client keeps between requests.

chDB has one engine session shared by all requests, so a client's ``SET``/``USE`` must never
run on it directly (``SET readonly = 1`` could never be undone). They are parsed here and kept
per ``session_id``, then applied (and reset) around each request of that session, as ClickHouse
does. Without a ``session_id`` they only validate and have no lasting effect, as in ClickHouse.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

__all__ = ["Session", "Sessions", "parse_set", "parse_use"]

_ASSIGN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^'\\]|\\.)*'|[^,\s;]+)\s*(?:,|;?\s*\Z)", re.DOTALL)
_SET = re.compile(r"\s*SET\s+(?!ROLE\b|DEFAULT\s+ROLE\b)", re.IGNORECASE)
_USE = re.compile(r"\s*USE\s+(`(?:[^`\\]|\\.)+`|\"(?:[^\"\\]|\\.)+\"|[A-Za-z_][A-Za-z0-9_]*)\s*;?\s*\Z", re.IGNORECASE)


def _unquote(literal: str) -> str:
    if len(literal) >= 2 and literal[0] == literal[-1] and literal[0] in "'`\"":
        return re.sub(r"\\(.)", r"\1", literal[1:-1])
    return literal


def parse_set(sql: str) -> dict[str, str] | None:
    """``SET a = 1, b = 'x'`` -> ``{"a": "1", "b": "x"}``; ``None`` if it is not such a statement."""
    head = _SET.match(sql)
    if head is None:
        return None
    rest, pos, out = sql, head.end(), {}
    while pos < len(rest):
        match = _ASSIGN.match(rest, pos)
        if match is None:
            return None
        out[match.group(1)] = _unquote(match.group(2))
        pos = match.end()
    return out or None


def parse_use(sql: str) -> str | None:
    """``USE db`` -> ``"db"``; ``None`` if it is not such a statement."""
    match = _USE.match(sql)
    return _unquote(match.group(1)) if match else None


@dataclass
class Session:
    settings: dict[str, str] = field(default_factory=dict)
    database: str | None = None
    expires: float = 0.0


class Sessions:
    """Live sessions by id; an idle session expires after its ``session_timeout`` (default 60 s)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def get(self, session_id: str, timeout: float = 60.0) -> Session:
        now = time.monotonic()
        with self._lock:
            for key in [k for k, s in self._sessions.items() if s.expires < now]:
                del self._sessions[key]
            session = self._sessions.setdefault(session_id, Session())
            session.expires = now + timeout
            return session
