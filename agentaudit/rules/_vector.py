"""Compiles a parsed condition (``Fragment.node``) a second way: to a function of a whole batch.

The per-event path runs the Python source :mod:`._condition` generates, one record at a time; this
builds, from the same tree, a closure over Arrow compute kernels that returns the condition's value
for every row of a :class:`~._table.TableRows` at once. Semantics are the per-event path's:

- fields read as there: a null string as ``""``, a null number as ``0``; numbers as float64;
- ``x / 0`` and ``x % 0`` are 0;
- ``glob``, ``matches`` and ``icontains`` apply the per-event code's own function (RE2, ``lower()``)
  once per distinct value of the column, so both paths agree on every string;
- ``%``, ``contains`` on a list, string operators with a field on the right and multi-field
  exceptions are computed per row in Python over the column values (rare in rules).

A tree this module does not know raises :class:`VectorError` at load; the evaluator then keeps that
rule on the per-event predicate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from agentaudit.rules._fields import resolve_field
from agentaudit.rules._regex import compile_glob, compile_matches
from agentaudit.rules._table import TableRows

__all__ = ["Mask", "VectorError", "compile_mask"]

#: A compiled condition: the batch in, one boolean per row out.
Mask = Callable[[TableRows], pa.BooleanArray]
_Value = Callable[[TableRows], Any]  # an array, or a scalar that broadcasts
_F64 = pa.float64()
_CMP = {"==": pc.equal, "!=": pc.not_equal, "<": pc.less, "<=": pc.less_equal, ">": pc.greater,
        ">=": pc.greater_equal}


class VectorError(Exception):
    """A condition tree holds a node the batch compiler does not know."""


def compile_mask(node: tuple[Any, ...]) -> Mask:
    """The batch form of boolean condition ``node``; raises :class:`VectorError`."""
    kind, value = _compile(node)
    if kind != "bool":
        raise VectorError(f"not a condition: {node[0]!r}")

    def mask(rows: TableRows) -> pa.BooleanArray:
        out = value(rows)
        if isinstance(out, pa.Scalar):
            out = pa.repeat(out, rows.n)
        elif isinstance(out, pa.ChunkedArray):
            out = out.combine_chunks()
        return out

    return mask


def _memo(node: tuple[Any, ...], fn: _Value) -> _Value:
    key = id(node)  # a macro's node is one object in every rule that names it

    def cached(rows: TableRows) -> Any:
        memo = rows.memo
        found = memo.get(key)
        if found is None:
            found = memo[key] = fn(rows)
        return found

    cached.node = node  # type: ignore[attr-defined]  # held so that its id is never reused while compiled

    return cached


def _compile(node: tuple[Any, ...]) -> tuple[str, _Value]:
    kind, fn = _COMPILERS.get(node[0], _unknown)(node)
    return kind, _memo(node, fn) if node[0] not in ("const", "field") else fn


def _unknown(node: tuple[Any, ...]) -> tuple[str, _Value]:
    raise VectorError(f"no batch form for condition node {node[0]!r}")


def _const(node: tuple[Any, ...]) -> tuple[str, _Value]:
    value = node[1]
    if isinstance(value, bool):
        scalar = pa.scalar(value, pa.bool_())
        return "bool", lambda rows: scalar
    if isinstance(value, str):
        text = pa.scalar(value, pa.string())
        return "str", lambda rows: text
    number = pa.scalar(float(value), _F64)
    return "num", lambda rows: number


def _field(node: tuple[Any, ...]) -> tuple[str, _Value]:
    name = node[1]
    field = resolve_field(name)
    if field is None:
        raise VectorError(f"unknown field {name!r}")
    if name in _COMPUTED:
        return field.type, _COMPUTED[name]
    if field.type in ("str", "enum"):
        return "str", lambda rows: rows.str_(name)
    if field.type == "num":
        return "num", lambda rows: rows.num(name)
    if field.type == "list":
        return "list", lambda rows: rows.raw(name)
    return "map", lambda rows: rows.raw(name)


def _lookup(rows: TableRows, name: str, key: str) -> Any:
    if not rows.has(name):
        return pa.scalar("", pa.string())
    return pc.fill_null(pc.map_lookup(rows.raw(name), pa.scalar(key, pa.string()), "first"), "")


def _args_digest(rows: TableRows) -> Any:
    bound = _lookup(rows, "attributes", "args_hash")
    digest = rows.str_("input_digest")
    return pc.if_else(pc.not_equal(bound, ""), bound,
                      pc.if_else(pc.not_equal(digest, ""), digest, rows.str_("action_id")))


def _links_count(rows: TableRows) -> Any:
    return pc.fill_null(pc.list_value_length(rows.raw("links")), 0).cast(_F64)


_COMPUTED: dict[str, _Value] = {
    "tokens_total": lambda rows: pc.add(rows.num("input_tokens"), rows.num("output_tokens")),
    "latency_ms": lambda rows: pc.divide(rows.num("latency_us"), 1000.0),
    "links_count": _links_count,
    "event_hash": lambda rows: rows.str_("event_hash") if rows.has("event_hash") else pa.scalar("", pa.string()),
    "args_digest": _args_digest,
}


def _map(node: tuple[Any, ...]) -> tuple[str, _Value]:
    _, name, key = node
    return "str", lambda rows: _lookup(rows, name, key)


def _and_or(node: tuple[Any, ...]) -> tuple[str, _Value]:
    parts = [_compile(part)[1] for part in node[1]]
    join = pc.and_ if node[0] == "and" else pc.or_

    def value(rows: TableRows) -> Any:
        out = parts[0](rows)
        for part in parts[1:]:
            out = join(out, part(rows))
        return out

    return "bool", value


def _not(node: tuple[Any, ...]) -> tuple[str, _Value]:
    inner = _compile(node[1])[1]
    return "bool", lambda rows: pc.invert(inner(rows))


def _cmp(node: tuple[Any, ...]) -> tuple[str, _Value]:
    _, op, left, right = node
    lf, rf = _compile(left)[1], _compile(right)[1]
    kernel = _CMP[op]
    return "bool", lambda rows: kernel(lf(rows), rf(rows))


def _in(node: tuple[Any, ...]) -> tuple[str, _Value]:
    _, left, items, negate = node
    kind, lf = _compile(left)
    if kind == "num":
        values = pa.array(sorted(float(v) for v in items), _F64)
    else:
        values = pa.array(sorted(str(v) for v in items), pa.string())

    def value(rows: TableRows) -> Any:
        found = pc.is_in(lf(rows), value_set=values)
        return pc.invert(found) if negate else found

    return "bool", value


def _str(node: tuple[Any, ...]) -> tuple[str, _Value]:
    _, op, left, right = node
    lf = _compile(left)[1]
    if right[0] == "const":
        pattern = right[1]
        if op == "startswith":
            return "bool", lambda rows: pc.starts_with(lf(rows), pattern=pattern)
        if op == "endswith":
            return "bool", lambda rows: pc.ends_with(lf(rows), pattern=pattern)
        if op == "contains":
            return "bool", lambda rows: pc.match_substring(lf(rows), pattern=pattern)
        needle = pattern.lower()
        return "bool", lambda rows: _per_value(lf(rows), lambda text: needle in text.lower(), rows.n)
    rf = _compile(right)[1]
    fn = {"startswith": str.startswith, "endswith": str.endswith,
          "contains": lambda text, part: part in text,
          "icontains": lambda text, part: part.lower() in text.lower()}[op]
    return "bool", lambda rows: _per_row(fn, rows.n, lf(rows), rf(rows))


def _regex(node: tuple[Any, ...]) -> tuple[str, _Value]:
    _, op, left, pattern = node
    lf = _compile(left)[1]
    matcher = (compile_glob if op == "glob" else compile_matches)(pattern)
    return "bool", lambda rows: _per_value(lf(rows), matcher, rows.n)


def _has(node: tuple[Any, ...]) -> tuple[str, _Value]:
    _, items, item = node
    lf, rf = _compile(items)[1], _compile(item)[1]
    return "bool", lambda rows: _per_row(lambda xs, x: x in (xs or ()), rows.n, lf(rows), rf(rows))


def _arith(node: tuple[Any, ...]) -> tuple[str, _Value]:
    _, op, left, right = node
    lf, rf = _compile(left)[1], _compile(right)[1]
    if op == "+":
        return "num", lambda rows: pc.add(lf(rows), rf(rows))
    if op == "-":
        return "num", lambda rows: pc.subtract(lf(rows), rf(rows))
    if op == "*":
        return "num", lambda rows: pc.multiply(lf(rows), rf(rows))
    if op == "/":
        def divide(rows: TableRows) -> Any:
            divisor = rf(rows)
            return pc.if_else(pc.not_equal(divisor, 0.0), pc.divide(lf(rows), divisor), 0.0)
        return "num", divide
    return "num", lambda rows: _per_row(lambda a, b: a % b if b else 0.0, rows.n, lf(rows), rf(rows), type_=_F64)


def _neg(node: tuple[Any, ...]) -> tuple[str, _Value]:
    inner = _compile(node[1])[1]
    return "num", lambda rows: pc.negate(inner(rows))


def _exc(node: tuple[Any, ...]) -> tuple[str, _Value]:
    """An exception entry: the row's (field, ...) values are not among the listed tuples."""
    _, names, tuples = node
    fields = [_compile(("field", name)) for name in names]
    if len(fields) == 1:
        items = {t[0] for t in tuples}
        return _in(("in", ("field", names[0]), frozenset(items), True))

    def value(rows: TableRows) -> Any:
        columns = [_pylist(fn(rows), rows.n) for _, fn in fields]
        return pa.array([t not in tuples for t in zip(*columns, strict=True)], pa.bool_())

    return "bool", value


