"""Which events must meet for a rule to judge them, and how to route them there: a rule's *key class*.

Every rule key includes the tenant, but most rules need much less than a tenant's whole stream in
one place: all events of a trace (chain and sequence rules), of a ``by:`` key (aggregates and
predicates, whose hits count into one incident per key and window), of a producer stream
(integrity), of an action (absence). A rule's key class names the fields such that events with
equal values (and the same tenant) meet in one evaluator: routing on them keeps together both the
events the rule's state joins and the events one of its incidents counts, so the rule's incidents
do not depend on how many evaluators share the work. The rules worker (``agentaudit rules run``)
re-keys each event once per key class that needs it; the design is in ``docs/rule-keys.md``.

>>> rule_set = load_rule_set(None)
>>> {rule.id: rule.key_class.name for rule in rule_set.rules}["security.secret-then-egress"]
'trace_id'
>>> router = KeyRouter(rule_set)
>>> router.route(record)            # [(class name, partition key), ...]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentaudit.rules._fields import resolve_field
from agentaudit.rules._runtime import RUNTIMES
from agentaudit.rules._runtime._hits import SEP

if TYPE_CHECKING:
    from agentaudit.rules._compile import CompiledRule, RuleSet

__all__ = ["TENANT", "KeyClass", "KeyRouter", "key_class_of", "runtime_kind", "split_rule_set"]

#: The key class of a rule that can only be judged with all of a tenant's events in one place.
TENANT = "tenant"
#: Fields every event of one trace shares; a chain rule keyed by none of them is judged per tenant.
_TRACE_FIELDS = frozenset({"trace_id"})
#: Fields an action's start and end share (one SDK context emits both), so an absence may route on them.
_ACTION_FIELDS = frozenset({"action_id", "agent_id", "trace_id"})
#: When several fields would do, route on the first of these the class holds: the fewer distinct
#: classes, the fewer copies of each event (routing on a coarser field keeps every finer key together).
_PREFERRED = ("trace_id", "stream_id", "agent_id", "action_id", "event_id")


@dataclass(frozen=True, slots=True)
class KeyClass:
    """The fields (besides the tenant) a rule's events are routed on; none: the tenant alone.

    :param fields: field names, in routing order; empty for :data:`TENANT`.
    :param why: how the class follows from the rule (``rules show``, logs).
    """

    fields: tuple[str, ...]
    why: str = ""

    @property
    def name(self) -> str:
        """``trace_id``, ``agent_id``, ``name+model``...; ``tenant`` when the class is the tenant alone."""
        return "+".join(self.fields) if self.fields else TENANT


def runtime_kind(rule: CompiledRule) -> str:
    """The runtime of ``rule``: its kind, or ``aggregate/trace`` for an aggregate with ``window: trace``."""
    return "aggregate/trace" if rule.kind == "aggregate" and rule.window_text == "trace" else rule.kind


def key_class_of(rule: CompiledRule) -> KeyClass:
    """The key class ``rule`` implies (see the module docstring): the fields both its state and its incidents group by.

    - predicate and windowed aggregate: the ``by:`` fields (a hit counts into its key's incident);
    - sequence, ancestor and ``window: trace`` aggregate: the trace, when ``by:`` holds ``trace_id``;
    - absence: the ``by:`` fields an action's start and end share (default ``agent_id``);
    - integrity: the stream (``event_id`` for ``conflicting_duplicate`` alone), when ``by:`` holds it;
    - otherwise the tenant: one evaluator sees all of the tenant's events for that rule.
    """
    by = rule.key_names
    kind = runtime_kind(rule)
    if kind in ("predicate", "aggregate"):
        usable, why = frozenset(by), "its by: fields"
    elif kind in ("sequence", "ancestor", "aggregate/trace"):
        usable, why = _TRACE_FIELDS & frozenset(by), "its trace"
    elif kind == "absence":
        usable, why = _ACTION_FIELDS & frozenset(by), "its action's by: fields"
    elif kind == "integrity":
        state = "event_id" if rule.params.get("checks") == frozenset({"conflicting_duplicate"}) else "stream_id"
        usable, why = frozenset({state}) & frozenset(by), f"its {state}"
    else:  # a kind this module does not know: the safe answer
        usable, why = frozenset(), "an unknown kind"
    if not usable:
        return KeyClass((), f"{kind}: nothing finer than the tenant keeps {why} and by: {list(by)} together")
    preferred = [f for f in _PREFERRED if f in usable]
    fields = (preferred[0],) if preferred else tuple(sorted(usable))
    return KeyClass(fields, f"{kind}: {why}")


def split_rule_set(rule_set: RuleSet) -> dict[str, RuleSet]:
    """``rule_set`` cut by key class, class names in sorted order; each part keeps the set's revision,
    so incident ids are those the whole set gives. A set without rules is one empty :data:`TENANT` part."""
    from agentaudit.rules._compile import RuleSet

    parts: dict[str, list[CompiledRule]] = {} if rule_set.rules else {TENANT: []}
    for rule in rule_set.rules:
        parts.setdefault(rule.key_class.name, []).append(rule)
    return {name: RuleSet(rules=parts[name], revision=rule_set.revision, files=rule_set.files,
                          namespace=rule_set.namespace) for name in sorted(parts)}


@dataclass(frozen=True, slots=True)
class _Route:
    name: str
    key: Callable[[dict[str, Any]], str]
    tests: tuple[tuple[frozenset[str] | None, Callable[[dict[str, Any]], bool]], ...] | None  # None: every event


class KeyRouter:
    """Where one event must go: the key classes of ``rule_set`` that need it, each with its partition key.

    A class whose rules are all predicates, windowed aggregates and absences needs only the events one
    of their conditions matches (an absence's start or end; those runtimes act on nothing else); a class
    with a sequence, ancestor, ``window: trace`` or integrity rule needs every event (parent links, a
    trace's root end, a stream's positions). A condition that raises on
    an event sends it: the evaluator there reports the failure as it would have.

    :param rule_set: the compiled rules (every instance of a group must run the same revision).
    """

    def __init__(self, rule_set: RuleSet) -> None:
        routes = []
        for name, part in split_rule_set(rule_set).items():
            fields = part.rules[0].key_class.fields if part.rules else ()
            needs = [_needs(rule) for rule in part.rules]
            tests = None if any(test is None for test in needs) else tuple(
                (rule.kinds, test) for rule, test in zip(part.rules, needs, strict=True) if test is not None)
            routes.append(_Route(name, _key_function(name, fields), tests))
        self._routes = tuple(routes)

    @property
    def classes(self) -> tuple[str, ...]:
        """The key class names, sorted."""
        return tuple(route.name for route in self._routes)

    def route(self, record: dict[str, Any]) -> list[tuple[str, bytes]]:
        """``(class name, partition key)`` for each class that needs ``record``; the key starts with the class
        and the tenant, so a class's shards spread over the partitions independently of other classes.

        An event no class needs still goes to the first class, where no rule matches it: every event is
        judged somewhere, so progress and counts (``RulesWorker.evaluated``) cover it.
        """
        out = []
        for route in self._routes:
            if route.tests is not None and not _needed(route.tests, record):
                continue
            out.append((route.name, _key(route, record)))
        if not out:
            first = self._routes[0]
            out.append((first.name, _key(first, record)))
        return out


def _key(route: _Route, record: dict[str, Any]) -> bytes:
    try:
        return route.key(record).encode()
    except Exception:  # noqa: BLE001 - an odd record routes by tenant; the evaluator reports its failures
        return f"{route.name}{SEP}{record.get('tenant', '')}".encode()


def _needs(rule: CompiledRule) -> Callable[[dict[str, Any]], bool] | None:
    """Whether an event (of the rule's kinds) can change ``rule``'s state; None: every event can."""
    kind = runtime_kind(rule)
    if kind == "absence":
        start, end = rule.predicate, rule.params["end"]
        return lambda r: bool(start(r) or end(r))
    return rule.predicate if RUNTIMES[kind].fusable else None


def _needed(tests: Sequence[tuple[frozenset[str] | None, Callable[[dict[str, Any]], bool]]],
            record: dict[str, Any]) -> bool:
    kind = record.get("kind")
    for kinds, predicate in tests:
        if kinds is not None and kind not in kinds:
            continue
        try:
            if predicate(record):
                return True
        except Exception:  # noqa: BLE001 - the evaluator that receives it reports the failure
            return True
    return False


def _key_function(name: str, fields: tuple[str, ...]) -> Callable[[dict[str, Any]], str]:
    """``class SEP tenant SEP value...`` of a record, compiled once from the field table."""
    parts = [repr(name + SEP), "r['tenant']"]
    for field_name in fields:
        found = resolve_field(field_name)
        if found is None:  # unreachable: the rule compiler checked every by: field
            raise KeyError(field_name)
        parts.append(repr(SEP))
        parts.append(f"str({found.code})" if found.type == "num" else found.code)
    source = f"def _key(r):\n    return {' + '.join(parts)}\n"
    scope: dict[str, Any] = {"__builtins__": {"str": str, "len": len}}
    exec(compile(source, f"<key class {name}>", "exec"), scope)  # noqa: S102 - generated from the field table
    key: Callable[[dict[str, Any]], str] = scope["_key"]
    return key
