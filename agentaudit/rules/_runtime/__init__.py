"""Per-kind rule state: what each compiled rule remembers between batches, and when it fires.

One module per rule kind over a shared base (``_base``) and the incident accumulators every
kind fills (``_hits``). State lives in typed records (slotted dataclasses; NamedTuples where a
record never changes) that write themselves as plain JSON (the format of snapshot version 2:
accumulators are written by orjson as they are, the others through ``to_json``) and read
themselves back (``from_json``). Time is event time only and "now" is the
per-tenant watermark, so incidents depend on the events per key, never on batch boundaries.
Determinism, failure isolation and number handling: ``docs/evaluator.md``.
"""

from __future__ import annotations

from agentaudit.rules._runtime._base import RuleRuntime, human_duration
from agentaudit.rules._runtime._hits import NEVER, Acc, Clock, ErrorTally, Hits, Tally, plain
from agentaudit.rules._runtime.absence import AbsenceRuntime
from agentaudit.rules._runtime.aggregate import AggregateRuntime
from agentaudit.rules._runtime.ancestor import AncestorRuntime
from agentaudit.rules._runtime.integrity import IntegrityRuntime
from agentaudit.rules._runtime.predicate import PredicateRuntime
from agentaudit.rules._runtime.sequence import SequenceRuntime
from agentaudit.rules._runtime.trace_aggregate import TraceAggregateRuntime

__all__ = ["NEVER", "RUNTIMES", "Acc", "Clock", "ErrorTally", "Hits", "RuleRuntime", "Tally", "human_duration", "plain"]

RUNTIMES: dict[str, type[RuleRuntime]] = {
    "predicate": PredicateRuntime,
    "aggregate": AggregateRuntime,
    "aggregate/trace": TraceAggregateRuntime,
    "sequence": SequenceRuntime,
    "absence": AbsenceRuntime,
    "ancestor": AncestorRuntime,
    "integrity": IntegrityRuntime,
}
