"""Compiles a condition string into one Python function, once, at load time.

The language follows Falco's filter syntax::

    kind = execute_tool and name in (forbidden_tools) and not trusted_agent
    cost_usd > 0.5 or attributes["http.url"] startswith "http://"

Operators: ``and or not``, ``= == != < <= > >=``, ``in (a, b, list_name)``, ``not in``,
``startswith endswith contains icontains glob matches`` (regex), ``+ - * / %`` on numbers,
``attributes["key"]`` map access, ``true``/``false``, parentheses. Enum fields (kind, phase,
status, actor_type) accept bare symbols (``kind = chat``), checked at load. Other strings
are quoted. Names are fields, macros or lists; anything else is an error.

The parser emits typed Python source directly and the result is compiled with ``compile``:
the hot path runs a plain function, never an interpreter. Every constant goes through
``repr`` or a namespace slot, so the generated source can only read the record.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agentaudit.rules._fields import resolve_field

__all__ = ["CompileContext", "ConditionError", "Fragment", "compile_predicate", "parse_condition"]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?)
     |(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
     |(?P<op>==|!=|<=|>=|<|>|=|\(|\)|\[|\]|,|\+|-|\*|/|%)
     |(?P<id>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "startswith", "endswith", "contains", "icontains", "glob",
             "matches"}
_STRING_OPS = {"startswith", "endswith", "contains", "icontains", "glob", "matches"}
_ORDER_OPS = {"<", "<=", ">", ">="}


class ConditionError(Exception):
    """A condition does not parse or type-check; ``column`` is 1-based within the condition."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.column = column


@dataclass(frozen=True, slots=True)
class Fragment:
    """Typed Python source for a sub-expression.

    :attr kinds: for booleans, the event kinds for which it can be true (None: any kind);
        the evaluator uses it to skip rules that cannot match an event's kind.
    """

    code: str
    type: str  # bool, str, num, enum, list, map
    kinds: frozenset[str] | None = None
    symbols: frozenset[str] = frozenset()
    const: Any = None
    is_const: bool = False


