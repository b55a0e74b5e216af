"""Capture of whatever an agent hands the SDK, as text that always encodes, and a note of what was lost.

An agent can pass anything: objects whose ``__repr__`` or ``__str__`` raise, structures nested
100,000 levels deep or cyclic, integers of 10,000 digits, lone surrogates, megabyte names. The SDK
must neither raise into the agent nor seal an event that cannot be encoded or that the pipeline
rejects, so each value becomes a clean ``str`` here, and what could not be captured is said in a
short ``problem`` text that the event carries as an ``agentaudit.uncaptured.<field>`` attribute.

The common case (a plain ASCII ``str`` of sane length, JSON-able inputs) costs one type check,
``str.isascii`` (constant time for ASCII strings) and a length test.
"""

from __future__ import annotations

import math
from typing import Any, Literal, overload

from agentaudit.schemas.canonical import MAX_DEPTH, canonical_text, type_name

__all__ = ["MAX_DEPTH", "UNCAPTURED", "clean", "json_text", "number", "text", "type_name"]

#: Attribute prefix of the notes saying which field could not be captured and why.
UNCAPTURED = "agentaudit.uncaptured."

_INT64_MAX = (1 << 63) - 1


def _failed(what: str, value: Any, exc: BaseException) -> str:
    return f"{what} of {type_name(value)} raised {type_name(exc)}"


def clean(value: str) -> tuple[str, str | None]:
    """``value`` with lone surrogates replaced (UTF-8, and so Avro, cannot hold them)."""
    if value.isascii():
        return value, None
    try:
        value.encode("utf-8")
        return value, None
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8"), "lone surrogates replaced"


def text(value: Any, limit: int) -> tuple[str, str | None]:
    """``value`` as a clean ``str`` of at most ``limit`` characters, and what was lost (None: nothing).

    ``bytes`` are decoded as UTF-8 (invalid bytes replaced); other objects go through ``str()``; when that
    raises, the text names the type and the error instead.
    """
    problem = None
    if type(value) is not str:
        try:
            if isinstance(value, (bytes, bytearray, memoryview)):
                value = bytes(value).decode("utf-8", "replace")
            else:
                value = str(value)
        except Exception as exc:  # noqa: BLE001 - a hostile __str__ must not reach the agent
            problem = _failed("str()", value, exc)
            value = f"<unprintable {type_name(value)}>"
    if not value.isascii():
        value, dirty = clean(value)
        problem = problem or dirty
    if len(value) > limit:
        problem = problem or f"cut from {len(value)} characters"
        value = value[:limit]
    return value, problem


@overload
def number(value: Any, *, integer: Literal[True]) -> tuple[int | None, str | None]: ...
@overload
def number(value: Any, *, integer: Literal[False]) -> tuple[float | None, str | None]: ...
@overload
def number(value: Any, *, integer: bool) -> tuple[int | float | None, str | None]: ...
def number(value: Any, *, integer: bool) -> tuple[int | float | None, str | None]:
    """A token count (``integer``: 0..2**63-1) or a cost (finite, >= 0), or None with the reason."""
    try:
        if integer:
            result: int | float = int(value)
            if 0 <= result <= _INT64_MAX:
                return result, None
            return None, f"{type_name(value)} out of 0..2**63-1"
        result = float(value)
        if math.isfinite(result) and result >= 0:
            return result, None
        return None, f"not a finite non-negative number ({result!r})"
    except Exception as exc:  # noqa: BLE001 - a hostile __int__/__float__ must not reach the agent; noted as uncaptured
        return None, _failed("int()" if integer else "float()", value, exc)


def json_text(value: Any) -> tuple[str, str | None]:
    """The text an input or output digest covers, and what was lost (None: nothing).

    A ``str`` is taken as it is and ``bytes`` as UTF-8; anything else in its RFC 8785 form after the
    fixed conversions of :func:`~agentaudit.schemas.canonical.to_json_value` (never ``repr``, so no
    memory address reaches a digest). Never raises.
    """
    if type(value) is str:
        return clean(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace"), None
    return canonical_text(value)
