"""The batch path of :meth:`RuleEvaluator.evaluate_table`: conditions decided for a whole Arrow table at once.

Per rule, a :class:`Plan` says which rows it acts on: for predicate and aggregate rules the rows
their condition matches (they go to ``pending`` as the fused matchers of the per-event path put
them); for the stateful kinds a superset of the rows whose ``feed`` can change anything (sequence:
A or B or C; absence: start or end; integrity: its condition; ancestor and per-trace aggregates:
every row, as they track every trace's chain). Those rows are handed over as records, in table
order, which is the order the per-event path feeds them in; so both paths reach the same state and
the same incidents. Each plan also keeps the per-event path's kind filter.

What the batch path does not decide itself, it hands to the per-event path for the whole batch, before
any state changed: a batch carrying an event id already seen with another body (the integrity rules'
conflict check interleaves with their feed), or a table the kernels refuse (a column of an
unexpected type).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from agentaudit.logs import get_logger
from agentaudit.rules._runtime import NEVER, RuleRuntime
from agentaudit.rules._table import TableRows
from agentaudit.rules._vector import Mask, VectorError, compile_mask
from agentaudit.schemas import ActionKind, Incident

if TYPE_CHECKING:
    from agentaudit.rules.evaluator import RuleEvaluator

__all__ = ["Picked", "Plan", "evaluate_table", "plans_of"]

_log = get_logger(__name__)
_KNOWN_KINDS = frozenset(kind.value for kind in ActionKind)
#: per runtime kind: the trees whose rows the runtime acts on (None: every row)
_SELECTS: dict[str, tuple[str, ...] | None] = {
    "predicate": ("condition",), "aggregate": ("condition",), "sequence": ("condition", "then", "unless"),
    "absence": ("condition", "end"), "integrity": ("condition",), "ancestor": None, "aggregate/trace": None,
}


@dataclass(frozen=True, slots=True)
class Plan:
    """One rule on the batch path: its runtime, the kinds it never sees, and the mask of rows it acts on.

    :param select: None for every row; ``vector`` False when the condition has no batch form and the
        rule is fed every row of its kinds (its own ``feed`` tests the condition).
    """

    rt: RuleRuntime
    excluded_kinds: pa.Array | None
    select: tuple[Mask, ...] | None
    vector: bool = True


def plans_of(runtimes: Sequence[RuleRuntime]) -> tuple[Plan, ...]:
    """A plan per runtime, in the evaluator's order; conditions compiled once, at load."""
    plans = []
    for rt in runtimes:
        rule = rt.rule
        excluded = None
        if rule.kinds is not None:
            excluded = pa.array(sorted(_KNOWN_KINDS - rule.kinds), pa.string())
        kind = "aggregate/trace" if rule.kind == "aggregate" and rule.window_text == "trace" else rule.kind
        names = _SELECTS.get(kind)
        if names is None:
            plans.append(Plan(rt, excluded, None))
            continue
        try:
            masks = tuple(compile_mask(rule.trees[name]) for name in names if name in rule.trees)
        except (VectorError, KeyError) as exc:
            _log.info("rules.no_batch_form", rule=rule.id, reason=str(exc))
            plans.append(Plan(rt, excluded, None, vector=False))
            continue
        plans.append(Plan(rt, excluded, masks))
    return tuple(plans)


@dataclass(frozen=True, slots=True)
class Picked:
    """The rows a rule acts on, in order (None: every row), and among them those only its per-event
    predicate can decide (integers beyond float64's exact range, see :mod:`._vector`)."""

    rows: list[int] | None
    unsafe: frozenset[int] = frozenset()


def _selected(plan: Plan, rows: TableRows, kinds: pa.Array) -> Picked:
    mask: Any = None
    unsafe: Any = None
    if plan.select is not None:
        for select in plan.select:
            value, flagged = select(rows)
            mask = value if mask is None else pc.or_(mask, value)
            if flagged is not None:
                unsafe = flagged if unsafe is None else pc.or_(unsafe, flagged)
    if unsafe is not None:
        mask = pc.or_(mask, unsafe)
    if plan.excluded_kinds is not None:
        allowed = pc.invert(pc.is_in(kinds, value_set=plan.excluded_kinds))
        mask = allowed if mask is None else pc.and_(mask, allowed)
        if unsafe is not None:
            unsafe = pc.and_(unsafe, allowed)
    if mask is None:
        return Picked(None)
    indices: list[int] = pc.indices_nonzero(mask).to_pylist()
    if unsafe is None:
        return Picked(indices)
    return Picked(indices, frozenset(pc.indices_nonzero(unsafe).to_pylist()))