_COMPILERS: dict[str, Callable[[tuple[Any, ...]], tuple[str, _Value]]] = {
    "const": _const, "field": _field, "map": _map, "and": _and_or, "or": _and_or, "not": _not, "cmp": _cmp,
    "in": _in, "str": _str, "regex": _regex, "has": _has, "arith": _arith, "neg": _neg, "exc": _exc,
}


def _pylist(value: Any, n: int) -> list[Any]:
    if isinstance(value, pa.Scalar):
        return [value.as_py()] * n
    return list(value.to_pylist())


def _per_row(fn: Callable[..., Any], n: int, *values: Any, type_: pa.DataType | None = None) -> pa.Array:
    columns = [_pylist(v, n) for v in values]
    out = [fn(*args) for args in zip(*columns, strict=True)]
    return pa.array(out, type_ or pa.bool_())


def _per_value(strings: Any, fn: Callable[[str], bool], n: int) -> pa.Array:
    """``fn`` of each row's string, computed once per distinct string (the column's dictionary)."""
    if isinstance(strings, pa.Scalar):
        return pa.repeat(pa.scalar(bool(fn(strings.as_py())), pa.bool_()), n)
    encoded = pc.dictionary_encode(strings)
    verdicts = pa.array([bool(fn(s)) for s in encoded.dictionary.to_pylist()], pa.bool_())
    return verdicts.take(encoded.indices)
