"""Privacy: digests by default, and a redaction hook for bodies a user opted in to record.

Inputs and outputs become SHA-256 digests of their canonical JSON (:func:`digest`). Bodies are
recorded only with ``capture_bodies=True``: the text goes through a :data:`Redactor` (default
:func:`redact`) and is then capped at ``body_max_bytes``.

>>> redact("mail bob@example.com, key sk-abcdefghijklmnopqrstuv")
'mail [EMAIL], key [API_KEY]'
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["REDACTION_PATTERNS", "Redactor", "cap", "canonical", "digest", "luhn_valid", "redact"]

#: A redaction hook: text in, text with secrets masked out.
Redactor = Callable[[str], str]

#: ``(label, pattern)`` pairs :func:`redact` masks, in order; card numbers are handled separately (Luhn).
REDACTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("[API_KEY]", re.compile(r"\bBearer\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)),
    ("[API_KEY]", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}")),
    ("[API_KEY]", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    ("[API_KEY]", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b")),
    ("[API_KEY]", re.compile(r"\bxox[bpas]-[A-Za-z0-9-]{10,}")),
    ("[EMAIL]", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")),
)
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def luhn_valid(digits: str) -> bool:
    """Whether a digit string passes the Luhn check that payment card numbers pass."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i % 2:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return "[CARD]" if 13 <= len(digits) <= 19 and luhn_valid(digits) else match.group(0)


def redact(text: str) -> str:
    """The default redactor: masks API-key shapes (``sk-...``, ``AKIA...``, ``ghp_...``, ``xox?-...``,
    ``Bearer ...``), e-mail addresses and Luhn-valid card numbers of 13-19 digits."""
    for label, pattern in REDACTION_PATTERNS:
        text = pattern.sub(label, text)
    return _CARD.sub(_card, text)


def canonical(value: Any) -> str:
    """``value`` as canonical JSON (sorted keys, compact); strings stay as they are.
    Values JSON cannot hold are written with ``repr`` so a digest is always possible."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)


def digest(text: str) -> str:
    """Hex SHA-256 of canonical text (see :func:`canonical`)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def cap(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes (on a character boundary), marked when cut."""
    data = text.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return text
    marker = "...[truncated]"
    return data[:max(0, max_bytes - len(marker))].decode("utf-8", "ignore") + marker
