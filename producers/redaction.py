"""Privacy: keyed digests instead of values, and a redaction hook on every free-text field.

Inputs and outputs become keyed digests (HMAC-SHA256 with the tenant's key, see
:mod:`agentaudit.producers._digests`) of their canonical JSON (:func:`canonical`). Bodies are
recorded only with ``capture_bodies=True``. A :data:`Redactor` (default :func:`redact`) runs on
every body and, whatever ``capture_bodies`` says, on every free-text field of every event
(:func:`redact_fields`: name, error type and message, model, attribute keys and values).

>>> redact("mail bob@example.com, key sk-abcdefghijklmnopqrstuv, db postgres://app:hunter2@db/prod")
'mail [EMAIL], key [API_KEY], db postgres://[CREDENTIALS]@db/prod'
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from typing import Any

from agentaudit.producers._capture import clean, json_text

__all__ = ["FREE_TEXT_FIELDS", "REDACTION_PATTERNS", "Redactor", "canonical", "cap", "digest", "luhn_valid",
           "redact", "redact_fields"]

#: A redaction hook: text in, text with secrets masked out.
Redactor = Callable[[str], str]

_KEYWORDS = r"(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)"

#: ``(label, pattern)`` pairs :func:`redact` masks, in order. A pattern's ``keep`` group, when it has one,
#: stays in front of the label. Card numbers are masked besides, when they pass the Luhn check.
REDACTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("[PRIVATE_KEY]", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
                                 re.DOTALL)),
    ("[API_KEY]", re.compile(r"\bBearer\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)),
    ("[API_KEY]", re.compile(r"\bBasic\s+[A-Za-z0-9+/]{12,}={0,2}", re.IGNORECASE)),
    # user:password@ in any URL (postgres://, https://, amqp://, redis://, ...)
    ("[CREDENTIALS]", re.compile(r"(?<=://)[^\s/?#@:]*:[^\s/?#@]*(?=@)")),
    # password=..., "api_key": "...", client_secret: ..., token=... (also inside URLs and JSON)
    ("[SECRET]", re.compile(r"(?P<keep>" + _KEYWORDS + r"[\"']?\s*[:=]\s*)"
                            r"(?:\"[^\"\n]*\"|'[^'\n]*'|[^\s,;&\"'}\])]+)", re.IGNORECASE)),
    ("[API_KEY]", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}")),
    ("[API_KEY]", re.compile(r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}")),
    ("[API_KEY]", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    ("[API_KEY]", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b")),
    ("[API_KEY]", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}")),
    ("[API_KEY]", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("[API_KEY]", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("[API_KEY]", re.compile(r"\bxox[bpase]-[A-Za-z0-9-]{10,}")),
    ("[API_KEY]", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("[API_KEY]", re.compile(r"\bnpm_[A-Za-z0-9]{36}")),
    ("[API_KEY]", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),  # JWT
    # the local part starts where a run of its characters starts and is at most 64 long: linear time
    ("[EMAIL]", re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")),
)
# digits in runs of 13-19, not inside a word or an id (an-id-0000000000001, a hex digest)
_CARD = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")

_FAMILY = ("pem", "auth", "auth", "url", "kv", *["key"] * 11, "email")
_SUBS = tuple((family, pattern, rf"\g<keep>{label}" if "keep" in pattern.groupindex else label)
              for family, (label, pattern) in zip(_FAMILY, REDACTION_PATTERNS, strict=True))
_KEY_HINTS = ("sk-", "k_", "akia", "asia", "gh", "glpat-", "aiza", "xox", "hf_", "npm_", "eyj")
_DIGITS = re.compile(r"\d{4}")


def _families(text: str) -> set[str]:
    """Which families of patterns can match ``text`` at all, from substring tests (cheaper than the patterns)."""
    low = text.lower()
    found = set()
    if "-----begin" in low:
        found.add("pem")
    if "bearer" in low or "basic" in low:
        found.add("auth")
    if "://" in low:
        found.add("url")
    if "pass" in low or "pwd" in low or "secret" in low or "token" in low or "key" in low or "credential" in low:
        found.add("kv")
    if any(hint in low for hint in _KEY_HINTS):
        found.add("key")
    if "@" in low:
        found.add("email")
    if _DIGITS.search(text) is not None:
        found.add("card")
    return found


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
    """The default redactor: masks credentials in URLs (``scheme://user:pass@``), ``key=value`` secrets
    (password, secret, token, api_key, ...), API-key shapes (``sk-...``, ``sk_live_...``, ``AKIA...``,
    ``ghp_...``, ``github_pat_...``, ``glpat-...``, ``AIza...``, ``xox?-...``, ``hf_...``, ``npm_...``,
    JWTs, ``Bearer ...``, ``Basic ...``), private-key blocks, e-mail addresses and Luhn-valid card numbers."""
    found = _families(text)
    if not found:
        return text
    for family, pattern, replacement in _SUBS:
        if family in found:
            text = pattern.sub(replacement, text)
    return _CARD.sub(_card, text) if "card" in found else text


#: Fields of an event that hold free text, redacted on every event (``capture_bodies`` or not).
FREE_TEXT_FIELDS = ("name", "error_type", "error_message", "model")

#: Attributes the SDK writes with ids, digests and times: never redacted (a digest can look like a card).
_STRUCTURED = frozenset(("args_hash", "approval_id", "guarded_action_id", "command_id", "incident_id",
                         "expires_at_us"))


@functools.lru_cache(maxsize=4096)
def _redact_short(text: str) -> str:
    """:func:`redact` of a short string, cleaned, remembered: names, keys and error types repeat on every event."""
    return clean(redact(text))[0]


def _redacted(redactor: Redactor, value: str) -> str | None:
    """``redactor(value)`` cleaned, or None when the hook raised or returned something other than a str."""
    try:
        if redactor is redact and len(value) <= 256:
            return _redact_short(value)
        result = redactor(value)
    except Exception:  # noqa: BLE001 - a broken hook must not leak the text
        return None
    if type(result) is not str:
        return None
    return clean(result)[0]


def redact_fields(record: dict[str, Any], redactor: Redactor) -> int:
    """Run ``redactor`` over every free-text field of ``record`` in place: :data:`FREE_TEXT_FIELDS` and
    attribute keys and values. A value the hook fails on becomes ``[REDACTION_FAILED]``; returns how many."""
    failed = 0
    for field in FREE_TEXT_FIELDS:
        value = record.get(field)
        if value:
            result = _redacted(redactor, value)
            if result is None:
                failed += 1
                result = "[REDACTION_FAILED]"
            record[field] = result
    attributes = record.get("attributes")
    if attributes:
        out: dict[str, str] = {}
        for key, value in attributes.items():
            if key in _STRUCTURED:  # agentaudit.uncaptured.* notes are redacted too: they quote keys
                out[key] = value
                continue
            new_key = _redacted(redactor, key)
            new_value = _redacted(redactor, value) if value else value
            if new_key is None or new_value is None:
                failed += 1
                new_key = new_key if new_key is not None else f"[REDACTION_FAILED:{len(out)}]"
                new_value = new_value if new_value is not None else "[REDACTION_FAILED]"
            out[new_key] = new_value
        record["attributes"] = out
    return failed


def canonical(value: Any) -> str:
    """The text an input or output digest covers: a ``str`` as it is, anything else in its RFC 8785
    canonical form. Never raises: values JSON cannot hold are converted by fixed rules, never with
    ``repr`` (see :func:`~agentaudit.schemas.canonical.to_json_value`, and
    :func:`~agentaudit.producers._capture.json_text`, which also says what was lost)."""
    return json_text(value)[0]


def digest(text: str) -> str:
    """Hex SHA-256 of canonical text, unkeyed: for comparisons inside one process only. What an event
    records is keyed (:class:`~agentaudit.producers._digests.Digester`)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def cap(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes (on a character boundary), marked when cut;
    lone surrogates are replaced, so the result always encodes."""
    text = clean(text)[0]
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    marker = "...[truncated]"
    return data[:max(0, max_bytes - len(marker))].decode("utf-8", "ignore") + marker
