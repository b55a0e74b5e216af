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

import json
import math
from typing import Any

__all__ = ["MAX_DEPTH", "UNCAPTURED", "clean", "json_text", "number", "text", "type_name"]

#: Attribute prefix of the notes saying which field could not be captured and why.
UNCAPTURED = "agentaudit.uncaptured."

#: Nesting kept in an input or output; deeper levels become a placeholder.
MAX_DEPTH = 64

_INT64_MAX = (1 << 63) - 1
_MAX_PROBLEMS = 3


def type_name(value: Any) -> str:
    """The qualified type name of ``value``; never raises (a metaclass can make it raise)."""
    try:
        name = type(value).__qualname__
        return name if type(name) is str else "object"
    except Exception:  # noqa: BLE001 - never raises: a metaclass can make __qualname__ raise
        return "object"


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
    """``value`` as canonical JSON (sorted keys, compact; strings as they are), and what was lost.

    The fast path is ``json.dumps``; when it fails (a ``repr`` that raises, nesting deeper than the
    interpreter allows, a cycle, keys that do not sort, an integer too long to print), a bounded walk
    writes the same form with placeholders where a value could not be captured.
    """
    if type(value) is str:
        return clean(value)
    try:
        if isinstance(value, (bytes, bytearray)):
            return bytes(value).decode("utf-8", "replace"), None
        return clean(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr))
    except Exception:  # noqa: BLE001, S110 - fall through to the walk that cannot fail
        pass
    problems: list[str] = []
    out: list[str] = []
    try:
        _walk(value, 0, set(), out, problems)
        result = "".join(out)
    except Exception as exc:  # noqa: BLE001 - the walk guards each step; this is the last resort
        result = json.dumps(f"<{type_name(value)}: capture failed>")
        problems.append(_failed("capture", value, exc))
    result, dirty = clean(result)
    if dirty:
        problems.append(dirty)
    return result, "; ".join(dict.fromkeys(problems)) or "written in a fallback form"


def _note(problems: list[str], problem: str) -> None:
    if len(problems) < _MAX_PROBLEMS and problem not in problems:
        problems.append(problem)


def _safe_repr(value: Any, problems: list[str]) -> str:
    try:
        result = repr(value)
        if type(result) is str:
            return result
        raise TypeError("__repr__ returned a non-string")
    except Exception as exc:  # noqa: BLE001 - a hostile __repr__ must not reach the agent; noted as uncaptured
        _note(problems, _failed("repr()", value, exc))
        return f"<unrepresentable {type_name(value)}>"


def _walk(value: Any, depth: int, seen: set[int], out: list[str], problems: list[str]) -> None:
    """Append ``value`` as JSON to ``out``: recursion bounded by :data:`MAX_DEPTH`, cycles cut."""
    kind = type(value)
    if value is None or kind is bool:
        out.append("null" if value is None else ("true" if value else "false"))
    elif kind is str or isinstance(value, str):
        out.append(json.dumps(str.__str__(value), ensure_ascii=False))
    elif kind is int or isinstance(value, int):
        try:
            out.append(int.__repr__(value))
        except ValueError:  # more digits than the interpreter prints
            _note(problems, f"int of {int.bit_length(value)} bits")
            out.append(f'"<int of {int.bit_length(value)} bits>"')
    elif kind is float or isinstance(value, float):
        out.append(float.__repr__(value) if math.isfinite(value) else json.dumps(float(value)))
    elif isinstance(value, (bytes, bytearray)):
        out.append(json.dumps(bytes(value).decode("utf-8", "replace"), ensure_ascii=False))
    elif isinstance(value, (dict, list, tuple)):
        if depth >= MAX_DEPTH:
            _note(problems, f"nested deeper than {MAX_DEPTH} levels")
            out.append(f'"<nested deeper than {MAX_DEPTH} levels>"')
            return
        if id(value) in seen:
            _note(problems, "cyclic reference")
            out.append('"<cycle>"')
            return
        seen.add(id(value))
        try:
            if isinstance(value, dict):
                try:
                    items = list(dict.items(value))
                except Exception as exc:  # noqa: BLE001 - a mapping whose items() raises is captured empty and noted
                    _note(problems, _failed("items()", value, exc))
                    items = []
                keyed = []
                for key, item in items:
                    if isinstance(key, str):
                        keyed.append((str.__str__(key), item))
                        continue
                    key_text, problem = text(key, 1024)
                    if problem:
                        _note(problems, f"key: {problem}")
                    keyed.append((key_text, item))
                keyed.sort(key=lambda pair: pair[0])
                out.append("{")
                for i, (key_text, item) in enumerate(keyed):
                    if i:
                        out.append(",")
                    out.append(json.dumps(key_text, ensure_ascii=False))
                    out.append(":")
                    _walk(item, depth + 1, seen, out, problems)
                out.append("}")
            else:
                out.append("[")
                for i, item in enumerate(list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value)):
                    if i:
                        out.append(",")
                    _walk(item, depth + 1, seen, out, problems)
                out.append("]")
        finally:
            seen.discard(id(value))
    else:
        out.append(json.dumps(_safe_repr(value, problems), ensure_ascii=False))
