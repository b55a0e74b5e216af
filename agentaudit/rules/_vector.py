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

Numbers are float64 here and Python ints there: the two agree while every integer a condition
computes stays below 2**53. Each integer-valued node therefore comes with a guard, and the rows where
one reaches 2**53 are returned as ``unsafe``: the evaluator decides those rows with the per-event
predicate (which may also raise on them, as Python's integers can outgrow a float).

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
from agentaudit.schemas import ACTION_LEAVES

__all__ = ["Mask", "VectorError", "compile_mask"]

#: A compiled condition: the batch in; out, one boolean per row and the rows it cannot decide exactly (or None).
Mask = Callable[[TableRows], tuple[pa.BooleanArray, pa.BooleanArray | None]]
_Value = Callable[[TableRows], Any]  # an array, or a scalar that broadcasts
_F64 = pa.float64()
_EXACT = float(2**53)  # float64 holds every integer below this
_INT_TYPES = frozenset({"int", "long"})
_CMP = {"==": pc.equal, "!=": pc.not_equal, "<": pc.less, "<=": pc.less_equal, ">": pc.greater,
        ">=": pc.greater_equal}


class VectorError(Exception):
    """A condition tree holds a node the batch compiler does not know."""


def compile_mask(node: tuple[Any, ...]) -> Mask:
    """The batch form of boolean condition ``node``; raises :class:`VectorError`."""
    guards: list[_Value] = []
    kind, value = _compile(node, guards)
    if kind != "bool":
        raise VectorError(f"not a condition: {node[0]!r}")
    checks = tuple({id(g): g for g in guards}.values())

    def mask(rows: TableRows) -> tuple[pa.BooleanArray, pa.BooleanArray | None]:
        unsafe = None
        for check in checks:
            flagged = check(rows)
            unsafe = flagged if unsafe is None else pc.or_(unsafe, flagged)
        if unsafe is not None:
            unsafe = _array(unsafe, rows.n)
            if not pc.any(unsafe).as_py():
                unsafe = None
        return _array(value(rows), rows.n), unsafe

    return mask


def _array(value: Any, n: int) -> pa.Array:
    if isinstance(value, pa.Scalar):
        return pa.repeat(value, n)
    if isinstance(value, pa.ChunkedArray):
        return value.combine_chunks()
    return value


def _guard(node: tuple[Any, ...], fn: _Value) -> _Value:
    """The rows where integer-valued ``node`` leaves float64's exact range (memoized like the values)."""
    key = (id(node), "guard")

    def unsafe(rows: TableRows) -> Any:
        memo = rows.memo
        found = memo.get(key)
        if found is None:
            found = memo[key] = pc.greater_equal(pc.abs(fn(rows)), _EXACT)
        return found

    unsafe.node = node  # type: ignore[attr-defined]  # held so that its id is never reused while compiled
    return unsafe


def _memo(node: tuple[Any, ...], fn: _Value) -> _Value:
    key: Any = id(node)  # a macro's node is one object in every rule that names it

    def cached(rows: TableRows) -> Any:
        memo = rows.memo
        found = memo.get(key)
        if found is None:
            found = memo[key] = fn(rows)
        return found

    cached.node = node  # type: ignore[attr-defined]  # held so that its id is never reused while compiled

    return cached


def _compile(node: tuple[Any, ...], guards: list[_Value]) -> tuple[str, _Value]:
    """``node``'s kind and batch function; an integer-valued node's guard is added to ``guards``."""
    kind, fn = _COMPILERS.get(node[0], _unknown)(node, guards)
    if node[0] not in ("const", "field"):
        fn = _memo(node, fn)
    if kind == "num" and _is_int(node):
        guards.append(_guard(node, fn))
    return kind, fn


def _is_int(node: tuple[Any, ...]) -> bool:
    """Whether Python computes ``node`` as an int (exact) rather than a float."""
    tag = node[0]
    if tag == "const":
        return isinstance(node[1], int) and not isinstance(node[1], bool)
    if tag == "field":
        return node[1] in _INT_FIELDS
    if tag == "neg":
        return _is_int(node[1])
    if tag == "arith":
        return node[1] != "/" and _is_int(node[2]) and _is_int(node[3])
    return False


def _unknown(node: tuple[Any, ...], guards: list[_Value]) -> tuple[str, _Value]:
    raise VectorError(f"no batch form for condition node {node[0]!r}")


def _const(node: tuple[Any, ...], guards: list[_Value]) -> tuple[str, _Value]:
    value = node[1]
    if isinstance(value, bool):
        scalar = pa.scalar(value, pa.bool_())
        return "bool", lambda rows: scalar
    if isinstance(value, str):
        text = pa.scalar(value, pa.string())
        return "str", lambda rows: text
    number = pa.scalar(float(value), _F64)
    return "num", lambda rows: number


def _field(node: tuple[Any, ...], guards: list[_Value]) -> tuple[str, _Value]:
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


#: fields Python reads as ints (whose float64 copies are exact only below 2**53)
_INT_FIELDS = frozenset({*(leaf.name for leaf in ACTION_LEAVES if leaf.type in _INT_TYPES), "tokens_total",
                         "links_count"})
_COMPUTED: dict[str, _Value] = {
    "tokens_total": lambda rows: pc.add(rows.num("input_tokens"), rows.num("output_tokens")),
    "latency_ms": lambda rows: pc.divide(rows.num("latency_us"), 1000.0),
    "links_count": _links_count,
    "event_hash": lambda rows: rows.str_("event_hash") if rows.has("event_hash") else pa.scalar("", pa.string()),
    "args_digest": _args_digest,
}


def _map(node: tuple[Any, ...], guards: list[_Value]) -> tuple[str, _Value]:
    _, name, key = node
    return "str", lambda rows: _lookup(rows, name, key)


def _and_or(node: tuple[Any, ...], guards: list[_Value]) -> tuple[str, _Value]:
    parts = [_compile(part, guards)[1] for part in node[1]]
    join = pc.and_ if node[0] == "and" else pc.or_

    def value(rows: TableRows) -> Any:
        out = parts[0](rows)
        for part in parts[1:]:
            out = join(out, part(rows))
        return out

    return "bool", value


def _not(node: tuple[Any, ...], guards: list[_Value]) -> tuple[str, _Value]:
    inner = _compile(node[1], guards)[1]
    return "bool", lambda rows: pc.invert(inner(rows))


def _cmp(node: tuple[Any, ...], guards: list[_Value]) -> tuple[str, _Value]:
    _, op, left, right = node
    lf, rf = _compile(left, guards)[1], _compile(right, guards)[1]
    kernel = _CMP[op]
    return "bool", lambda rows: kernel(lf(rows), rf(rows))


def _in(node: tuple[Any, ...], guards: list[_Value]) -> tuple[str, _Value]:
    _, left, items, negate = node
    kind, lf = _compile(left, guards)
    if kind == "num":
        # is_in hashes floats, and -0.0 hashes apart from 0.0 though they are equal: adding 0.0 makes every
        # zero +0.0, on both sides (``-depth in (0)`` on depth 0 is true, as on the per-event path)
        values = pa.array(sorted(float(v) + 0.0 for v in items), _F64)
        signed = lf

        def lf(rows: TableRows) -> Any:
            return pc.add(signed(rows), 0.0)
    else:
        values = pa.array(sorted(str(v) for v in items), pa.string())

    def value(rows: TableRows) -> Any:
        found = pc.is_in(lf(rows), value_set=values)
        return pc.invert(found) if negate else found

    return "bool", value


def _str(node: tuple[Any, ...], guards: list[_Value]) -> tuple[str, _Value]:
    _, op, left, right = node
    lf = _compile(left, guards)[1]
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
    rf = _compile(right, guards)[1]
    fn = {"startswith": str.startswith, "endswith": str.endswith,
          "contains": lambda text, part: part in text,
          "icontains": lambda text, part: part.lower() in text.lower()}[op]
    return "bool", lambda rows: _per_row(fn, rows.n, lf(rows), rf(rows))


def _regex(node: tuple[Any, ...], guards: list[_Value]) -> tuple[str, _Value]:
    _, op, left, pattern = node
    lf = _compile(left, guards)[1]
    matcher = (compile_glob if op == "glob" else compile_matches)(pattern)
    return "bool", lambda rows: _per_value(lf(rows), matcher, rows.n)


def _has(node: tuple[Any, ...], guards: list[_Value]) -> tuple[str, _Value]:
    _, items, item = node
    lf, rf = _compile(items, guards)[1], _compile(item, guards)[1]
    return "bool", lambda rows: _per_row(lambda xs, x: x in (xs or ()), rows.n, lf(rows), rf(rows))


def _arith(node: tuple[Any, ...], guards: list[_Value]) -> tuple[str, _Value]:
    _, op, left, right = node
    lf, rf = _compile(left, guards)[1], _compile(right, guards)[1]
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


def _neg(node: tuple[Any, ...], guards: list[_Value]) -> tuple[str, _Value]:
    inner = _compile(node[1], guards)[1]
    return "num", lambda rows: pc.negate(inner(rows))


def _exc(node: tuple[Any, ...], guards: list[_Value]) -> tuple[str, _Value]:
    """An exception entry: the row's (field, ...) values are not among the listed tuples."""
    _, names, tuples = node
    fields = [_compile(("field", name), guards) for name in names]
    if len(fields) == 1:
        items = {t[0] for t in tuples}
        return _in(("in", ("field", names[0]), frozenset(items), True), guards)

    def value(rows: TableRows) -> Any:
        columns = [_pylist(fn(rows), rows.n) for _, fn in fields]
        return pa.array([t not in tuples for t in zip(*columns, strict=True)], pa.bool_())

    return "bool", value


_COMPILERS: dict[str, Callable[[tuple[Any, ...], list[_Value]], tuple[str, _Value]]] = {
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
