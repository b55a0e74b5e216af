"""Compiles a condition string into one Python function, once, at load time.

The language follows Falco's filter syntax::

    kind = execute_tool and name in (forbidden_tools) and not trusted_agent
    cost_usd > 0.5 or attributes["http.url"] startswith "http://"

Operators: ``and or not``, ``= == != < <= > >=``, ``in (a, b, list_name)``, ``not in``,
``startswith endswith contains icontains glob matches`` (regex, RE2 syntax), ``+ - * / %`` on
numbers (left to right; ``x / 0`` and ``x % 0`` are 0), ``attributes["key"]`` map access,
``true``/``false``, parentheses. Enum fields (kind, phase, status, actor_type) accept bare
symbols (``kind = chat``), checked at load. Other strings are quoted. Names are fields, macros
or lists; anything else is an error. The full reference is docs/conditions.md.

The parser builds a typed tree (:attr:`Fragment.node`, nested tuples) and, at the same step,
the Python source of each node; the source is compiled with ``compile``: the hot path runs a
plain function, never an interpreter. Every constant goes through ``repr`` or a namespace slot,
so the generated source can only read the record. What a rule author can make the loader do is
bounded: numeric literals are finite, patterns compile with RE2, nesting and the code that
macros expand to have limits.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agentaudit.rules._fields import resolve_field
from agentaudit.rules._regex import PatternError, compile_glob, compile_matches

__all__ = ["MAX_CODE_CHARS", "MAX_DEPTH", "MAX_LIST_ITEMS", "MAX_PATTERNS", "CompileContext", "ConditionError",
           "Fragment", "compile_predicate", "parse_condition"]

#: Deepest nesting of parentheses, ``not`` and unary ``-`` in one condition.
MAX_DEPTH = 50
#: Most Python source one condition may compile to, macros expanded (a macro used twice in each of
#: 30 nested macros would otherwise expand to 2**30 copies).
MAX_CODE_CHARS = 100_000
_MAX_NUMBER_CHARS = 64
#: Most list items all ``in`` tests of a rule set may expand to (a 1 MiB list named in every rule of
#: another file would otherwise be copied once per rule).
MAX_LIST_ITEMS = 1_000_000
#: Most distinct ``glob``/``matches`` patterns in a rule set; each may hold up to 1 MiB of RE2 memory.
MAX_PATTERNS = 1_000

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
    #: the parsed tree: ``("const", v)``, ``("field", name)``, ``("map", name, key)``, ``("and"|"or", parts)``,
    #: ``("not", x)``, ``("cmp", op, l, r)``, ``("in", l, values, negate)``, ``("str", op, l, r)``,
    #: ``("regex", "glob"|"matches", l, pattern)``, ``("has", list, item)``, ``("arith", op, l, r)``, ``("neg", x)``
    node: tuple[Any, ...] = ()


@dataclass
class CompileContext:
    """What names resolve to while compiling: lists, macros (resolved lazily) and constant slots."""

    lists: Mapping[str, list[Any]]
    macro: Callable[[str], Fragment | None]
    namespace: dict[str, Any]
    temps: int = 0
    #: the items of each distinct ``in``, built once; and how many list items were expanded (MAX_LIST_ITEMS)
    sets: dict[tuple[Any, ...], frozenset[Any]] = dataclasses.field(default_factory=dict)
    expanded: int = 0
    #: each distinct glob or matches pattern, compiled once (MAX_PATTERNS of them at most)
    patterns: dict[tuple[str, str], Callable[[str], bool]] = dataclasses.field(default_factory=dict)

    def slot(self, value: Any) -> str:
        name = f"_k{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def temp(self) -> str:
        """A local name no other node uses (``(a / b) / c`` once reused one and divided by b twice)."""
        self.temps += 1
        return f"_d{self.temps}"


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
        self.depth = 0
        self.inlined = 0

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
        kinds = None if any(p.kinds is None for p in parts) else frozenset[str]().union(
            *(p.kinds for p in parts if p.kinds is not None))
        return Fragment("(" + " or ".join(p.code for p in parts) + ")", "bool", kinds,
                        node=("or", tuple(p.node for p in parts)))

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
        return Fragment("(" + " and ".join(p.code for p in parts) + ")", "bool", kinds,
                        node=("and", tuple(p.node for p in parts)))

    def nest(self, tok: _Tok) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"nested more than {MAX_DEPTH} levels deep; split it into macros", tok)

    def not_expr(self) -> Fragment:
        if self.at("not") and not (self.peek(1).kind == "id" and self.peek(1).text == "in"):
            self.nest(self.take())
            tok = self.peek()
            inner = self.boolean(self.not_expr(), tok)
            self.depth -= 1
            return Fragment(f"(not {inner.code})", "bool", None, node=("not", inner.node))
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
            right = Fragment(repr(rtok.text), "str", const=rtok.text, is_const=True, node=("const", rtok.text))
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
        return Fragment(f"({left.code} {pyop} {right.code})", "bool", kinds,
                        node=("cmp", pyop, left.node, right.node))

    def membership(self, left: Fragment, ltok: _Tok, negate: bool) -> Fragment:
        if left.type not in ("str", "enum", "num"):
            raise self.error(f"type mismatch: 'in' needs a string or number on the left, got {left.type}", ltok)
        names: list[str] = []  # list names, each once
        literals: list[Any] = []
        if self.at("("):
            self.take()
            while True:
                self.list_item(left, names, literals)
                if self.at(","):
                    self.take()
                    continue
                self.expect(")")
                break
        else:
            self.list_item(left, names, literals, bare_only=True)
        key = (left.type, left.symbols, tuple(names), tuple((type(x), x) for x in literals))  # "1" is not "1.0"
        frozen = self.ctx.sets.get(key)
        if frozen is None:
            frozen = self.ctx.sets[key] = self.item_set(left, ltok, names, literals)
        slot = self.ctx.slot(frozen)
        kinds = None if negate or left.code != "r['kind']" else frozen
        return Fragment(f"({left.code} {'not in' if negate else 'in'} {slot})", "bool", kinds,
                        node=("in", left.node, frozen, negate))

    def item_set(self, left: Fragment, ltok: _Tok, names: list[str], literals: list[Any]) -> frozenset[Any]:
        """The items of an ``in``, converted to the left side's type; every list expanded counts to a budget."""
        self.ctx.expanded += len(literals) + sum(len(self.ctx.lists[name]) for name in names)
        if self.ctx.expanded > MAX_LIST_ITEMS:
            raise self.error(f"'in' lists expand to more than {MAX_LIST_ITEMS:,} items in this rule set; put the "
                             "items in one list and name it", ltok)
        values: list[Any] = []
        for item in (*literals, *(item for name in names for item in self.ctx.lists[name])):
            if left.type == "num":
                try:
                    number = float(item)
                except (TypeError, ValueError, OverflowError):
                    raise self.error(f"type mismatch: list item {item!r} is not a number", ltok) from None
                if not math.isfinite(number):
                    raise self.error(f"list item {item!r} is not a finite number", ltok)
                values.append(number)
            else:
                if not isinstance(item, str):
                    item = str(item)
                if left.type == "enum" and item not in left.symbols:
                    raise self.error(f"{item!r} is not a valid value here; expected one of {sorted(left.symbols)}", ltok)
                values.append(item)
        return frozenset(values)

    def list_item(self, left: Fragment, names: list[str], literals: list[Any], bare_only: bool = False) -> None:
        tok = self.take()
        if tok.kind == "id" and tok.text not in _KEYWORDS:
            if tok.text in self.ctx.lists:
                if tok.text not in names:
                    names.append(tok.text)
                return
            if left.type == "enum" and tok.text in left.symbols and not bare_only:
                literals.append(tok.text)
                return
            raise self.error(f"unknown list {tok.text!r} (quote it if you meant a string)", tok)
        if bare_only:
            raise self.error("expected a list name or '(' after 'in'", tok)
        if tok.kind == "str":
            literals.append(ast.literal_eval(tok.text))
            return
        if tok.kind == "num":
            literals.append(self.number(tok))
            return
        raise self.error(f"expected a list item, found {tok.text or 'end of condition'!r}", tok)

    def string_op(self, left: Fragment, ltok: _Tok, op: str) -> Fragment:
        rtok = self.peek()
        right = self.sum_expr()
        if op == "contains" and left.type == "list":
            if right.type not in ("str", "enum"):
                raise self.error(f"type mismatch: {op!r} needs a string on the right", rtok)
            return Fragment(f"({right.code} in {left.code})", "bool", node=("has", left.node, right.node))
        if left.type not in ("str", "enum") or right.type not in ("str", "enum"):
            raise self.error(f"type mismatch: {op!r} works on strings, got {left.type} {op} {right.type}", ltok)
        if op in ("glob", "matches"):
            if not right.is_const:
                raise self.error(f"{op!r} needs a literal pattern", rtok)
            matcher = self.ctx.patterns.get((op, right.const))
            if matcher is None:
                if len(self.ctx.patterns) >= MAX_PATTERNS:
                    raise self.error(f"more than {MAX_PATTERNS:,} distinct glob and matches patterns in this rule "
                                     "set; combine them (a|b) or use 'in' lists", rtok)
                try:
                    matcher = (compile_glob if op == "glob" else compile_matches)(right.const)
                except PatternError as exc:
                    raise self.error(str(exc), rtok) from None
                self.ctx.patterns[(op, right.const)] = matcher
            slot = self.ctx.slot(matcher)
            return Fragment(f"{slot}({left.code})", "bool", node=("regex", op, left.node, right.const))
        node = ("str", op, left.node, right.node)
        if op == "startswith":
            return Fragment(f"{left.code}.startswith({right.code})", "bool", node=node)
        if op == "endswith":
            return Fragment(f"{left.code}.endswith({right.code})", "bool", node=node)
        if op == "contains":
            return Fragment(f"({right.code} in {left.code})", "bool", node=node)
        return Fragment(f"({right.code}.lower() in {left.code}.lower())", "bool", node=node)

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
        node = ("arith", op.text, left.node, right.node)
        if op.text in ("/", "%"):
            # a zero divisor yields 0 instead of raising on the hot path; the divisor is read first, into
            # a name of this node's own, so that a division nested on the left cannot overwrite it
            d = self.ctx.temp()
            return Fragment(f"(({left.code}) {op.text} {d} if ({d} := {right.code}) else 0)", "num", node=node)
        return Fragment(f"({left.code} {op.text} {right.code})", "num", node=node)

    def unary(self) -> Fragment:
        if self.at("-"):
            tok = self.take()
            self.nest(tok)
            inner = self.unary()
            self.depth -= 1
            if inner.type != "num":
                raise self.error("type mismatch: '-' needs a number", tok)
            return Fragment(f"(-{inner.code})", "num", const=-inner.const if inner.is_const else None,
                            is_const=inner.is_const, node=("neg", inner.node))
        return self.atom()

    def number(self, tok: _Tok) -> int | float:
        """A numeric literal, refused unless finite (``1e999`` once compiled to ``inf``, a NameError per event)."""
        text = tok.text
        if len(text) > _MAX_NUMBER_CHARS:
            raise self.error(f"numeric literal {text[:20]}... is longer than {_MAX_NUMBER_CHARS} characters", tok)
        value: int | float = int(text) if text.isdigit() else float(text)
        if not math.isfinite(value):
            raise self.error(f"numeric literal {text} is out of range (the largest is about 1.8e308)", tok)
        return value

    def atom(self) -> Fragment:
        tok = self.take()
        if tok.kind == "num":
            value = self.number(tok)
            return Fragment(repr(value), "num", const=value, is_const=True, node=("const", value))
        if tok.kind == "str":
            value = ast.literal_eval(tok.text)
            return Fragment(repr(value), "str", const=value, is_const=True, node=("const", value))
        if tok.kind == "op" and tok.text == "(":
            self.nest(tok)
            inner = self.or_expr()
            self.expect(")")
            self.depth -= 1
            return inner
        if tok.kind == "id":
            if tok.text == "true":
                return Fragment("True", "bool", node=("const", True))
            if tok.text == "false":
                return Fragment("False", "bool", frozenset(), node=("const", False))
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
                    key = ast.literal_eval(ktok.text)
                    return Fragment(f"{field.code}.get({key!r}, '')", "str", node=("map", field.name, key))
                return Fragment(field.code, field.type, symbols=field.symbols, node=("field", field.name))
            macro = self.ctx.macro(tok.text)
            if macro is not None:
                self.inlined += len(macro.code)
                if self.inlined > MAX_CODE_CHARS:
                    raise self.error(f"the macros used here expand to more than {MAX_CODE_CHARS:,} characters of "
                                     "code; use fewer or smaller macros", tok)
                return macro
            if tok.text in self.ctx.lists:
                raise self.error(f"list {tok.text!r} can only be used after 'in'", tok)
            raise self.error(f"unknown field or macro {tok.text!r}", tok)
        raise self.error(f"unexpected {tok.text or 'end of condition'!r}", tok)


def parse_condition(text: str, ctx: CompileContext) -> Fragment:
    """Parse and type-check ``text`` into a boolean :class:`Fragment`; raises :class:`ConditionError`."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("empty condition", 1)
    if len(text) > MAX_CODE_CHARS // 4:
        raise ConditionError(f"condition is {len(text):,} characters long; the limit is {MAX_CODE_CHARS // 4:,}", 1)
    return _Parser(text, ctx).parse()


def compile_predicate(fragment: Fragment, namespace: dict[str, Any], label: str) -> Callable[[dict[str, Any]], bool]:
    """Turn a boolean fragment into a function of one record."""
    source = f"def _predicate(r):\n    return {fragment.code}\n"
    scope = dict(namespace)
    scope["__builtins__"] = {"len": len}
    try:
        code = compile(source, f"<rule {label}>", "exec")
    except (SyntaxError, RecursionError, MemoryError) as exc:  # e.g. Python's 200 nested parentheses
        raise ConditionError(f"too complex to compile ({type(exc).__name__}: {exc}); split it into simpler "
                             "conditions", 1) from None
    exec(code, scope)  # noqa: S102 - source generated from our own parse tree
    predicate: Callable[[dict[str, Any]], bool] = scope["_predicate"]
    return predicate