def evaluate_table(ev: RuleEvaluator, table: pa.Table, sources: Sequence[str | None] | None = None) -> list[Incident]:
    """See :meth:`RuleEvaluator.evaluate_table`."""
    n = table.num_rows
    if sources is not None and len(sources) != n:
        raise ValueError(f"sources has {len(sources)} items for {n} rows")
    if n == 0:
        return ev._advance()
    rows = TableRows(table)
    event_ids: list[str] = rows.raw("event_id").to_pylist()
    hashes: list[str] = rows.str_("event_hash").to_pylist() if rows.has("event_hash") else [""] * n
    seen = ev._seen
    batch: dict[str, str] = {}
    keep: list[int] = []
    for i, (event_id, body) in enumerate(zip(event_ids, hashes, strict=True)):
        first = seen.get(event_id)
        if first is None:
            first = batch.get(event_id)
        if first is not None:
            if first != body and first and ev._conflicts:
                return ev.evaluate(_records(rows, sources))  # a conflicting copy: see the module docstring
            continue
        batch[event_id] = body or ""
        keep.append(i)
    if len(keep) < n:
        table = table.take(pa.array(keep, pa.int64()))
        rows = TableRows(table)
        if sources is not None:
            sources = [sources[i] for i in keep]
    plans = ev._batch_plans()
    try:
        kinds = rows.str_("kind")
        picks = [_selected(plan, rows, kinds) for plan in plans]
    except (pa.ArrowException, TypeError, ValueError) as exc:  # a column of another type: judge it per event
        _log.warning("rules.batch_fallback", error=f"{type(exc).__name__}: {exc}")
        return ev.evaluate(_records(TableRows(table), sources))
    seen.update(batch)
    _times(ev, rows, sources)
    every = rows.all_records()
    for plan, picked in zip(plans, picks, strict=True):
        rt = plan.rt
        chosen = every if picked.rows is None else [every[i] for i in picked.rows]
        if rt.fusable and plan.vector:
            if picked.unsafe and picked.rows is not None:
                _pend_deciding(ev, rt, every, picked.rows, picked.unsafe)
            else:
                rt.pending.extend(chosen)
            continue
        feed = rt.feed
        for r in chosen:
            try:
                feed(r)
            except Exception as exc:  # noqa: BLE001 - one odd record must not stop the other rules
                ev._runtime_error(rt, r, exc)
    ev._trim_seen()
    ev._end_batches()
    return ev._advance()  # which slims the representatives taken: none holds on to the batch's columns


def _pend_deciding(ev: RuleEvaluator, rt: RuleRuntime, every: list[dict[str, Any]], indices: list[int],
                   unsafe: frozenset[int]) -> None:
    """Add the matched rows to ``rt.pending`` in order, deciding the ``unsafe`` ones with the per-event predicate."""
    predicate = rt.rule.predicate
    pending = rt.pending
    for i in indices:
        r = every[i]
        if i not in unsafe:
            pending.append(r)
            continue
        try:
            if predicate(r):
                pending.append(r)
        except Exception as exc:  # noqa: BLE001 - as the per-event path: the rule fails on this event alone
            ev._runtime_error(rt, r, exc)


def _times(ev: RuleEvaluator, rows: TableRows, sources: Sequence[str | None] | None) -> None:
    """Each tenant's (and source's) largest event time, and sources delivering again, as :meth:`evaluate` keeps them."""
    times: list[int] = rows.raw("event_time").to_pylist()
    tenants: list[str] = rows.raw("tenant").to_pylist()
    max_time = ev._max_time
    for tenant, t in zip(tenants, times, strict=True):
        if t > max_time.get(tenant, NEVER):
            max_time[tenant] = t
    if sources is None:
        return
    source_max = ev._source_max
    for source, t in zip(sources, times, strict=True):
        if source is None:
            continue
        if t > source_max.get(source, NEVER):
            source_max[source] = t
        if ev._idle:
            ev._idle.discard(source)
            ev._source_quiet.pop(source, None)


def _records(rows: TableRows, sources: Sequence[str | None] | None) -> list[dict[str, Any]]:
    records = rows.all_records()
    if sources is not None:
        for r, source in zip(records, sources, strict=True):
            if source is not None:
                r["_source"] = source
    return records
