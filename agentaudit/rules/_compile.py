"""Turns checked rule specs into compiled rules: predicate functions, key functions, templates."""

from __future__ import annotations

import hashlib
import json
import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentaudit.rules._condition import (
    CompileContext,
    ConditionError,
    Fragment,
    compile_predicate,
    parse_condition,
)
from agentaudit.rules._fields import Field, resolve_field
from agentaudit.rules._spec import ENGINE_VERSION, RuleFiles, RuleSpec, parse_duration
from agentaudit.rules.exceptions import RuleError
from agentaudit.schemas import RuleMode, Severity

if TYPE_CHECKING:
    from agentaudit.rules.key_class import KeyClass

__all__ = ["CompiledRule", "RuleSet", "compile_rule_files"]

Predicate = Callable[[dict[str, Any]], bool]
AGG_FNS = ("count", "sum", "avg", "min", "max", "distinct", "rate", "ratio")
EAGER_FNS = ("count", "sum", "max", "distinct", "rate")  # only grow within a window
_OPS = (">", ">=", "<", "<=")
_DEFAULT_BY = {"predicate": ["agent_id"], "aggregate": None, "sequence": ["trace_id"], "absence": ["agent_id"],
               "ancestor": ["agent_id"], "integrity": ["stream_id"]}
_DEFAULT_WINDOW = {"predicate": "1h", "sequence": "1d", "absence": "1h", "ancestor": "1h", "integrity": "1d"}
TEMPLATE_EXTRAS = ("value", "threshold", "count", "key", "window", "rule_id", "severity", "detail", "within")
CHAIN_CHECKS = frozenset({"gap", "reorder", "duplicate", "hash_mismatch", "bad_start"})
#: Checks of signed checkpoints (schemas.checkpoints); they judge only when the evaluator has a key ring.
SIGNATURE_CHECKS = frozenset({"bad_signature", "unknown_key", "not_authorized", "revoked", "unsigned"})
INTEGRITY_CHECKS = ("gap", "reorder", "duplicate", "hash_mismatch", "bad_start", "conflicting_duplicate",
                    "bad_signature", "unknown_key", "not_authorized", "revoked", "unsigned")
#: A stream may go this long without a valid checkpoint (the SDK signs every 1000 events or 10 s).
DEFAULT_MAX_UNSIGNED_EVENTS = 2000
DEFAULT_MAX_UNSIGNED_FOR = "30s"
MAX_SLIDES = 1_000
#: With ``window: trace``, a trace whose root end never comes closes this long after its last event.
DEFAULT_TRACE_IDLE = "10m"
MAX_TEMPLATE_WIDTH = 200

@dataclass
class CompiledRule:
    """A rule ready to run: everything the hot path needs, resolved and compiled."""

    id: str
    kind: str
    severity: Severity
    mode: RuleMode
    tags: tuple[str, ...]
    owner: str
    desc: str
    predicate: Predicate
    kinds: frozenset[str] | None
    key: Callable[[dict[str, Any]], tuple[str, ...]]
    key_names: tuple[str, ...]
    window_us: int
    slide_us: int
    slim: Callable[[dict[str, Any]], dict[str, Any]]
    template: str
    params: dict[str, Any] = field(default_factory=dict)
    code: str = "True"  # the condition as Python source over ``r``, for the evaluator's fused matchers
    source: str = ""  # file:line where the rule is written
    window_text: str = ""  # the window as written or defaulted: "1h", or "trace" (aggregate counts per trace)
    defaults: tuple[str, ...] = ()  # the settings (by, window) this rule leaves to their defaults
    #: the parsed tree (``Fragment.node``) of each condition this rule tests: "condition" (with its
    #: exceptions), and as the kind has them "then", "unless", "end", "approval", "where"; the batch
    #: path (``_vector``) compiles these a second way, to column expressions
    trees: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    @property
    def key_class(self) -> KeyClass:
        """The fields its events are routed on so that the events it joins and counts meet (``key_class``)."""
        from agentaudit.rules.key_class import key_class_of

        return key_class_of(self)

    def render(self, values: dict[str, Any]) -> str:
        try:
            return self.template.format_map(values)
        except (KeyError, ValueError, TypeError) as exc:  # a value of an unexpected type at run time
            return f"{self.template} (render failed: {exc})"

@dataclass
class RuleSet:
    """Compiled, enabled rules plus the revision (content hash) of the whole set."""

    rules: list[CompiledRule]
    revision: str
    files: list[str]
    namespace: dict[str, Any] = field(default_factory=dict)  # constants the rules' code refers to

