"""Aggregate rules: count/sum/avg/min/max/distinct/rate/ratio per key over event-time windows."""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import islice
from operator import eq, itemgetter
from typing import TYPE_CHECKING, Any

from agentaudit.rules._runtime._base import RuleRuntime, isolate
from agentaudit.rules._runtime._hits import MAX_EVENT_IDS, Acc, AccKey, Clock, Pair, Record

if TYPE_CHECKING:
    from agentaudit.rules._compile import CompiledRule

__all__ = ["SCALE", "AggregateRuntime"]

_OP = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}
_SORT_KEY = itemgetter("event_time_us", "event_id")  # an event's (time, id) pair, as a tuple
SCALE = 1_000_000  # sums are kept as integers of millionths, so their order of addition cannot change them


def _sum_part(value_of: Any, rs: list[Record]) -> int:
    try:
        return sum([round(value_of(r) * SCALE) for r in rs])
    except OverflowError:  # a value beyond 1.8e302: scaled exactly instead (see docs/evaluator.md, numbers)
        return sum([_scaled(value_of(r)) for r in rs])


def _scaled(value: Any) -> int:
    """``value`` in millionths as an exact integer; raises ValueError when it is not finite."""
    if not math.isfinite(value):
        raise ValueError(f"aggregate value {value!r} is not a finite number")
    if abs(value) >= 2**53:  # a float this large is an integer: multiply exactly, no rounding
        return int(value) * SCALE
    scaled: int = round(value * SCALE)
    return scaled


def _finite(values: list[Any]) -> list[Any]:
    if not all(map(math.isfinite, values)):
        raise ValueError(f"aggregate value {next(v for v in values if not math.isfinite(v))!r} is not a finite number")
    return values


def _sum_merge(agg: Record, part: int) -> None:
    agg["_sum"] = agg.get("_sum", 0) + part


def _distinct_part(value_of: Any, rs: list[Record]) -> dict[str, int]:
    return dict.fromkeys([str(value_of(r)) for r in rs], 1)


def _distinct_merge(agg: Record, part: dict[str, int]) -> None:
    seen = agg.get("_seen")
    if seen is None:
        agg["_seen"] = dict(part)
    else:
        seen.update(part)


def _max_part(value_of: Any, rs: list[Record]) -> Any:
    return max(_finite([value_of(r) for r in rs]))


def _max_merge(agg: Record, part: Any) -> None:
    agg["_max"] = max(agg.get("_max", part), part)


def _min_part(value_of: Any, rs: list[Record]) -> Any:
    return min(_finite([value_of(r) for r in rs]))


def _min_merge(agg: Record, part: Any) -> None:
    agg["_min"] = min(agg.get("_min", part), part)


def _ratio_part(where: Any, rs: list[Record]) -> int:
    return len(list(filter(where, rs)))


def _ratio_merge(agg: Record, part: int) -> None:
    agg["_num"] = agg.get("_num", 0) + part


# Per aggregate fn: what a pane (one key, one slide bucket) adds up to, and how that folds into a window's values.
_PARTS: dict[str, tuple[Any, Any]] = {
    "sum": (_sum_part, _sum_merge), "avg": (_sum_part, _sum_merge), "distinct": (_distinct_part, _distinct_merge),
    "max": (_max_part, _max_merge), "min": (_min_part, _min_merge), "ratio": (_ratio_part, _ratio_merge),
}
_NO_PART = (lambda value_of, rs: None, None)  # count and rate need the count alone


