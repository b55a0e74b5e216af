"""What every runtime shares: the :class:`RuleRuntime` base and the helpers its subclasses use."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentaudit.rules._runtime._hits import SEP, Acc, Clock, Hits, Record

if TYPE_CHECKING:
    from agentaudit.rules._compile import CompiledRule

__all__ = ["RuleRuntime", "heap_of", "human_duration", "isolate", "trace_key"]


class RuleRuntime:
    """State and behaviour of one compiled rule.

    A ``fusable`` runtime acts only on events its condition matches, collected in ``pending``,
    so the evaluator may test its condition inside one fused function per event kind that
    appends matches straight to that list; :meth:`end_batch` then handles them together.
    """

    fusable = False

    def __init__(self, rule: CompiledRule) -> None:
        self.rule = rule
        self.hits = Hits(rule)
        self.pending: list[Record] = []  # fusable: this batch's matches, handled in end_batch()
        self.failures: list[tuple[Record, Exception]] = []  # (event, error) the evaluator reports

    def feed(self, r: Record) -> None:
        raise NotImplementedError

    def end_batch(self) -> None:
        """Handle the batch's matches (fusable runtimes); others act in :meth:`feed`."""

    def advance(self, clock: Clock) -> None:
        self.hits.evict(clock)

    def values(self, acc: Acc) -> Record:
        """Template values of an accumulator about to be emitted."""
        return {k: v for k, v in acc.values.items() if not k.startswith("_")}

    def state(self) -> Record:
        return {"accs": self.hits.state()}

    def load(self, state: Record) -> None:
        self.hits.load(state.get("accs", []))


def trace_key(r: Record) -> str:
    """The key of ``r``'s trace among all tenants' traces."""
    return f"{r['tenant']}{SEP}{r['trace_id']}"


def isolate(pending: list[Record], fn: Callable[[Record], Any],
            failures: list[tuple[Record, Exception]]) -> tuple[list[Record], list[Any]]:
    """``fn`` of each event, one by one: the events it succeeded on and its results; the others to ``failures``."""
    good: list[Record] = []
    results: list[Any] = []
    for r in pending:
        try:
            results.append(fn(r))
        except Exception as exc:  # noqa: BLE001 - isolates the record a rule fails on; the caller reports it
            failures.append((r, exc))
        else:
            good.append(r)
    return good, results


def heap_of(entries: list[list[Any]]) -> list[tuple[Any, ...]]:
    """A heap of tuples from its JSON arrays (a tuple and a list do not compare)."""
    heap = [tuple(e) for e in entries]
    heapq.heapify(heap)
    return heap


def human_duration(us: int) -> str:
    """``us`` microseconds in the largest whole unit: ``"90s"``, ``"2h"``, ``"1500us"``."""
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000)):
        if us % size == 0:
            return f"{us // size}{unit}"
    return f"{us}us"
