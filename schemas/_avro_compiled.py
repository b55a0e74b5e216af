"""Avro binary readers and writers compiled from a schema into straight-line Python, once per schema.

fastavro interprets the schema for every record: a 35-field action cost it about 20 µs to read and
21 µs to write here, most of it dispatching on type names. The code generated below knows the field
order and types, so each field is a few bytecodes (``python -m benchmarks decode`` compares them).

Both sides are a fast path in front of fastavro, never a second authority:

- a compiled reader returns a record only for a body it read to the end without meeting anything
  outside the plain cases (one-byte union branches, varints of at most 64 bits, block counts no
  larger than the bytes left, strict UTF-8). Anything else raises and the caller asks fastavro,
  whose record or error stands. So a body the compiled reader accepts is one fastavro accepts,
  with the same record (``tests/unit/test_avro_compiled.py`` holds the two to that on generated
  bodies, ``tests/security/test_avro_compiled_hostile.py`` on mutated ones);
- a compiled writer writes only values of the exact Python types it expects (``str``, ``int``
  within range, ``float`` or ``int`` for a float or double, ``None``, known enum symbols);
  anything else raises and the caller lets fastavro write the record or name the problem. Avro's
  binary encoding has one byte sequence per value, and the tests hold the writer to fastavro's bytes.

Schemas with types these do not cover (named references, fixed, logical types, unions other than
``["null", T]``) get no compiled code: :func:`compile_reader` and :func:`compile_writer` return None.
"""

from __future__ import annotations

from collections.abc import Callable
from struct import Struct
from typing import Any

__all__ = ["compile_reader", "compile_writer", "varint"]

Reader = Callable[[bytes, int], "tuple[dict[str, Any], int]"]
Writer = Callable[[dict[str, Any]], bytes]

_DOUBLE = Struct("<d")
_FLOAT = Struct("<f")
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_PRIMITIVE = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


class _Unsupported(Exception):
    """This schema gets no compiled code."""


class _Odd(Exception):
    """Leave this body or record to fastavro."""


def _unsigned(n: int) -> bytes:
    """The varint of a non-negative ``n``, seven bits a byte (the tables below are built with it)."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Fourteen bits at a time: a varint's two bytes for the low 14 bits of a larger number (both with the
# continuation bit), and the whole varint of a number below 2**14; a timestamp in microseconds takes four
# lookups, not eight turns of a loop.
_PAIR = [bytes(((n & 0x7F) | 0x80, (n >> 7) | 0x80)) for n in range(1 << 14)]
_LAST = [_unsigned(n) for n in range(1 << 14)]


def _zigzag(value: int) -> bytes:
    """The varint of a long (the values the table below does not hold)."""
    n = (value << 1) ^ (value >> 63)
    if n < 0x4000:
        return _LAST[n]
    parts = []
    while n >= 0x4000:
        parts.append(_PAIR[n & 0x3FFF])
        n >>= 14
    parts.append(_LAST[n])
    return b"".join(parts)


_SMALL = 1 << 13  # varints of longs in [-_SMALL, _SMALL) are looked up, not computed
_VARINTS = [_LAST[v << 1] for v in range(_SMALL)] + [_LAST[(v << 1) ^ -1] for v in range(-_SMALL, 0)]


def varint(value: int) -> bytes:
    """Avro's zig-zag varint of a long."""
    if -_SMALL <= value < _SMALL:
        return _VARINTS[value]
    return _zigzag(value)