class AggregateRuntime(RuleRuntime):
    """count/sum/avg/min/max/distinct/rate/ratio per key over tumbling or sliding event-time windows.

    Matches are grouped per batch once, by (key, slide bucket): a pane. Each pane is summed up
    once (count, integer sum, distinct values, numerator, sorted (time, id) pairs) and folded
    into every window that covers it, so a sliding window costs a fold per pane, not per event.
    Every match counts (the rules worker and the sink deduplicate redelivered events before
    they get here).
    """

    fusable = True

    def __init__(self, rule: CompiledRule) -> None:
        super().__init__(rule)
        fn = rule.params["fn"]
        self._part = _PARTS.get(fn, _NO_PART)
        # A sliding min/max groups per window, as it always has: which of two equal extremes
        # (0.0 and -0.0) a window keeps depends on the order its events are folded in.
        self._by_pane = rule.slide_us == rule.window_us or fn not in ("min", "max")

    def feed(self, r: Record) -> None:
        if self.rule.predicate(r):
            self.pending.append(r)

    def end_batch(self) -> None:
        pending = self.pending
        if not pending:
            return
        rule = self.rule
        slide = rule.slide_us
        panes: defaultdict[tuple[Any, int], list[Record]] = defaultdict(list)
        try:
            self._group(pending, rule.key, panes)
        except Exception:  # noqa: BLE001 - one odd event: key them one by one, the failing ones alone
            pending[:], keys = isolate(pending, rule.key, self.failures)
            panes.clear()  # only this local grouping was touched
            next_key = iter(keys).__next__
            self._group(pending, lambda _r: next_key(), panes)  # called once per event, in order
        # The pane at b belongs to the windows starting at b - span .. b (per-window panes: b alone).
        span = rule.window_us - slide if self._by_pane else 0
        pending.clear()
        hits = self.hits
        accs = hits.accs
        new_acc = hits.acc
        p = rule.params
        part_of, merge = self._part
        value_of = p.get("where") if p["fn"] == "ratio" else p.get("value")
        fold_events = self._fold_events
        folded: dict[AccKey, Acc] = {}
        for (key, b), rs in panes.items():
            try:
                part = part_of(value_of, rs)
            except Exception:  # noqa: BLE001 - before any state changed: drop the failing events alone
                rs, part = self._isolate_part(value_of, rs)
                if not rs:
                    continue
            n = len(rs)
            if n == 1:
                pairs = [_SORT_KEY(rs[0])]
            else:
                pairs = sorted(map(_SORT_KEY, rs))
            for ws in range(b - span, b + 1, slide) if span else (b,):
                acc_key = (*key, ws)
                acc = accs.get(acc_key)
                if acc is None:
                    acc = new_acc(key[0], key, ws)[1]
                acc.count += n
                if merge is not None:
                    merge(acc.values, part)
                fold_events(acc, rs, pairs)
                folded[acc_key] = acc
        hits.held.extend(folded.values())
        touched = hits.touched
        if p["eager"]:
            passes = self.passes
            for acc_key, acc in folded.items():
                if acc.fired or passes(acc):
                    acc.fired = True
                    touched.add(acc_key)
        else:
            for acc_key, acc in folded.items():
                if acc.fired:
                    touched.add(acc_key)

    def _group(self, pending: list[Record], keyf: Any, panes: defaultdict[tuple[Any, int], list[Record]]) -> None:
        """Matches by (key, slide bucket); ``keyf`` is called once per event, in order."""
        slide = self.rule.slide_us
        if self._by_pane:
            for r in pending:
                t = r["event_time_us"]
                panes[keyf(r), t - t % slide].append(r)
        else:
            window = self.rule.window_us
            for r in pending:
                t = r["event_time_us"]
                key = keyf(r)
                ws = t - t % slide
                while ws > t - window:
                    panes[key, ws].append(r)
                    ws -= slide

    def _isolate_part(self, value_of: Any, rs: list[Record]) -> tuple[list[Record], Any]:
        """The events of a pane whose values can be aggregated, and their part; the others go to ``failures``."""
        part_of = self._part[0]
        good = []
        for r in rs:
            try:
                part_of(value_of, [r])
            except Exception as exc:  # noqa: BLE001 - isolates the record a rule fails on; the caller reports it
                self.failures.append((r, exc))
            else:
                good.append(r)
        if not good:
            return good, None
        try:
            return good, part_of(value_of, good)
        except Exception as exc:  # noqa: BLE001 - values fine alone but not together (mixed types)
            self.failures.extend((r, exc) for r in good)
            return [], None

    @staticmethod
    def _fold_events(acc: Acc, rs: list[Record], pairs: list[Pair]) -> None:
        """Smallest (time, id) pairs, first/last seen and the representative (largest pair) after a batch.

        :param pairs: the (time, id) pairs of ``rs``, sorted.
        """
        low = pairs[0]
        high = pairs[-1]
        events = acc.events
        if not events:  # a new window, the common case
            if len(pairs) == 1 or not any(map(eq, pairs, islice(pairs, 1, None))):
                acc.events = pairs[:MAX_EVENT_IDS]
            else:
                acc.events = sorted(set(pairs))[:MAX_EVENT_IDS]
            acc.first = low[0]
            acc.last = high[0]
            acc.rep_sk = high
            acc.raw = rs[0] if len(rs) == 1 else max(rs, key=_SORT_KEY)
            return
        last = events[-1]
        if low[0] > last[0] or (low[0] == last[0] and low[1] > last[1]):  # the new pairs all go after the kept ones
            if len(events) < MAX_EVENT_IDS:
                previous = None
                for pair in pairs:
                    if pair != previous:
                        events.append(pair)
                        if len(events) == MAX_EVENT_IDS:
                            break
                        previous = pair
        elif len(events) < MAX_EVENT_IDS or low[0] < last[0] or (low[0] == last[0] and low[1] < last[1]):
            merged = sorted({(t, i) for t, i in events}.union(pairs))
            acc.events = merged[:MAX_EVENT_IDS]
        first = acc.first
        if first is None or low[0] < first:
            acc.first = low[0]
        seen_last = acc.last
        if seen_last is None or high[0] > seen_last:
            acc.last = high[0]
        rep_sk = acc.rep_sk
        if rep_sk is None or high[0] > rep_sk[0] or (high[0] == rep_sk[0] and high[1] > rep_sk[1]):
            acc.rep_sk = high
            acc.raw = max(rs, key=_SORT_KEY)  # the first of equal pairs, as a scan in order finds it

    def value(self, acc: Acc) -> float:
        fn = self.rule.params["fn"]
        agg = acc.values
        n = acc.count
        if fn == "count":
            return float(n)
        if fn == "sum":
            return _saturated(agg.get("_sum", 0), SCALE)
        if fn == "avg":
            return _saturated(agg.get("_sum", 0), SCALE, n) if n else 0.0
        if fn == "max":
            return float(agg.get("_max", 0.0))  # an int field (latency_us) keeps int extremes
        if fn == "min":
            return float(agg.get("_min", 0.0))
        if fn == "distinct":
            return float(len(agg.get("_seen", ())))
        if fn == "rate":
            return n / (self.rule.window_us / 1_000_000)
        return agg.get("_num", 0) / n if n else 0.0

    def passes(self, acc: Acc) -> bool:
        p = self.rule.params
        return acc.count >= p["min_count"] and _OP[p["op"]](self.value(acc), p["threshold"])

    def values(self, acc: Acc) -> Record:
        values = super().values(acc)
        values["value"] = round(self.value(acc), 6)
        values["threshold"] = self.rule.params["threshold"]
        return values

    def advance(self, clock: Clock) -> None:
        hits = self.hits
        if not self.rule.params["eager"] and clock.top >= hits.next_close:
            for acc_key, acc in hits.accs.items():
                if not acc.fired and acc.we <= clock.of(acc.tenant) and self.passes(acc):
                    acc.fired = True
                    hits.touched.add(acc_key)
        hits.evict(clock)


def _saturated(total: int, scale: int, n: int = 0) -> float:
    """``total / scale`` (``/ n``) as a float; beyond the float range, ``inf`` of its sign (see docs/evaluator.md, numbers)."""
    try:
        return total / scale / n if n else total / scale
    except OverflowError:
        try:
            return total / (scale * n)  # a mean can fit where the sum did not
        except (OverflowError, ZeroDivisionError):
            return math.inf if total > 0 else -math.inf
