"""What the framework integrations share: turning a framework's ids, times and payloads into what
:func:`~agentaudit.producers._genai.record_span` takes, and never letting a hook raise."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime
from typing import Any

from agentaudit.logs import get_logger
from agentaudit.producers._capture import type_name
from agentaudit.producers.client import AuditClient

_log = get_logger("agentaudit.producers")
_MAX_DEPTH = 8  # plain() stops descending here: a hostile payload cannot make a hook recurse forever
_MAX_ITEMS = 256
#: runs/spans started and not yet ended that a hook keeps; past it the oldest is forgotten (its end, if it ever
#: comes, is then not recorded), so runs that never end cannot grow a long-lived processor without bound
MAX_OPEN = 10_000


def id_int(value: Any, prefix: str = "") -> int:
    """A framework id as the integer a span id is: its hex digits (``trace_<32 hex>``, a UUID), else a
    64-bit digest of its text, so any id maps to the same integer every time."""
    text = str(value)
    if prefix and text.startswith(prefix):
        text = text[len(prefix):]
    digits = text.replace("-", "")
    if 0 < len(digits) <= 32:
        try:
            return int(digits, 16)
        except ValueError:
            pass
    return int.from_bytes(hashlib.blake2b(str(value).encode(), digest_size=8).digest(), "big")


def iso_ns(value: Any, default: int) -> int:
    """An ISO-8601 timestamp in nanoseconds since the epoch; ``default`` when absent or unreadable."""
    if not value:
        return default
    try:
        return int(datetime.fromisoformat(str(value)).timestamp() * 1_000_000_000)
    except (TypeError, ValueError, OverflowError):
        return default


def now_ns() -> int:
    return time.time_ns()


def text(value: Any, limit: int = 1024) -> str:
    """``str(value)`` cut to ``limit``; never raises (an object's ``__str__`` is the framework user's code)."""
    try:
        return str(value)[:limit]
    except Exception:  # noqa: BLE001 - an object's __str__ is the framework user's code; never raises
        return f"<{type_name(value)}>"


def _repr(value: Any) -> str:
    try:
        return repr(value)[:1024]
    except Exception:  # noqa: BLE001 - an object's __repr__ is the framework user's code; never raises
        return f"<{type_name(value)}>"


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-like data for the digests: pydantic models dumped, containers walked (bounded in
    depth and width, so a self-referencing payload ends), anything else as its bounded ``repr``. Never raises."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if depth > _MAX_DEPTH:
        return "<nested too deep>"
    dump = getattr(value, "model_dump", None) if not isinstance(value, (dict, list, tuple)) else None
    if callable(dump):
        try:
            return plain(dump(mode="json", exclude_none=True), depth + 1)
        except Exception:  # noqa: BLE001 - a model that cannot dump itself is recorded by its repr
            return _repr(value)
    try:
        if isinstance(value, dict):
            return {text(k, 256): plain(v, depth + 1) for k, v in list(value.items())[:_MAX_ITEMS]}
        if isinstance(value, (list, tuple)):
            return [plain(v, depth + 1) for v in list(value)[:_MAX_ITEMS]]
    except Exception:  # noqa: BLE001 - a container subclass whose iteration raises
        return _repr(value)
    return _repr(value)


def hook_failed(client: AuditClient, what: str, exc: BaseException) -> None:
    """Record that a hook could not capture what it saw; never raises (the agent must go on)."""
    try:
        client._point_failed(what, exc)
    except Exception:  # noqa: BLE001 - the hook's failure path must never raise into the agent; logged
        _log.warning("sdk." + what + "_failed", error=type_name(exc))