@dataclass
class CompileContext:
    """What names resolve to while compiling: lists, macros (resolved lazily) and constant slots."""

    lists: Mapping[str, list[Any]]
    macro: Callable[[str], Fragment | None]
    namespace: dict[str, Any]

    def slot(self, value: Any) -> str:
        name = f"_k{len(self.namespace)}"
        self.namespace[name] = value
        return name


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # num, str, op, id, end
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ConditionError(f"unexpected character {text[pos]!r}", pos + 1)
        kind = match.lastgroup or "op"
        tokens.append(_Tok(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    tokens.append(_Tok("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str, ctx: CompileContext) -> None:
        self.text = text
        self.ctx = ctx
        self.tokens = _tokenize(text)
        self.i = 0

    # -- token helpers --
    def peek(self, offset: int = 0) -> _Tok:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def take(self) -> _Tok:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def at(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind in ("id", "op") and tok.text in words

    def expect(self, text: str) -> _Tok:
        tok = self.peek()
        if tok.text != text or tok.kind not in ("op", "id"):
            raise self.error(f"expected {text!r}, found {tok.text or 'end of condition'!r}", tok)
        return self.take()

    def error(self, message: str, tok: _Tok | None = None) -> ConditionError:
        return ConditionError(message, (tok or self.peek()).pos + 1)

    # -- grammar --
    def parse(self) -> Fragment:
        frag = self.boolean(self.or_expr(), self.tokens[0])
        if self.peek().kind != "end":
            raise self.error(f"unexpected {self.peek().text!r}")
        return frag

    def boolean(self, frag: Fragment, tok: _Tok) -> Fragment:
        if frag.type != "bool":
            raise self.error(f"type mismatch: expected a condition, got a {frag.type} value", tok)
        return frag

    def or_expr(self) -> Fragment:
        start = self.peek()
        left = self.and_expr()
        if not self.at("or"):
            return left
        parts = [self.boolean(left, start)]
        while self.at("or"):
            self.take()
            tok = self.peek()
            parts.append(self.boolean(self.and_expr(), tok))
        kinds = None if any(p.kinds is None for p in parts) else frozenset().union(*(p.kinds for p in parts))
        return Fragment("(" + " or ".join(p.code for p in parts) + ")", "bool", kinds)

    def and_expr(self) -> Fragment:
        start = self.peek()
        left = self.not_expr()
        if not self.at("and"):
            return left
        parts = [self.boolean(left, start)]
        while self.at("and"):
            self.take()
            tok = self.peek()
            parts.append(self.boolean(self.not_expr(), tok))
        known = [p.kinds for p in parts if p.kinds is not None]
        kinds = frozenset.intersection(*known) if known else None
        return Fragment("(" + " and ".join(p.code for p in parts) + ")", "bool", kinds)

    def not_expr(self) -> Fragment:
        if self.at("not") and not (self.peek(1).kind == "id" and self.peek(1).text == "in"):
            self.take()
            tok = self.peek()
            inner = self.boolean(self.not_expr(), tok)
            return Fragment(f"(not {inner.code})", "bool", None)
        return self.comparison()

    def comparison(self) -> Fragment:
        ltok = self.peek()
        left = self.sum_expr()
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("=", "==", "!=", *_ORDER_OPS):
            self.take()
            return self.compare(left, ltok, tok.text)
        if tok.kind == "id" and tok.text == "in":
            self.take()
            return self.membership(left, ltok, negate=False)
        if tok.kind == "id" and tok.text == "not" and self.peek(1).text == "in":
            self.take()
            self.take()
            return self.membership(left, ltok, negate=True)
        if tok.kind == "id" and tok.text in _STRING_OPS:
            self.take()
            return self.string_op(left, ltok, tok.text)
        return left

    def compare(self, left: Fragment, ltok: _Tok, op: str) -> Fragment:
        rtok = self.peek()
        if left.type == "enum" and rtok.kind == "id" and rtok.text not in _KEYWORDS and resolve_field(rtok.text) is None \
                and self.ctx.macro(rtok.text) is None:
            self.take()
            right = Fragment(repr(rtok.text), "str", const=rtok.text, is_const=True)
        else:
            right = self.sum_expr()
        pyop = "==" if op in ("=", "==") else op
        if op in _ORDER_OPS:
            if left.type != "num" or right.type != "num":
                raise self.error(f"type mismatch: {op!r} compares numbers, got {left.type} {op} {right.type}", ltok)
        elif {left.type, right.type} <= {"str", "enum"}:
            for side, other in ((left, right), (right, left)):
                if side.type == "enum" and other.is_const and other.const not in side.symbols:
                    raise self.error(
                        f"{other.const!r} is not a valid value here; expected one of {sorted(side.symbols)}", rtok)
        elif not (left.type == right.type == "num"):
            raise self.error(f"type mismatch: cannot compare {left.type} with {right.type} using {op!r}", ltok)
        kinds = None
        if pyop == "==" and left.code == "r['kind']" and right.is_const:
            kinds = frozenset([right.const])
        return Fragment(f"({left.code} {pyop} {right.code})", "bool", kinds)

    def membership(self, left: Fragment, ltok: _Tok, negate: bool) -> Fragment:
        if left.type not in ("str", "enum", "num"):
            raise self.error(f"type mismatch: 'in' needs a string or number on the left, got {left.type}", ltok)
        items: list[Any] = []
        if self.at("("):
            self.take()
            while True:
                items.extend(self.list_item(left))
                if self.at(","):
                    self.take()
                    continue
                self.expect(")")
                break
        else:
            items.extend(self.list_item(left, bare_only=True))
        values: list[Any] = []
        for item in items:
            if left.type == "num":
                try:
                    values.append(float(item))
                except (TypeError, ValueError):
                    raise self.error(f"type mismatch: list item {item!r} is not a number", ltok) from None
            else:
                if not isinstance(item, str):
                    item = str(item)
                if left.type == "enum" and item not in left.symbols:
                    raise self.error(f"{item!r} is not a valid value here; expected one of {sorted(left.symbols)}", ltok)
                values.append(item)
        slot = self.ctx.slot(frozenset(values))
        kinds = None if negate or left.code != "r['kind']" else frozenset(values)
        return Fragment(f"({left.code} {'not in' if negate else 'in'} {slot})", "bool", kinds)

    def list_item(self, left: Fragment, bare_only: bool = False) -> list[Any]:
        tok = self.take()
        if tok.kind == "id" and tok.text not in _KEYWORDS:
            if tok.text in self.ctx.lists:
                return list(self.ctx.lists[tok.text])
            if left.type == "enum" and tok.text in left.symbols and not bare_only:
                return [tok.text]
            raise self.error(f"unknown list {tok.text!r} (quote it if you meant a string)", tok)
        if bare_only:
            raise self.error("expected a list name or '(' after 'in'", tok)
        if tok.kind == "str":
            return [ast.literal_eval(tok.text)]
        if tok.kind == "num":
            return [ast.literal_eval(tok.text)]
        raise self.error(f"expected a list item, found {tok.text or 'end of condition'!r}", tok)

    def string_op(self, left: Fragment, ltok: _Tok, op: str) -> Fragment:
        rtok = self.peek()
        right = self.sum_expr()
        if op == "contains" and left.type == "list":
            if right.type not in ("str", "enum"):
                raise self.error(f"type mismatch: {op!r} needs a string on the right", rtok)
            return Fragment(f"({right.code} in {left.code})", "bool")
        if left.type not in ("str", "enum") or right.type not in ("str", "enum"):
            raise self.error(f"type mismatch: {op!r} works on strings, got {left.type} {op} {right.type}", ltok)
        if op in ("glob", "matches"):
            if not right.is_const:
                raise self.error(f"{op!r} needs a literal pattern", rtok)
            pattern = fnmatch.translate(right.const) if op == "glob" else right.const
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise self.error(f"bad regular expression {right.const!r}: {exc}", rtok) from None
            slot = self.ctx.slot(compiled.match if op == "glob" else compiled.search)
            return Fragment(f"({slot}({left.code}) is not None)", "bool")
        if op == "startswith":
            return Fragment(f"{left.code}.startswith({right.code})", "bool")
        if op == "endswith":
            return Fragment(f"{left.code}.endswith({right.code})", "bool")
        if op == "contains":
            return Fragment(f"({right.code} in {left.code})", "bool")
        return Fragment(f"({right.code}.lower() in {left.code}.lower())", "bool")

    def sum_expr(self) -> Fragment:
        left = self.term()
        while self.at("+", "-"):
            op = self.take()
            right = self.term()
            left = self.arith(left, right, op)
        return left

    def term(self) -> Fragment:
        left = self.unary()
        while self.at("*", "/", "%"):
            op = self.take()
            right = self.unary()
            left = self.arith(left, right, op)
        return left

    def arith(self, left: Fragment, right: Fragment, op: _Tok) -> Fragment:
        if left.type != "num" or right.type != "num":
            raise self.error(f"type mismatch: {op.text!r} works on numbers, got {left.type} and {right.type}", op)
        if op.text in ("/", "%"):
            # a zero divisor yields 0 instead of raising on the hot path
            return Fragment(f"(({left.code}) {op.text} _d if (_d := {right.code}) else 0)", "num")
        return Fragment(f"({left.code} {op.text} {right.code})", "num")

    def unary(self) -> Fragment:
        if self.at("-"):
            tok = self.take()
            inner = self.unary()
            if inner.type != "num":
                raise self.error("type mismatch: '-' needs a number", tok)
            return Fragment(f"(-{inner.code})", "num", const=-inner.const if inner.is_const else None,
                            is_const=inner.is_const)
        return self.atom()

    def atom(self) -> Fragment:
        tok = self.take()
        if tok.kind == "num":
            value = ast.literal_eval(tok.text)
            return Fragment(repr(value), "num", const=value, is_const=True)
        if tok.kind == "str":
            value = ast.literal_eval(tok.text)
            return Fragment(repr(value), "str", const=value, is_const=True)
        if tok.kind == "op" and tok.text == "(":
            inner = self.or_expr()
            self.expect(")")
            return inner
        if tok.kind == "id":
            if tok.text == "true":
                return Fragment("True", "bool")
            if tok.text == "false":
                return Fragment("False", "bool", frozenset())
            if tok.text in _KEYWORDS:
                raise self.error(f"unexpected {tok.text!r}", tok)
            field = resolve_field(tok.text)
            if field is not None:
                if field.type == "map":
                    self.expect("[")
                    ktok = self.take()
                    if ktok.kind != "str":
                        raise self.error("map keys are quoted strings: attributes[\"key\"]", ktok)
                    self.expect("]")
                    return Fragment(f"{field.code}.get({ast.literal_eval(ktok.text)!r}, '')", "str")
                return Fragment(field.code, field.type, symbols=field.symbols)
            macro = self.ctx.macro(tok.text)
            if macro is not None:
                return macro
            if tok.text in self.ctx.lists:
                raise self.error(f"list {tok.text!r} can only be used after 'in'", tok)
            raise self.error(f"unknown field or macro {tok.text!r}", tok)
        raise self.error(f"unexpected {tok.text or 'end of condition'!r}", tok)


def parse_condition(text: str, ctx: CompileContext) -> Fragment:
    """Parse and type-check ``text`` into a boolean :class:`Fragment`; raises :class:`ConditionError`."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("empty condition", 1)
    return _Parser(text, ctx).parse()


def compile_predicate(fragment: Fragment, namespace: dict[str, Any], label: str) -> Callable[[dict[str, Any]], bool]:
    """Turn a boolean fragment into a function of one record."""
    source = f"def _predicate(r):\n    return {fragment.code}\n"
    scope = dict(namespace)
    scope["__builtins__"] = {"len": len}
    exec(compile(source, f"<rule {label}>", "exec"), scope)  # noqa: S102 - source generated from our own parse tree
    return scope["_predicate"]