class _Source:
    """Lines of a generated function with fresh local names."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}{self._n}"

    def const(self, value: Any, stem: str = "k") -> str:
        name = self.name(stem)
        self.consts[name] = value
        return name

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)


def _type_name(schema: Any) -> str:
    if isinstance(schema, str):
        if schema not in _PRIMITIVE:
            raise _Unsupported(f"named reference {schema!r}")
        return schema
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        if "logicalType" in schema:
            raise _Unsupported(f"logical type {schema['logicalType']!r}")
        kind = schema["type"]
        if kind in _PRIMITIVE:
            return str(kind)
        if kind in ("record", "enum", "array", "map"):
            return str(kind)
        raise _Unsupported(f"type {kind!r}")
    raise _Unsupported(f"schema {schema!r}")


def _nullable_branch(union: list[Any]) -> Any:
    """The ``T`` of a ``["null", T]`` union, the one union the compiled code covers."""
    if len(union) != 2 or union[0] != "null" or _type_name(union[1]) in ("null", "union"):
        raise _Unsupported(f"union {union!r}")
    return union[1]


def _compile(schema: Any, emit: Callable[[_Source], None], head: str, tail: str, namespace: dict[str, Any],
             kind: str) -> Any:
    """The function ``head`` + the lines ``emit`` writes + ``tail``, or None if the schema has other types."""
    if _type_name(schema) != "record":
        return None
    src = _Source()
    try:
        emit(src)
    except _Unsupported:
        return None
    code = f"{head}\n" + "\n".join(src.lines) + f"\n{tail}\n"
    scope = {**namespace, **src.consts}
    exec(compile(code, f"<avro {kind} {schema.get('name', '?')}>", "exec"), scope)  # noqa: S102 - code generated above from the schema, no input text
    return scope[kind]


# -- readers ------------------------------------------------------------------------------------------


def _read_long(src: _Source, ind: int, target: str) -> None:
    src.emit(ind, "b = data[p]")
    src.emit(ind, "p += 1")
    src.emit(ind, "if b < 128:")
    src.emit(ind + 1, f"{target} = (b >> 1) ^ -(b & 1)")
    src.emit(ind, "else:")
    _read_long_tail(src, ind + 1, target)


def _read_long_tail(src: _Source, ind: int, target: str) -> None:
    """The rest of a varint whose first byte ``b`` (at ``p - 1``) had its high bit set: two bytes inline."""
    src.emit(ind, "c = data[p]")
    src.emit(ind, "if c < 128:")
    src.emit(ind + 1, "b = (b & 127) | (c << 7)")
    src.emit(ind + 1, f"{target} = (b >> 1) ^ -(b & 1)")
    src.emit(ind + 1, "p += 1")
    src.emit(ind, "else:")
    # three or more bytes (a timestamp takes eight): the rest inline
    src.emit(ind + 1, "v = (b & 127) | ((c & 127) << 7)")
    src.emit(ind + 1, "s = 14")
    src.emit(ind + 1, "c = data[p + 1]")
    src.emit(ind + 1, "p += 2")
    src.emit(ind + 1, "while c > 127:")
    src.emit(ind + 2, "if s == 63:")  # a tenth byte may hold only the 64th bit
    src.emit(ind + 3, "raise _Odd")
    src.emit(ind + 2, "v |= (c & 127) << s")
    src.emit(ind + 2, "s += 7")
    src.emit(ind + 2, "c = data[p]")
    src.emit(ind + 2, "p += 1")
    src.emit(ind + 1, "if s == 63 and c > 1:")
    src.emit(ind + 2, "raise _Odd")
    src.emit(ind + 1, "v |= c << s")
    src.emit(ind + 1, f"{target} = (v >> 1) ^ -(v & 1)")


def _read_count(src: _Source, ind: int, target: str) -> None:
    """A block count; a negative one is followed by the block's byte size, which is skipped."""
    _read_long(src, ind, target)
    src.emit(ind, f"if {target} < 0:")
    src.emit(ind + 1, f"{target} = -{target}")
    _read_long(src, ind + 1, "_")
    src.emit(ind, f"if {target} > n - p:")  # every item takes at least a byte: a bound on hostile counts
    src.emit(ind + 1, "raise _Odd")


