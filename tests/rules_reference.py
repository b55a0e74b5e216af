"""A plain interpreter of parsed conditions (``Fragment.node``), the reference the compiler is tested against.

It reads fields by name with its own table and walks the tree; it shares no code with the
compiler's code generation, so a disagreement points at one of them. Semantics it states:
``and``/``or`` short-circuit, ``x / 0`` and ``x % 0`` are 0 (the divisor is read first, and ``x`` not at all when
it is 0), ``glob`` is ``fnmatch.fnmatchcase``, ``matches`` is ``re.search`` (the test only generates patterns
on which Python's re and RE2 agree), ``icontains`` compares ``lower()``-ed strings.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from typing import Any

_NULLABLE_STR = {"parent_action_id", "error_type", "error_message", "model", "input_digest", "output_digest",
                 "input_body", "output_body"}
_NULLABLE_NUM = {"latency_us", "end_time_us"}
_DERIVED = {
    "actor_type": lambda r: r["actor"]["type"],
    "actor_id": lambda r: r["actor"]["id"],
    "environment": lambda r: r.get("environment", ""),
    "event_hash": lambda r: r.get("event_hash", ""),
    "tokens_total": lambda r: r["input_tokens"] + r["output_tokens"],
    "latency_ms": lambda r: (r["latency_us"] or 0) / 1000.0,
    "links_count": lambda r: len(r["links"]),
    "args_digest": lambda r: r["attributes"].get("args_hash") or r["input_digest"] or r["action_id"],
}
_CMP = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def read_field(record: dict[str, Any], name: str) -> Any:
    if name in _DERIVED:
        return _DERIVED[name](record)
    value = record[name]
    if value is None and name in _NULLABLE_STR:
        return ""
    if value is None and name in _NULLABLE_NUM:
        return 0
    return value


def interpret(node: tuple, record: dict[str, Any]) -> Any:
    """The value of ``node`` on ``record``."""
    tag = node[0]
    if tag == "const":
        return node[1]
    if tag == "field":
        return read_field(record, node[1])
    if tag == "map":
        return read_field(record, node[1]).get(node[2], "")
    if tag == "and":
        return all(interpret(part, record) for part in node[1])
    if tag == "or":
        return any(interpret(part, record) for part in node[1])
    if tag == "not":
        return not interpret(node[1], record)
    if tag == "cmp":
        return _CMP[node[1]](interpret(node[2], record), interpret(node[3], record))
    if tag == "in":
        found = interpret(node[1], record) in node[2]
        return not found if node[3] else found
    if tag == "has":
        return interpret(node[2], record) in interpret(node[1], record)
    if tag == "str":
        left, right = interpret(node[2], record), interpret(node[3], record)
        if node[1] == "startswith":
            return left.startswith(right)
        if node[1] == "endswith":
            return left.endswith(right)
        if node[1] == "contains":
            return right in left
        return right.lower() in left.lower()
    if tag == "regex":
        text = interpret(node[2], record)
        if node[1] == "glob":
            return fnmatch.fnmatchcase(text, node[3])
        return re.search(node[3], text) is not None
    if tag == "arith":
        if node[1] in ("/", "%"):  # the divisor first: when it is 0 the dividend is not read at all
            right = interpret(node[3], record)
            if not right:
                return 0
            left = interpret(node[2], record)
            return left / right if node[1] == "/" else left % right
        return _ARITH[node[1]](interpret(node[2], record), interpret(node[3], record))
    if tag == "neg":
        return -interpret(node[1], record)
    raise AssertionError(f"unknown node {node!r}")