class _Compiler:
    def __init__(self, files: RuleFiles) -> None:
        self.files = files
        self.namespace: dict[str, Any] = {}
        self.macro_cache: dict[str, Fragment] = {}
        self.macro_stack: list[str] = []
        self.rule: RuleSpec | None = None
        self.lists = {name: spec.items for name, spec in files.lists.items()}
        self.ctx = CompileContext(self.lists, self.macro, self.namespace)

    def macro(self, name: str) -> Fragment | None:
        spec = self.files.macros.get(name)
        if spec is None:
            return None
        if name in self.macro_cache:
            return self.macro_cache[name]
        if name in self.macro_stack:
            cycle = " -> ".join([*self.macro_stack[self.macro_stack.index(name):], name])
            raise RuleError(f"cyclic macros: {cycle}", file=spec.file, line=spec.line,
                            rule=self.rule.id if self.rule else None)
        self.macro_stack.append(name)
        try:
            fragment = parse_condition(spec.condition, self.ctx)
        except ConditionError as exc:
            raise RuleError(f"in macro {name!r}, column {exc.column}: {exc}", file=spec.file, line=spec.line,
                            rule=self.rule.id if self.rule else None) from None
        finally:
            self.macro_stack.pop()
        self.macro_cache[name] = fragment
        return fragment

    def condition(self, spec: RuleSpec, text: Any, key: str, block: dict[str, Any] | None = None) -> Fragment:
        if isinstance(text, bool):
            text = str(text).lower()
        line = (block.line_of(key) if block is not None and hasattr(block, "line_of") else spec.line_of(key))
        if not isinstance(text, str):
            raise spec.error(f"{key} must be a condition string", line=line)
        try:
            return parse_condition(text, self.ctx)
        except ConditionError as exc:
            raise spec.error(f"{key}, column {exc.column}: {exc}", line=line) from None

    def predicate(self, spec: RuleSpec, fragment: Fragment, label: str) -> Predicate:
        try:
            return compile_predicate(fragment, self.namespace, f"{spec.id}:{label}")
        except ConditionError as exc:
            raise spec.error(f"{label}: {exc}", label if label in spec.body else None) from None

    def exceptions(self, spec: RuleSpec) -> tuple[str, tuple[Any, ...]] | None:
        """The code of the rule's exceptions (``and``-ed) and their tree: ``("exc", field names, tuples)`` each."""
        raw = spec.body.get("exceptions")
        if raw is None:
            return None
        if not isinstance(raw, list):
            raise spec.error("exceptions must be a list of {name, fields, values}", "exceptions")
        parts = []
        nodes: list[tuple[Any, ...]] = []
        for entry in raw:
            line = entry.line if hasattr(entry, "line") else spec.line_of("exceptions")
            if not isinstance(entry, dict) or not isinstance(entry.get("fields"), list) or not entry["fields"]:
                raise spec.error("each exception needs a name, a list of fields and a list of values", line=line)
            fields = []
            for name in entry["fields"]:
                fld = resolve_field(str(name))
                if fld is None or fld.type not in ("str", "enum", "num"):
                    raise spec.error(f"exception {entry.get('name')!r}: unknown field {name!r}", line=line)
                fields.append(fld)
            values = entry.get("values") or []
            if not isinstance(values, list):
                raise spec.error(f"exception {entry.get('name')!r}: values must be a list", line=line)
            tuples = set()
            for value in values:
                row = value if isinstance(value, list) else [value]
                if len(row) != len(fields):
                    raise spec.error(f"exception {entry.get('name')!r}: value {value!r} needs {len(fields)} items, "
                                     "one per field", line=line)
                converted: list[float | str] = []
                for fld, item in zip(fields, row, strict=False):
                    if fld.type == "num":
                        try:
                            number = float(item)
                        except (TypeError, ValueError, OverflowError):
                            raise spec.error(f"type mismatch: exception value {item!r} for number field "
                                             f"{fld.name!r}", line=line) from None
                        if not math.isfinite(number):
                            raise spec.error(f"exception value {item!r} for number field {fld.name!r} is not a "
                                             "finite number", line=line)
                        converted.append(number)
                    else:
                        converted.append(str(item))
                tuples.add(tuple(converted))
            if not tuples:
                continue
            frozen = frozenset(tuples)
            slot = self.ctx.slot(frozen)
            parts.append(f"(({', '.join(f.code for f in fields)},) not in {slot})")
            nodes.append(("exc", tuple(f.name for f in fields), frozen))
        if not parts:
            return None
        return " and ".join(parts), ("and", tuple(nodes))

    def key_function(self, spec: RuleSpec, names: list[str]) -> tuple[Callable[[dict[str, Any]], tuple[str, ...]],
                                                                       tuple[str, ...]]:
        codes = []
        for name in names:
            fld = resolve_field(str(name))
            if fld is None or fld.type not in ("str", "enum", "num"):
                raise spec.error(f"by: unknown or non-scalar field {name!r}", "by")
            codes.append(f"str({fld.code})" if fld.type == "num" else fld.code)
        source = f"def _key(r):\n    return (r['tenant'], {''.join(c + ', ' for c in codes)})\n"
        scope: dict[str, Any] = {"__builtins__": {"str": str}}
        exec(compile(source, f"<rule {spec.id}:key>", "exec"), scope)  # noqa: S102 - generated from field table
        return scope["_key"], tuple(str(n) for n in names)

    def template(self, spec: RuleSpec) -> tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        text = spec.body["output"]
        names: set[str] = {"agent_id", "trace_id", "event_id", "name", "kind"}
        dummy: dict[str, Any] = dict.fromkeys(TEMPLATE_EXTRAS, 0)
        dummy.update(key="", window="", rule_id="", severity="", detail="", within="")
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise spec.error(f"output template: {exc}", "output") from None
        for _, name, spec_text, _ in parsed:
            if name is None:
                continue
            if spec_text and ("{" in spec_text or any(int(n) > MAX_TEMPLATE_WIDTH
                                                      for n in re.findall(r"\d+", spec_text))):
                # ``{name:>999999999}`` allocated a gigabyte at load and at every incident
                raise spec.error(f"output template: format spec {spec_text!r} of {name!r}: widths and precisions are "
                                 f"literal numbers up to {MAX_TEMPLATE_WIDTH}", "output")
            if name == "" or not (name in TEMPLATE_EXTRAS or resolve_field(name)):
                raise spec.error(f"output template: unknown field {name!r}", "output")
            if name not in TEMPLATE_EXTRAS:
                fld = _known(name)
                if fld.type in ("list", "map"):
                    raise spec.error(f"output template: field {name!r} is not a scalar", "output")
                names.add(name)
        for name in names:
            dummy[name] = 0 if _known(name).type == "num" else ""
        try:
            text.format_map(dummy)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise spec.error(f"output template: {exc}", "output") from None
        pairs = ", ".join(f"{n!r}: {_known(n).code}" for n in sorted(names))
        source = f"def _slim(r):\n    return {{'tenant': r['tenant'], {pairs}}}\n"
        scope: dict[str, Any] = {"__builtins__": {"len": len}}
        exec(compile(source, f"<rule {spec.id}:output>", "exec"), scope)  # noqa: S102 - generated from field table
        return text, scope["_slim"]

    def duration(self, spec: RuleSpec, value: Any, what: str, line: int) -> int:
        us = parse_duration(value)
        if us is None:
            raise spec.error(f"bad {what} {value!r}; use a number and a unit: 90s, 5m, 1h, 1d", line=line)
        return us

    def bind(self, spec: RuleSpec, value: Any, line: int) -> tuple[str, ...]:
        """Attribute names an approval must share with the action it approves (``bind: args_hash``)."""
        if value is None:
            return ()
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise spec.error(f"ancestor: bind must be an attribute name or a list of them (e.g. args_hash), got "
                             f"{value!r}", line=line)
        return tuple(dict.fromkeys(n.strip() for n in names))

    def block(self, spec: RuleSpec) -> dict[str, Any]:
        block = spec.body.get(spec.kind) or {}
        if not isinstance(block, dict):
            raise spec.error(f"the {spec.kind!r} block must be a mapping", spec.kind)
        return block

    def compile(self, spec: RuleSpec) -> CompiledRule:
        self.rule = spec
        body = spec.body
        main = self.condition(spec, body.get("condition", "true"), "condition")
        code = main.code
        trees: dict[str, tuple[Any, ...]] = {"condition": main.node}
        excluded = self.exceptions(spec)
        if excluded:
            code = f"({code} and {excluded[0]})"
            trees["condition"] = ("and", (main.node, excluded[1]))
        predicate = self.predicate(spec, Fragment(code, "bool", main.kinds), "condition")
        by = body.get("by", _DEFAULT_BY[spec.kind])
        if by is None:
            raise spec.error(f"a {spec.kind} rule needs 'by': the fields that key it (e.g. [agent_id])")
        if not isinstance(by, list):
            raise spec.error("by must be a list of field names", "by")
        window_text = body.get("window", _DEFAULT_WINDOW.get(spec.kind))
        if window_text is None:
            raise spec.error(f"a {spec.kind} rule needs a 'window' (e.g. 5m, 1d, or trace)")
        per_trace = window_text == "trace"
        if per_trace and spec.kind != "aggregate":
            raise spec.error(f"window: trace counts an aggregate per trace; a {spec.kind} rule's window is a time "
                             "(e.g. 1h); sequence and ancestor checks already stay within one trace", "window")
        if per_trace and "trace_id" not in by:
            by = [*by, "trace_id"]  # one count per trace: the trace is part of the key
        key, key_names = self.key_function(spec, by)
        block = self.block(spec)
        bline = block.line_of if hasattr(block, "line_of") else (lambda _k: spec.line_of(spec.kind))
        if per_trace:
            window_text = "trace"
            window_us = self.duration(spec, block.get("idle", DEFAULT_TRACE_IDLE), "idle", bline("idle"))
        else:
            window_us = self.duration(spec, window_text, "window", spec.line_of("window"))
        template, slim = self.template(spec)
        params: dict[str, Any] = {}
        kinds = main.kinds
        slide_us = window_us
        allowed = {"aggregate": {"fn", "field", "where", "op", "threshold", "slide", "min_count", "idle"},
                   "sequence": {"then", "within", "unless"}, "absence": {"end", "within"},
                   "ancestor": {"approval", "within", "bind", "once"},
                   "integrity": {"checks", "max_unsigned_events", "max_unsigned_for"}, "predicate": set()}[spec.kind]
        for k in block:
            if k not in allowed:
                raise spec.error(f"{spec.kind}: unknown key {k!r}; expected one of {sorted(allowed)}", line=bline(k))
        if spec.kind == "aggregate":
            fn = block.get("fn")
            if fn not in AGG_FNS:
                raise spec.error(f"aggregate: bad fn {fn!r}; expected one of {list(AGG_FNS)}", line=bline("fn"))
            params["fn"] = fn
            fld_name = block.get("field")
            if fn in ("sum", "avg", "min", "max", "distinct"):
                fld = resolve_field(str(fld_name)) if fld_name is not None else None
                if fld is None:
                    raise spec.error(f"aggregate: fn {fn} needs a known 'field', got {fld_name!r}",
                                     line=bline("field"))
                if fn != "distinct" and fld.type != "num":
                    raise spec.error(f"type mismatch: aggregate {fn} needs a number field, {fld.name!r} is {fld.type}",
                                     line=bline("field"))
                if fn == "distinct" and fld.type not in ("str", "enum", "num"):
                    raise spec.error(f"aggregate distinct needs a scalar field, {fld.name!r} is {fld.type}",
                                     line=bline("field"))
                scope: dict[str, Any] = {"__builtins__": {"len": len}}
                exec(compile(f"def _v(r):\n    return {fld.code}\n", f"<rule {spec.id}:field>", "exec"), scope)  # noqa: S102 - source generated from the field table, not from the rule text
                params["value"] = scope["_v"]
            if fn == "ratio":
                if "where" not in block:
                    raise spec.error("aggregate ratio needs 'where': the condition of the numerator",
                                     line=bline("fn"))
                where = self.condition(spec, block["where"], "where", block)
                params["where"] = self.predicate(spec, where, "where")
                trees["where"] = where.node
            op = block.get("op", ">")
            if op not in _OPS:
                raise spec.error(f"aggregate: bad op {op!r}; expected one of {list(_OPS)}", line=bline("op"))
            params["op"] = op
            threshold = block.get("threshold")
            if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
                raise spec.error(f"type mismatch: aggregate threshold must be a number, got {threshold!r}",
                                 line=bline("threshold"))
            try:
                params["threshold"] = float(threshold)
            except OverflowError:
                params["threshold"] = math.inf
            if not math.isfinite(params["threshold"]):
                raise spec.error(f"aggregate threshold must be a finite number, got {threshold!r}",
                                 line=bline("threshold"))
            min_count = block.get("min_count", 1)
            if not isinstance(min_count, int) or min_count < 1:
                raise spec.error("aggregate: min_count must be a positive integer", line=bline("min_count"))
            params["min_count"] = min_count
            if "slide" in block:
                slide_us = self.duration(spec, block["slide"], "slide", bline("slide"))
                if slide_us > window_us or window_us % slide_us:
                    raise spec.error("bad window spec: slide must divide the window", line=bline("slide"))
                if window_us // slide_us > MAX_SLIDES:  # each event is counted in every window covering it
                    raise spec.error(f"bad window spec: a window of {window_text} holds {window_us // slide_us:,} "
                                     f"slides; at most {MAX_SLIDES:,}: use a longer slide", line=bline("slide"))
            params["eager"] = fn in EAGER_FNS and op in (">", ">=")
            params["per_trace"] = per_trace
            if per_trace:
                if "slide" in block:
                    raise spec.error("aggregate: window: trace has no slide (a trace is one window)", line=bline("slide"))
                if fn == "rate":
                    raise spec.error("aggregate: fn rate is per second of a time window; with window: trace use "
                                     "count", line=bline("fn"))
                kinds = None  # every event of a trace is seen, to tell when its root ends
            elif "idle" in block:
                raise spec.error("aggregate: idle applies to window: trace only", line=bline("idle"))
        elif spec.kind == "sequence":
            then = self.condition(spec, block.get("then"), "then", block)
            params["then"] = self.predicate(spec, then, "then")
            trees["then"] = then.node
            params["within"] = self.duration(spec, block.get("within"), "within", bline("within"))
            kinds = None if kinds is None or then.kinds is None else kinds | then.kinds
            params["unless"] = None
            if "unless" in block:
                unless = self.condition(spec, block.get("unless"), "unless", block)
                params["unless"] = self.predicate(spec, unless, "unless")
                trees["unless"] = unless.node
                kinds = None if kinds is None or unless.kinds is None else kinds | unless.kinds
        elif spec.kind == "absence":
            end = self.condition(spec, block.get("end", "phase = end"), "end", block)
            params["end"] = self.predicate(spec, end, "end")
            trees["end"] = end.node
            params["within"] = self.duration(spec, block.get("within"), "within", bline("within"))
        elif spec.kind == "ancestor":
            approval = self.condition(spec, block.get("approval"), "approval", block)
            params["approval"] = self.predicate(spec, approval, "approval")
            trees["approval"] = approval.node
            params["within"] = self.duration(spec, block.get("within"), "within", bline("within"))
            params["bind"] = self.bind(spec, block.get("bind"), bline("bind"))
            once = block.get("once", False)
            if not isinstance(once, bool):
                raise spec.error(f"ancestor: once must be true or false, got {once!r}", line=bline("once"))
            params["once"] = once
            kinds = None  # the chain of every event in a trace is needed
        elif spec.kind == "integrity":
            checks = block.get("checks", list(INTEGRITY_CHECKS))
            if not isinstance(checks, list) or any(c not in INTEGRITY_CHECKS for c in checks):
                raise spec.error(f"integrity: checks must be a list from {list(INTEGRITY_CHECKS)}",
                                 line=bline("checks"))
            params["checks"] = frozenset(checks)
            most = block.get("max_unsigned_events", DEFAULT_MAX_UNSIGNED_EVENTS)
            if not isinstance(most, int) or isinstance(most, bool) or most < 1:
                raise spec.error("integrity: max_unsigned_events must be a positive integer",
                                 line=bline("max_unsigned_events"))
            params["max_unsigned_events"] = most
            params["max_unsigned_us"] = self.duration(spec, block.get("max_unsigned_for", DEFAULT_MAX_UNSIGNED_FOR),
                                                      "max_unsigned_for", bline("max_unsigned_for"))
            kinds = None
        self.rule = None
        return CompiledRule(
            id=spec.id, kind=spec.kind, severity=spec.severity, mode=spec.mode, tags=spec.tags, owner=spec.owner,
            desc=" ".join(str(body["desc"]).split()), predicate=predicate, kinds=kinds, key=key, key_names=key_names,
            window_us=window_us, slide_us=slide_us, slim=slim, template=template, params=params, code=code,
            source=f"{spec.file}:{spec.line}", window_text=str(window_text),
            defaults=tuple(name for name in ("by", "window") if name not in body), trees=trees,
        )

def _known(name: str) -> Field:
    """The field ``name``, already checked to exist."""
    fld = resolve_field(name)
    if fld is None:
        raise KeyError(name)  # unreachable: every caller checked the name first
    return fld


def compile_rule_files(files: RuleFiles, names: list[str]) -> RuleSet:
    """Compile every enabled rule (and every macro, so unused ones are checked too)."""
    compiler = _Compiler(files)
    rules = [compiler.compile(spec) for spec in files.rules.values() if spec.enabled]
    for name in files.macros:
        compiler.macro(name)
    canonical = json.dumps({"engine": ENGINE_VERSION, "documents": files.documents}, sort_keys=True, default=str)
    revision = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return RuleSet(rules=rules, revision=revision, files=names, namespace=compiler.namespace)
