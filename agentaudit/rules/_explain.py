"""What a rule means once its defaults are filled in: the text of ``agentaudit rules show``.

Rules leave ``by``, ``window`` and the engine's allowed lateness unsaid more often than not
(a predicate rule groups per agent and hour unless it says otherwise); this spells out each
rule's effective settings and when its decisions are made, so what a rule does is read in one
place rather than worked out from the engine's source.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentaudit.rules._compile import CompiledRule, compile_rule_files
from agentaudit.rules._runtime import human_duration as _human
from agentaudit.rules._spec import RuleSpec, read_rule_files
from agentaudit.rules.exceptions import RuleError

__all__ = ["explain_rules"]

_DECIDED = {
    "predicate": "on arrival; one incident per key and window, its count growing",
    "aggregate": "rising fns (count, sum, max, distinct, rate with > or >=) as soon as the threshold is crossed; "
                 "the others when the watermark passes the window's end",
    "aggregate/trace": "rising fns as soon as the threshold is crossed; the others when the watermark passes the "
                       "end of the trace's root (invoke_agent end, no parent), or its last event + idle",
    "sequence": "on arrival of the later of A and B",
    "sequence/unless": "when the watermark passes B's event time (so a C up to B, arriving late, still cancels)",
    "absence": "when the watermark passes start + within",
    "ancestor": "when the watermark passes the action's event time",
    "integrity": "in each stream's log order, on arrival",
}


def explain_rules(paths: Sequence[str] | None, ids: Sequence[str] = (), *, lateness_us: int) -> str:
    """The effective spec of each rule named in ``ids`` (every enabled rule when empty); raises RuleError."""
    from agentaudit.rules.evaluator import rule_paths

    files = rule_paths(list(paths) if paths else None)
    specs = read_rule_files(files)
    rule_set = compile_rule_files(specs, [str(f) for f in files])
    compiled = {rule.id: rule for rule in rule_set.rules}
    unknown = [i for i in ids if i not in compiled]
    if unknown:
        disabled = [i for i in unknown if i in specs.rules]
        hint = f" ({', '.join(disabled)} disabled)" if disabled else ""
        raise RuleError(f"no enabled rule {', '.join(unknown)}{hint} in the {len(files)} rule files loaded; "
                        "`agentaudit rules show` with no id lists them all")
    chosen = [compiled[i] for i in ids] if ids else rule_set.rules
    blocks = [_explain(rule, specs.rules[rule.id], lateness_us) for rule in chosen]
    return "\n\n".join(blocks)


def _explain(rule: CompiledRule, spec: RuleSpec, lateness_us: int) -> str:
    body = spec.body
    block: dict[str, Any] = body.get(rule.kind) or {}
    p = rule.params

    def said(name: str) -> str:
        return "" if name not in rule.defaults else "  (default)"

    lines = [f"{rule.id}  [{rule.kind}, {rule.severity.value}, {rule.mode.value}]  {rule.source}",
             f"  condition: {' '.join(str(body.get('condition', 'true')).split())}"]
    by = list(rule.key_names)
    lines.append(f"  by:        [{', '.join(['tenant', *by])}]{said('by')}"
                 + ("  (trace_id added: window: trace)" if rule.window_text == "trace" and "trace_id" not in
                    (body.get("by") or []) else ""))
    if rule.window_text == "trace":
        lines.append(f"  window:    trace (closes at the root's end, or idle {_human(rule.window_us)} after the "
                     f"trace's last event){said('window')}")
    else:
        slide = f", sliding every {_human(rule.slide_us)}" if rule.slide_us != rule.window_us else ""
        lines.append(f"  window:    {_human(rule.window_us)}{slide}{said('window')}  (one incident per key and window)")
    lines.extend(f"  {name + ':':<10} {' '.join(str(block[name]).split())}"
                 for name in ("then", "unless", "approval", "end") if name in block)
    if rule.kind == "absence" and "end" not in block:
        lines.append("  end:       phase = end  (default; same action_id)")
    if "within" in p:
        lines.append(f"  within:    {_human(p['within'])}")
    if rule.kind == "ancestor":
        lines.append(f"  once:      {'true' if p.get('once') else 'false  (default: an approval covers every action)'}")
        if p.get("bind"):
            lines.append(f"  bind:      {', '.join(p['bind'])}")
    if rule.kind == "aggregate":
        field = f"({block['field']})" if "field" in block else ""
        lines.append(f"  value:     {p['fn']}{field} {p['op']} {p['threshold']:g}"
                     + (f", at least {p['min_count']} events" if p["min_count"] > 1 else ""))
    kind = rule.kind
    if kind == "aggregate" and rule.window_text == "trace":
        kind = "aggregate/trace"
    elif kind == "sequence" and p.get("unless") is not None:
        kind = "sequence/unless"
    lines.append(f"  lateness:  {_human(lateness_us)}  (the engine's, for every rule: events up to this late count)")
    lines.append(f"  decided:   {_DECIDED[kind]}")
    key_class = rule.key_class
    lines.append(f"  key class: {key_class.name}  ({key_class.why}; `rules run` shards the rule on it)")
    return "\n".join(lines)