def _read_value(src: _Source, schema: Any, ind: int, target: str) -> None:
    kind = _type_name(schema)
    if kind == "null":
        src.emit(ind, f"{target} = None")
    elif kind == "boolean":
        src.emit(ind, "b = data[p]")
        src.emit(ind, "p += 1")
        src.emit(ind, "if b > 1:")
        src.emit(ind + 1, "raise _Odd")
        src.emit(ind, f"{target} = b == 1")
    elif kind in ("int", "long"):
        _read_long(src, ind, target)
        if kind == "int":
            src.emit(ind, f"if not {_INT_MIN} <= {target} <= {_INT_MAX}:")
            src.emit(ind + 1, "raise _Odd")
    elif kind in ("float", "double"):
        unpack = "_float_from" if kind == "float" else "_double_from"
        src.emit(ind, f"{target} = {unpack}(data, p)[0]")
        src.emit(ind, f"p += {4 if kind == 'float' else 8}")
    elif kind in ("string", "bytes"):
        decode = ".decode()" if kind == "string" else ""
        # A slice past the end is short, not an error, so lengths are not checked against n: p only grows,
        # so once it is past the end every later read raises, and a last field ends the body past len(data),
        # which the caller's end check refuses. A negative length would move p back: refused here.
        src.emit(ind, "b = data[p]")
        src.emit(ind, "if b < 128:")  # a length under 64: one byte, even (an odd one is a negative length)
        src.emit(ind + 1, "if b & 1:")
        src.emit(ind + 2, "raise _Odd")
        src.emit(ind + 1, "e = p + 1 + (b >> 1)")
        src.emit(ind + 1, f"{target} = data[p + 1:e]{decode}")
        src.emit(ind, "else:")
        size = src.name("size")
        src.emit(ind + 1, "p += 1")
        _read_long_tail(src, ind + 1, size)
        src.emit(ind + 1, f"if {size} < 0:")
        src.emit(ind + 2, "raise _Odd")
        src.emit(ind + 1, f"e = p + {size}")
        src.emit(ind + 1, f"{target} = data[p:e]{decode}")
        src.emit(ind, "p = e")
    elif kind == "enum":
        symbols = src.const(tuple(schema["symbols"]), "symbols")
        index = src.name("index")
        _read_long(src, ind, index)
        src.emit(ind, f"if {index} < 0:")
        src.emit(ind + 1, "raise _Odd")
        src.emit(ind, f"{target} = {symbols}[{index}]")
    elif kind == "union":
        branch = _nullable_branch(schema)
        src.emit(ind, "b = data[p]")
        src.emit(ind, "p += 1")
        src.emit(ind, "if b == 0:")
        src.emit(ind + 1, f"{target} = None")
        src.emit(ind, "elif b == 2:")
        _read_value(src, branch, ind + 1, target)
        src.emit(ind, "else:")
        src.emit(ind + 1, "raise _Odd")
    elif kind == "array":
        _check_items(schema["items"])
        count, item = src.name("count"), src.name("item")
        src.emit(ind, f"{target} = []")
        _read_count(src, ind, count)
        src.emit(ind, f"while {count}:")
        src.emit(ind + 1, f"for _ in range({count}):")
        _read_value(src, schema["items"], ind + 2, item)
        src.emit(ind + 2, f"{target}.append({item})")
        _read_count(src, ind + 1, count)
    elif kind == "map":
        _check_items(schema["values"])
        count, key, item = src.name("count"), src.name("key"), src.name("item")
        src.emit(ind, f"{target} = {{}}")
        _read_count(src, ind, count)
        src.emit(ind, f"while {count}:")
        src.emit(ind + 1, f"for _ in range({count}):")
        _read_value(src, "string", ind + 2, key)
        _read_value(src, schema["values"], ind + 2, item)
        src.emit(ind + 2, f"{target}[{key}] = {item}")
        _read_count(src, ind + 1, count)
    else:  # record
        names = []
        for field in schema["fields"]:
            local = src.name("f")
            _read_value(src, field["type"], ind, local)
            names.append(f"{field['name']!r}: {local}")
        src.emit(ind, f"{target} = {{{', '.join(names)}}}")


def _check_items(schema: Any) -> None:
    """Items of arrays and maps must take at least one byte, so a count is bounded by the bytes left."""
    kind = _type_name(schema)
    if kind == "null" or (kind == "record" and not schema["fields"]):
        raise _Unsupported("arrays and maps of zero-byte items")


def compile_reader(schema: Any) -> Reader | None:
    """``read(data, offset) -> (record, end)`` for a parsed record schema, or None if it has other types.

    ``read`` raises on anything it leaves to fastavro (see the module docstring); ``end`` is where
    the body ended, for the caller's trailing-bytes check.
    """
    reader: Reader | None = _compile(
        schema, lambda src: _read_value(src, schema, 1, "record"), "def read(data, p):\n    n = len(data)",
        "    return record, p", {"_Odd": _Odd, "_double_from": _DOUBLE.unpack_from,
                                 "_float_from": _FLOAT.unpack_from}, "read")
    return reader


# -- writers ------------------------------------------------------------------------------------------


def _write_long(src: _Source, ind: int, value: str, *, non_negative: bool = False) -> None:
    """``out`` the varint of the long ``value`` (a local name): looked up inline when small, else :func:`_zigzag`."""
    low = "" if non_negative else f"{-_SMALL} <= "
    src.emit(ind, f"out(_V[{value}] if {low}{value} < {_SMALL} else _zigzag({value}))")


