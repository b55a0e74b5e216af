"""Canonical JSON (RFC 8785, "JCS") for every digest and hash in the contract.

Two parties that hash one value must write the same bytes: the SDK and the control plane
(approvals bound to arguments), the producer of a digest and its verifier, this version and the
next. RFC 8785 fixes that form (keys sorted by UTF-16 code units, numbers as ECMAScript prints
them, minimal string escapes); the ``rfc8785`` package writes it. Values JSON cannot hold are
converted first by the fixed rules of :func:`to_json_value`, never with ``repr``. The rules and
the migration from the earlier form: ``docs/canonical-json.md``.

>>> canonical_json({"b": 1, "a": [1.0, "é"]})
'{"a":[1,"é"],"b":1}'
>>> canonical_text({"t": float("nan")})
('{"t":"NaN"}', None)
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import math
import re
from collections.abc import Mapping
from typing import Any

import orjson
import rfc8785

from agentaudit.schemas.exceptions import SchemaError

__all__ = ["MAX_DEPTH", "MAX_SAFE_INTEGER", "CanonicalError", "canonical_bytes", "canonical_json", "canonical_text",
           "jcs_number", "to_json_value", "type_name", "without_addresses"]

#: Nesting :func:`to_json_value` keeps; deeper levels become a placeholder string.
MAX_DEPTH = 64

#: The largest integer an IEEE 754 double holds exactly (RFC 8785 section 3.2.2.3); larger ones become strings.
MAX_SAFE_INTEGER = 2**53 - 1

_MAX_PROBLEMS = 3

# The fast path: orjson writes exactly the RFC 8785 form for objects with string keys in the Basic
# Multilingual Plane, strings, integers within 2**53, booleans and null (a test checks this against
# the rfc8785 package). Floats it writes otherwise, and NaN or infinity as null, so output that
# holds a float or a null goes the slow way, as does output with a 4-byte UTF-8 sequence (a key
# outside the BMP may sort differently by UTF-16 code units than by code points).
_FAST_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER | orjson.OPT_PASSTHROUGH_DATACLASS
                 | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_FLOAT_OR_NULL = re.compile(rb"\d[.eE]|null")
_ASTRAL = re.compile(rb"[\xf0-\xf4]")
_FLOAT = re.compile(rb"\d[.eE]")
_BRACKET = re.compile(rb"[\[\]{}]")
# CPython's default str() of an object is "<module.Type object at 0x7f...>": the address differs per process.
_ADDRESS = re.compile(r" at 0x[0-9A-Fa-f]+")


class CanonicalError(SchemaError, ValueError):
    """A value has no RFC 8785 form (a NaN, an integer beyond 2**53, an object, a non-string key).

    Raised only by the strict functions, :func:`canonical_json` and :func:`canonical_bytes`.
    """


def _fast(value: Any) -> bytes | None:
    try:
        out = orjson.dumps(value, option=_FAST_OPTIONS)
    except Exception:  # noqa: BLE001 - JSONEncodeError (a TypeError) for anything but plain JSON; never raises
        return None
    if not out.isascii() and _ASTRAL.search(out):
        return None
    # Cheap searches of the whole output first; strings are cut out only when one of them hits.
    if (b"null" in out or _FLOAT.search(out)) and _FLOAT_OR_NULL.search(_STRING.sub(b'""', out)):
        return None
    # Deeper than MAX_DEPTH: the slow path cuts it, so the form does not depend on the path taken.
    if out.count(b"[") + out.count(b"{") > MAX_DEPTH and _depth(_STRING.sub(b'""', out)) > MAX_DEPTH:
        return None
    return out


def _depth(bare: bytes) -> int:
    depth = deepest = 0
    for match in _BRACKET.finditer(bare):
        if match.group() in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def canonical_bytes(value: Any) -> bytes:
    """``value`` in its RFC 8785 form, UTF-8. Strict: raises :class:`CanonicalError` for a value JSON
    cannot hold as it is (use :func:`canonical_text` to convert such values instead).

    Always written by the ``rfc8785`` package: orjson would also accept an enum or a UUID, and what is
    refused must not depend on which path a value takes. It serves approvals, where 10 us is no cost.
    """
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise CanonicalError(f"no RFC 8785 form: {exc}") from exc
    except Exception as exc:
        raise CanonicalError(f"no RFC 8785 form: {type_name(exc)} while writing it") from exc


def canonical_json(value: Any) -> str:
    """``value`` in its RFC 8785 form, as text. Strict, as :func:`canonical_bytes`."""
    return canonical_bytes(value).decode("utf-8")


def canonical_text(value: Any) -> tuple[str, str | None]:
    """``value`` in its RFC 8785 form after :func:`to_json_value`, and what was lost (None: nothing).

    Never raises: every Python value has a form, the same in every process.
    """
    out = _fast(value)
    if out is not None:
        return out.decode("utf-8"), None
    try:
        converted, problems = to_json_value(value)
        return rfc8785.dumps(converted).decode("utf-8"), "; ".join(problems) or None
    except Exception as exc:  # noqa: BLE001 - never raises: the conversion guards each step; this is the last resort
        return f'"<{type_name(value)}: capture failed>"', f"capture raised {type_name(exc)}"


def jcs_number(value: float) -> str:
    """A finite float as RFC 8785 writes it (ECMAScript's Number.prototype.toString): ``1.0`` is ``1``,
    ``1e21`` is ``1e+21``, ``1e-7`` is ``1e-7``, ``-0.0`` is ``0``."""
    number = float(value)
    if number == 0:
        return "0"
    if 1e-4 <= abs(number) < 1e16:  # repr and ECMAScript agree here but for repr's trailing ".0"
        text = float.__repr__(number)
        return text.removesuffix(".0")
    return rfc8785.dumps(number).decode("ascii")


def to_json_value(value: Any) -> tuple[Any, list[str]]:
    """``value`` as plain JSON data RFC 8785 can write, and the problems met (at most three). Never raises.

    The conversions, fixed so that one value reads the same in every process and version:

    - a ``str`` stays (lone surrogates become ``?``: UTF-8 cannot hold them); ``bytes`` are decoded as
      UTF-8, bad bytes replaced;
    - an ``int`` within +-(2**53 - 1) stays; a larger one becomes its decimal text, ``"9007199254740993"``;
    - a float stays (``-0.0`` is ``0``); NaN and the infinities become ``"NaN"``, ``"Infinity"``, ``"-Infinity"``;
    - tuples become arrays; sets become arrays sorted by their members' canonical form;
    - a dict key that is not a string becomes its canonical text (``1`` -> ``"1"``, ``True`` -> ``"true"``);
      when two keys then read the same, the value whose canonical form sorts last is kept (noted);
    - an enum becomes its value; a dataclass an object of its fields; a date or time its ``isoformat()``;
    - any other object becomes ``str(obj)`` with ``" at 0x..."`` addresses removed (never ``repr``);
    - nesting deeper than :data:`MAX_DEPTH` and cycles become placeholder strings (noted).
    """
    problems: list[str] = []
    return _convert(value, 0, set(), problems), problems


def type_name(value: Any) -> str:
    """The qualified type name of ``value``; never raises (a metaclass can make it raise)."""
    try:
        name = type(value).__qualname__
        return name if type(name) is str else "object"
    except Exception:  # noqa: BLE001 - never raises: a metaclass can make __qualname__ raise
        return "object"


def _note(problems: list[str], problem: str) -> None:
    if len(problems) < _MAX_PROBLEMS and problem not in problems:
        problems.append(problem)


def _clean(text: str, problems: list[str]) -> str:
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        _note(problems, "lone surrogates replaced")
        return text.encode("utf-8", "replace").decode("utf-8")


def _int(value: int, problems: list[str]) -> int | str:
    if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return value
    try:
        return int.__repr__(value)
    except ValueError:  # more digits than the interpreter prints
        bits = int.bit_length(value)
        _note(problems, f"int of {bits} bits")
        return f"<int of {bits} bits>"


def _float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _text(value: Any, problems: list[str]) -> str:
    try:
        text = str(value)
        if type(text) is not str:
            raise TypeError("__str__ returned a non-string")
    except Exception as exc:  # noqa: BLE001 - a hostile __str__ must not reach the caller; noted
        _note(problems, f"str() of {type_name(value)} raised {type_name(exc)}")
        return f"<unprintable {type_name(value)}>"
    return _clean(without_addresses(text), problems)


def without_addresses(text: str) -> str:
    """``text`` with CPython's object addresses (`` at 0x7f...``) taken out, so it is the same in every process."""
    return _ADDRESS.sub("", text)


def _key(key: Any, depth: int, seen: set[int], problems: list[str]) -> str:
    if isinstance(key, str):
        return _clean(str.__str__(key), problems)
    converted = _convert(key, depth, seen, problems)
    if type(converted) is str:
        return converted
    return rfc8785.dumps(converted).decode("utf-8")


def _convert(value: Any, depth: int, seen: set[int], problems: list[str]) -> Any:
    kind = type(value)
    if value is None or kind is bool:
        return value
    if kind is str or isinstance(value, str):
        return _clean(str.__str__(value), problems)
    if kind is int or isinstance(value, int):
        return _int(int.__index__(value), problems)
    if kind is float or isinstance(value, float):
        return _float(float.__float__(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _clean(bytes(value).decode("utf-8", "replace"), problems)
    if isinstance(value, enum.Enum):
        return _convert(value.value, depth, seen, problems)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return _text(value.isoformat(), problems)
    is_data = dataclasses.is_dataclass(value) and not isinstance(value, type)
    if not (is_data or isinstance(value, (Mapping, list, tuple, set, frozenset))):
        return _text(value, problems)
    if depth >= MAX_DEPTH:
        _note(problems, f"nested deeper than {MAX_DEPTH} levels")
        return f"<nested deeper than {MAX_DEPTH} levels>"
    if id(value) in seen:
        _note(problems, "cyclic reference")
        return "<cycle>"
    seen.add(id(value))
    try:
        if is_data:
            items: list[tuple[Any, Any]] = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
        elif isinstance(value, Mapping):
            try:
                items = list(dict.items(value) if isinstance(value, dict) else value.items())
            except Exception as exc:  # noqa: BLE001 - a mapping whose items() raises is captured empty and noted
                _note(problems, f"items() of {type_name(value)} raised {type_name(exc)}")
                items = []
        else:
            members = [_convert(item, depth + 1, seen, problems) for item in
                       (list.__iter__(value) if isinstance(value, list) else
                        tuple.__iter__(value) if isinstance(value, tuple) else iter(value))]
            if isinstance(value, (set, frozenset)):  # set order follows the per-process string hash
                members.sort(key=rfc8785.dumps)
            return members
        out: dict[str, Any] = {}
        for key, item in items:
            text = _key(key, depth + 1, seen, problems)
            converted = _convert(item, depth + 1, seen, problems)
            if text in out:
                _note(problems, "keys that read the same as text")
                if rfc8785.dumps(converted) <= rfc8785.dumps(out[text]):
                    continue
            out[text] = converted
        return out
    finally:
        seen.discard(id(value))