def _write_value(src: _Source, schema: Any, ind: int, value: str) -> None:
    kind = _type_name(schema)
    if kind == "null":
        src.emit(ind, f"if {value} is not None:")
        src.emit(ind + 1, "raise _Odd")
    elif kind == "boolean":
        src.emit(ind, f"if {value} is True:")
        src.emit(ind + 1, "out(b'\\x01')")
        src.emit(ind, f"elif {value} is False:")
        src.emit(ind + 1, "out(b'\\x00')")
        src.emit(ind, "else:")
        src.emit(ind + 1, "raise _Odd")
    elif kind in ("int", "long"):
        low, high = (_INT_MIN, _INT_MAX) if kind == "int" else (_LONG_MIN, _LONG_MAX)
        src.emit(ind, f"if type({value}) is not int or not {low} <= {value} <= {high}:")
        src.emit(ind + 1, "raise _Odd")
        _write_long(src, ind, value)
    elif kind in ("float", "double"):
        src.emit(ind, f"if type({value}) is not float and type({value}) is not int:")  # fastavro takes ints too
        src.emit(ind + 1, "raise _Odd")
        src.emit(ind, f"out({'_float' if kind == 'float' else '_double'}({value}))")
    elif kind in ("string", "bytes"):
        encoded = src.name("enc")
        if kind == "string":
            src.emit(ind, f"if type({value}) is not str:")
            src.emit(ind + 1, "raise _Odd")
            src.emit(ind, f"{encoded} = {value}.encode()")
        else:
            src.emit(ind, f"if type({value}) is not bytes:")
            src.emit(ind + 1, "raise _Odd")
            src.emit(ind, f"{encoded} = {value}")
        length = src.name("n")
        src.emit(ind, f"{length} = len({encoded})")
        _write_long(src, ind, length, non_negative=True)
        src.emit(ind, f"out({encoded})")
    elif kind == "enum":
        indexes = src.const({s: varint(i) for i, s in enumerate(schema["symbols"])}, "symbols")
        src.emit(ind, f"out({indexes}[{value}] if type({value}) is str else _odd())")
    elif kind == "union":
        branch = _nullable_branch(schema)
        src.emit(ind, f"if {value} is None:")
        src.emit(ind + 1, "out(b'\\x00')")
        src.emit(ind, "else:")
        src.emit(ind + 1, "out(b'\\x02')")
        _write_value(src, branch, ind + 1, value)
    elif kind == "array":
        _check_items(schema["items"])
        item = src.name("item")
        src.emit(ind, f"if type({value}) is not list:")
        src.emit(ind + 1, "raise _Odd")
        src.emit(ind, f"if {value}:")
        src.emit(ind + 1, f"out(_varint(len({value})))")
        src.emit(ind + 1, f"for {item} in {value}:")
        _write_value(src, schema["items"], ind + 2, item)
        src.emit(ind, "out(b'\\x00')")
    elif kind == "map":
        _check_items(schema["values"])
        key, item = src.name("key"), src.name("item")
        src.emit(ind, f"if type({value}) is not dict:")
        src.emit(ind + 1, "raise _Odd")
        src.emit(ind, f"if {value}:")
        src.emit(ind + 1, f"out(_varint(len({value})))")
        src.emit(ind + 1, f"for {key}, {item} in {value}.items():")
        _write_value(src, "string", ind + 2, key)
        _write_value(src, schema["values"], ind + 2, item)
        src.emit(ind, "out(b'\\x00')")
    else:  # record: a missing field or a record that is not a dict is fastavro's to judge
        record = src.name("rec")
        src.emit(ind, f"{record} = {value}")
        src.emit(ind, f"if type({record}) is not dict:")
        src.emit(ind + 1, "raise _Odd")
        for field in schema["fields"]:
            local = src.name("v")
            src.emit(ind, f"{local} = {record}[{field['name']!r}]")
            _write_value(src, field["type"], ind, local)


def _odd() -> Any:
    raise _Odd


def compile_writer(schema: Any) -> Writer | None:
    """``write(record) -> body`` for a parsed record schema, or None if it has other types.

    ``write`` raises on any value it leaves to fastavro (see the module docstring).
    """
    writer: Writer | None = _compile(
        schema, lambda src: _write_value(src, schema, 1, "record"),
        "def write(record):\n    parts = []\n    out = parts.append", "    return b''.join(parts)",
        {"_V": _VARINTS, "_zigzag": _zigzag, "_varint": varint, "_Odd": _Odd, "_odd": _odd, "_double": _DOUBLE.pack,
         "_float": _FLOAT.pack}, "write")
    return writer
