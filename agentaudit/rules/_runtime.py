"""Per-kind rule state: what each compiled rule remembers between batches, and when it fires.

State is plain JSON data so a snapshot is one ``json.dumps`` away; time is event time only and
"now" is the per-tenant watermark, so incidents depend on the events per key, never on batch
boundaries. Determinism, failure isolation and number handling: ``docs/evaluator.md``.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, insort
from collections import defaultdict
from itertools import islice
from operator import eq, itemgetter
from typing import Any

from agentaudit.rules._compile import CHAIN_CHECKS, SIGNATURE_CHECKS, CompiledRule
from agentaudit.schemas.checkpoints import CHECKPOINT_NAME, check_checkpoint
from agentaudit.schemas.signing import KeyRing

__all__ = ["RUNTIMES", "Clock", "Hits", "RuleRuntime"]

MAX_EVENT_IDS = 50
SEP = "\x1f"
NEVER = -(2**63)


class Clock(dict):
    """Watermark per tenant (event time minus allowed lateness); ``default`` for unknown tenants."""

    def __init__(self, marks: dict[str, int], default: int = NEVER) -> None:
        super().__init__(marks)
        self.default = default
        self.top = max(marks.values(), default=default) if default == NEVER else default

    def of(self, tenant: str) -> int:
        return self.get(tenant, self.default)


class Hits:
    """Incident accumulators of one rule, keyed by ``(tenant, *key, window_start)``; ``touched`` marks what to emit.

    An accumulator keeps a reference to its representative record (``_raw``) and slims it to
    the template's fields only when it is emitted or snapshotted, not on every event.
    """

    def __init__(self, rule: CompiledRule) -> None:
        self.rule = rule
        self.accs: dict[tuple, dict[str, Any]] = {}
        self.touched: set[tuple] = set()
        self.retired: dict[tuple, dict[str, Any]] = {}  # closed windows, kept until emitted
        self.next_close = 0  # no accumulator closes before this watermark

    def acc(self, tenant: str, key: tuple, ws: int) -> tuple[tuple, dict[str, Any]]:
        acc_key = (*key, ws)  # key[0] is the tenant
        acc = self.accs.get(acc_key)
        if acc is None:
            we = ws + self.rule.window_us
            acc = self.accs[acc_key] = {
                "tenant": tenant, "key": SEP.join(key[1:]), "ws": ws, "we": we, "count": 0, "events": [],
                "first": None, "last": None, "rep": None, "rep_sk": None, "fired": False, "values": {},
            }
            if we < self.next_close or not self.next_close:
                self.next_close = we
        return acc_key, acc

    @staticmethod
    def add_event(acc: dict[str, Any], t: int, event_id: str, r: dict[str, Any] | None, slim: bool = False) -> bool:
        """Fold one event into ``acc``; False if already in.

        :param r: the event's record (or, with ``slim``, its already slimmed fields), a candidate representative.
        """
        pair = (t, event_id)
        events = acc["events"]
        if not events or (pair > events[-1] and len(events) < MAX_EVENT_IDS):
            events.append(pair)  # the common case: events arrive in time order
        elif len(events) < MAX_EVENT_IDS or pair < events[-1]:
            i = bisect_left(events, pair)
            if i < len(events) and events[i] == pair:
                return False
            events.insert(i, pair)
            if len(events) > MAX_EVENT_IDS:
                events.pop()
        elif pair == acc["rep_sk"]:
            return False
        first = acc["first"]
        if first is None or t < first:
            acc["first"] = t
        last = acc["last"]
        if last is None or t > last:
            acc["last"] = t
        if r is not None:
            rep_sk = acc["rep_sk"]
            if rep_sk is None or pair > rep_sk:
                acc["rep_sk"] = pair
                if slim:
                    acc.pop("_raw", None)
                    acc["rep"] = r
                else:
                    acc["_raw"] = r
        return True

    def materialize(self, acc: dict[str, Any]) -> dict[str, Any]:
        raw = acc.pop("_raw", None)
        if raw is not None:
            acc["rep"] = self.rule.slim(raw)
        return acc

    def hit(self, r: dict[str, Any], key: tuple, t: int, extra: list | None = None,
            values: dict[str, Any] | None = None) -> None:
        ws = t - t % self.rule.window_us
        acc_key, acc = self.acc(key[0], key, ws)
        if self.add_event(acc, t, r["event_id"], r):
            acc["count"] += 1
        for et, eid in extra or ():
            self.add_event(acc, et, eid, None)
        if values:
            acc["values"].update(values)
        acc["fired"] = True
        self.touched.add(acc_key)

    def evict(self, clock: Clock) -> None:
        if not self.accs or clock.top < self.next_close:
            return
        nearest = 0
        for acc_key in list(self.accs):
            acc = self.accs[acc_key]
            we = acc["we"]
            if we <= clock.of(acc["tenant"]):
                self.retired[acc_key] = self.accs.pop(acc_key)
            elif not nearest or we < nearest:
                nearest = we
        self.next_close = nearest

    def take(self) -> list[dict[str, Any]]:
        """Fired accumulators touched since the last call, in key order; forgets retired ones."""
        out = []
        for acc_key in sorted(self.touched):
            acc = self.accs.get(acc_key) or self.retired.get(acc_key)
            if acc is not None and acc["fired"]:
                out.append(self.materialize(acc))
        self.touched.clear()
        self.retired.clear()
        return out

    def state(self) -> list[list]:
        return [[list(k), self.materialize(acc)] for k, acc in sorted(self.accs.items())]

    def load(self, accs: list[list]) -> None:
        self.accs = {tuple(k): acc for k, acc in accs}
        for acc in self.accs.values():  # (time, id) pairs are tuples in memory, arrays in JSON
            acc["events"] = [tuple(pair) for pair in acc["events"]]
            if acc["rep_sk"] is not None:
                acc["rep_sk"] = tuple(acc["rep_sk"])
        self.next_close = min((a["we"] for a in self.accs.values()), default=0)


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
        self.pending: list[dict[str, Any]] = []  # fusable: this batch's matches, handled in end_batch()
        self.failures: list[tuple[dict[str, Any], Exception]] = []  # (event, error) the evaluator reports

    def feed(self, r: dict[str, Any]) -> None:
        raise NotImplementedError

    def end_batch(self) -> None:
        """Handle the batch's matches (fusable runtimes); others act in :meth:`feed`."""

    def advance(self, clock: Clock) -> None:
        self.hits.evict(clock)

    def values(self, acc: dict[str, Any]) -> dict[str, Any]:
        """Template values of an accumulator about to be emitted."""
        return {k: v for k, v in acc["values"].items() if not k.startswith("_")}

    def state(self) -> dict[str, Any]:
        return {"accs": self.hits.state()}

    def load(self, state: dict[str, Any]) -> None:
        self.hits.load(state.get("accs", []))


class PredicateRuntime(RuleRuntime):
    fusable = True

    def feed(self, r: dict[str, Any]) -> None:
        if self.rule.predicate(r):
            self.pending.append(r)

    def end_batch(self) -> None:
        pending = self.pending
        key = self.rule.key
        try:
            keys = [key(r) for r in pending]
        except Exception:  # noqa: BLE001 - one odd event: key them one by one, the failing ones alone
            pending[:], keys = _isolate(pending, key, self.failures)
        hit = self.hits.hit
        for r, k in zip(pending, keys, strict=False):
            hit(r, k, r["event_time_us"])
        pending.clear()


_OP = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}
_SORT_KEY = itemgetter("event_time_us", "event_id")  # an event's (time, id) pair, as a tuple
SCALE = 1_000_000  # sums are kept as integers of millionths, so their order of addition cannot change them


def _sum_part(value_of: Any, rs: list[dict[str, Any]]) -> int:
    try:
        return sum([round(value_of(r) * SCALE) for r in rs])
    except OverflowError:  # a value beyond 1.8e302: scaled exactly instead (see the module docstring)
        return sum([_scaled(value_of(r)) for r in rs])


def _scaled(value: Any) -> int:
    """``value`` in millionths as an exact integer; raises ValueError when it is not finite."""
    if not math.isfinite(value):
        raise ValueError(f"aggregate value {value!r} is not a finite number")
    if abs(value) >= 2**53:  # a float this large is an integer: multiply exactly, no rounding
        return int(value) * SCALE
    return round(value * SCALE)


def _finite(values: list[Any]) -> list[Any]:
    if not all(map(math.isfinite, values)):
        raise ValueError(f"aggregate value {next(v for v in values if not math.isfinite(v))!r} is not a finite number")
    return values


def _sum_merge(agg: dict[str, Any], part: int) -> None:
    agg["_sum"] = agg.get("_sum", 0) + part


def _distinct_part(value_of: Any, rs: list[dict[str, Any]]) -> dict[str, int]:
    return dict.fromkeys([str(value_of(r)) for r in rs], 1)


def _distinct_merge(agg: dict[str, Any], part: dict[str, int]) -> None:
    seen = agg.get("_seen")
    if seen is None:
        agg["_seen"] = dict(part)
    else:
        seen.update(part)


def _max_part(value_of: Any, rs: list[dict[str, Any]]) -> Any:
    return max(_finite([value_of(r) for r in rs]))


def _max_merge(agg: dict[str, Any], part: Any) -> None:
    agg["_max"] = max(agg.get("_max", part), part)


def _min_part(value_of: Any, rs: list[dict[str, Any]]) -> Any:
    return min(_finite([value_of(r) for r in rs]))


def _min_merge(agg: dict[str, Any], part: Any) -> None:
    agg["_min"] = min(agg.get("_min", part), part)


def _ratio_part(where: Any, rs: list[dict[str, Any]]) -> int:
    return len(list(filter(where, rs)))


def _ratio_merge(agg: dict[str, Any], part: int) -> None:
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

    def feed(self, r: dict[str, Any]) -> None:
        if self.rule.predicate(r):
            self.pending.append(r)

    def end_batch(self) -> None:
        pending = self.pending
        if not pending:
            return
        rule = self.rule
        slide = rule.slide_us
        panes: defaultdict[tuple, list[dict[str, Any]]] = defaultdict(list)
        try:
            self._group(pending, rule.key, panes)
        except Exception:  # noqa: BLE001 - one odd event: key them one by one, the failing ones alone
            pending[:], keys = _isolate(pending, rule.key, self.failures)
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
        folded: dict[tuple, dict[str, Any]] = {}
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
                acc["count"] += n
                if merge is not None:
                    merge(acc["values"], part)
                fold_events(acc, rs, pairs)
                folded[acc_key] = acc
        touched = hits.touched
        if p["eager"]:
            passes = self.passes
            for acc_key, acc in folded.items():
                if acc["fired"] or passes(acc):
                    acc["fired"] = True
                    touched.add(acc_key)
        else:
            for acc_key, acc in folded.items():
                if acc["fired"]:
                    touched.add(acc_key)

    def _group(self, pending: list[dict[str, Any]], keyf: Any, panes: defaultdict[tuple, list[dict[str, Any]]]) -> None:
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

    def _isolate_part(self, value_of: Any, rs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Any]:
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
    def _fold_events(acc: dict[str, Any], rs: list[dict[str, Any]], pairs: list[tuple[int, str]]) -> None:
        """Smallest (time, id) pairs, first/last seen and the representative (largest pair) after a batch.

        :param pairs: the (time, id) pairs of ``rs``, sorted.
        """
        low = pairs[0]
        high = pairs[-1]
        events = acc["events"]
        if not events:  # a new window, the common case
            if len(pairs) == 1 or not any(map(eq, pairs, islice(pairs, 1, None))):
                acc["events"] = pairs[:MAX_EVENT_IDS]
            else:
                acc["events"] = sorted(set(pairs))[:MAX_EVENT_IDS]
            acc["first"] = low[0]
            acc["last"] = high[0]
            acc["rep_sk"] = high
            acc["_raw"] = rs[0] if len(rs) == 1 else max(rs, key=_SORT_KEY)
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
            acc["events"] = merged[:MAX_EVENT_IDS]
        first = acc["first"]
        if first is None or low[0] < first:
            acc["first"] = low[0]
        seen_last = acc["last"]
        if seen_last is None or high[0] > seen_last:
            acc["last"] = high[0]
        rep_sk = acc["rep_sk"]
        if rep_sk is None or high[0] > rep_sk[0] or (high[0] == rep_sk[0] and high[1] > rep_sk[1]):
            acc["rep_sk"] = high
            acc["_raw"] = max(rs, key=_SORT_KEY)  # the first of equal pairs, as a scan in order finds it

    def value(self, acc: dict[str, Any]) -> float:
        fn = self.rule.params["fn"]
        agg = acc["values"]
        n = acc["count"]
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

    def passes(self, acc: dict[str, Any]) -> bool:
        p = self.rule.params
        return acc["count"] >= p["min_count"] and _OP[p["op"]](self.value(acc), p["threshold"])

    def values(self, acc: dict[str, Any]) -> dict[str, Any]:
        values = super().values(acc)
        values["value"] = round(self.value(acc), 6)
        values["threshold"] = self.rule.params["threshold"]
        return values

    def advance(self, clock: Clock) -> None:
        hits = self.hits
        if not self.rule.params["eager"] and clock.top >= hits.next_close:
            for acc_key, acc in hits.accs.items():
                if not acc["fired"] and acc["we"] <= clock.of(acc["tenant"]) and self.passes(acc):
                    acc["fired"] = True
                    hits.touched.add(acc_key)
        hits.evict(clock)


class TraceAggregateRuntime(AggregateRuntime):
    """An aggregate with ``window: trace``: one window per trace (and ``by`` key), not per span of time.

    A trace's window closes when the tenant's watermark reaches the end of its root (an
    ``invoke_agent`` end with no parent), or, if no root end comes, the last event seen of the
    trace plus ``idle`` (the rule's ``window_us``; default 10 minutes; a trace is followed from its
    first counted event or its root's end, whichever comes first). So late events within the
    allowed lateness still count. Rising fns (count, sum, max, distinct with ``>``/``>=``) fire as
    soon as the threshold is crossed; the others when the window closes. An incident's identity
    is (rule, tenant, key with trace_id); it reports the trace's first and last matching event
    times as its window. An event of a trace whose window has closed starts a new count (late).
    """

    fusable = False  # every event is seen, to find the root's end

    def __init__(self, rule: CompiledRule) -> None:
        super().__init__(rule)
        self.traces: dict[str, list] = {}  # tenant SEP trace -> [tenant, last time, root end or None, acc keys]
        self._value = rule.params.get("where") if rule.params["fn"] == "ratio" else rule.params.get("value")

    def feed(self, r: dict[str, Any]) -> None:
        rule = self.rule
        matched = rule.predicate(r)
        if matched:  # the risky steps first: a failure leaves no state changed
            key = rule.key(r)
            part_of, merge = self._part
            part = part_of(self._value, [r])
        root_end = r["kind"] == "invoke_agent" and r["phase"] == "end" and not r["parent_action_id"]
        if not (matched or root_end or self.traces):
            return  # nothing of this trace is counted yet: no state to keep
        tkey = f"{r['tenant']}{SEP}{r['trace_id']}"
        t = r["event_time_us"]
        trace = self.traces.get(tkey)
        if trace is None:
            if not (matched or root_end):
                return
            trace = self.traces[tkey] = [r["tenant"], t, None, []]
        elif t > trace[1]:
            trace[1] = t
        if root_end:
            trace[2] = t
        if not matched:
            return
        hits = self.hits
        acc_key = (*key, 0)
        acc = hits.accs.get(acc_key)
        if acc is None:
            acc = hits.acc(key[0], key, 0)[1]
            trace[3].append(list(acc_key))
        if hits.add_event(acc, t, r["event_id"], r):
            acc["count"] += 1
            if merge is not None:
                merge(acc["values"], part)
        if acc["fired"] or (rule.params["eager"] and self.passes(acc)):
            acc["fired"] = True
            hits.touched.add(acc_key)

    def advance(self, clock: Clock) -> None:
        hits = self.hits
        idle = self.rule.window_us
        # a root end seen before any counted event (delivered out of order) is kept until idle after it
        closed = [k for k, (tenant, last, end, accs) in self.traces.items()
                  if (end if end is not None and accs else last + idle) <= clock.of(tenant)]
        for tkey in closed:
            for acc_key in self.traces.pop(tkey)[3]:
                acc_key = tuple(acc_key)
                acc = hits.accs.pop(acc_key, None)
                if acc is None:
                    continue
                if not acc["fired"] and self.passes(acc):
                    acc["fired"] = True
                    hits.touched.add(acc_key)
                hits.retired[acc_key] = acc

    def state(self) -> dict[str, Any]:
        return {"accs": self.hits.state(), "traces": self.traces}

    def load(self, state: dict[str, Any]) -> None:
        super().load(state)
        self.traces = state.get("traces", {})


class SequenceRuntime(RuleRuntime):
    """A (condition) then B (``then``) in one trace within T, whatever order the two arrive in.

    Events are ordered by (event time, event id). With ``unless`` (C), a pair counts only when
    no C event of the same trace lies strictly between A and B in that order: a C cancels every
    A before it for every B after it. Then a B is decided when the tenant's watermark reaches
    its time (every A and C up to it, within the allowed lateness, has arrived), not on
    arrival, so a C that arrives after its B still cancels and incidents only ever grow.
    """

    def __init__(self, rule: CompiledRule) -> None:
        super().__init__(rule)
        self.traces: dict[str, dict[str, Any]] = {}
        self.unless = rule.params.get("unless")
        self.due: dict[str, list[list]] = {}  # with unless, per tenant: heap of [t, event_id, trace key] of Bs

    def feed(self, r: dict[str, Any]) -> None:
        rule = self.rule
        is_a = rule.predicate(r)
        is_b = rule.params["then"](r)
        unless = self.unless
        is_c = unless is not None and unless(r)
        if not (is_a or is_b or is_c):
            return
        tkey = f"{r['tenant']}{SEP}{r['trace_id']}"
        trace = self.traces.get(tkey)
        t = r["event_time_us"]
        if trace is None:
            trace = self.traces[tkey] = {"tenant": r["tenant"], "as": [], "bs": [], "last": t}
            if unless is not None:
                trace["cs"] = []
        trace["last"] = max(trace["last"], t)
        within = rule.params["within"]
        if is_c:
            c = [t, r["event_id"]]
            if c not in trace["cs"]:
                insort(trace["cs"], c)
        if is_a:
            a = [t, r["event_id"]]
            if a not in trace["as"]:
                insort(trace["as"], a)
                if unless is None:
                    for b in trace["bs"]:
                        if a < b[:2] and b[0] - t <= within:
                            self.fire(b, [a])
        if is_b:
            b_sk = [t, r["event_id"]]
            if any(x[:2] == b_sk for x in trace["bs"]):
                return
            stored = [t, r["event_id"], rule.slim(r), list(rule.key(r))]
            trace["bs"].append(stored)
            if unless is not None:
                heapq.heappush(self.due.setdefault(r["tenant"], []), [t, r["event_id"], tkey])
                return
            qualifying = [a for a in trace["as"] if a < b_sk and t - a[0] <= within]
            if qualifying:
                self.fire(stored, qualifying)

    def decide(self, t: int, event_id: str, tkey: str) -> None:
        """With ``unless``: fire B when an A precedes it within T with no C after that A and before B."""
        trace = self.traces.get(tkey)
        if trace is None:
            return
        b_sk = [t, event_id]
        b = next((x for x in trace["bs"] if x[:2] == b_sk), None)
        if b is None:
            return
        cs = trace["cs"]
        i = bisect_left(cs, b_sk)
        after = cs[i - 1] if i else None  # the last C before B: only the As after it qualify
        within = self.rule.params["within"]
        qualifying = [a for a in trace["as"] if a < b_sk and t - a[0] <= within and (after is None or a >= after)]
        if qualifying:
            self.fire(b, qualifying)

    def fire(self, b: list, as_: list) -> None:
        rule = self.rule
        t, event_id, slim, key = b
        ws = t - t % rule.window_us
        acc_key, acc = self.hits.acc(key[0], tuple(key), ws)
        if self.hits.add_event(acc, t, event_id, slim, slim=True):
            acc["count"] += 1
        for at, aid in as_:
            self.hits.add_event(acc, at, aid, None)
        acc["fired"] = True
        self.hits.touched.add(acc_key)

    def advance(self, clock: Clock) -> None:
        for tenant, heap in self.due.items():
            watermark = clock.of(tenant)
            while heap and heap[0][0] <= watermark:
                self.decide(*heapq.heappop(heap))
        within = self.rule.params["within"]
        for tkey in [k for k, tr in self.traces.items() if tr["last"] + within < clock.of(tr["tenant"])]:
            del self.traces[tkey]
        super().advance(clock)

    def state(self) -> dict[str, Any]:
        state = {"accs": self.hits.state(), "traces": self.traces}
        if self.unless is not None:
            state["due"] = self.due
        return state

    def load(self, state: dict[str, Any]) -> None:
        super().load(state)
        self.traces = state.get("traces", {})
        self.due = state.get("due", {})
        for heap in self.due.values():
            heapq.heapify(heap)


class AbsenceRuntime(RuleRuntime):
    """A started action (condition) with no end (``end``, same action_id) within T of its start.

    A start is decided when the watermark passes its deadline (start + T), which for starts late
    in a window is after the window's end; so a window's accumulator stays until the watermark
    passes its end + T, the last deadline of a start inside it. Every hung start of a key and
    window thus adds to one incident whose count only grows (the incidents table keeps the row
    with the largest count), instead of a later decision restarting the count under the same id.
    """

    def __init__(self, rule: CompiledRule) -> None:
        super().__init__(rule)
        self.pending: dict[str, list] = {}
        self.deadlines: dict[str, list[list]] = {}  # per tenant: heap of [deadline, action_id]

    def feed(self, r: dict[str, Any]) -> None:
        rule = self.rule
        aid = r["action_id"]
        if aid in self.pending and rule.params["end"](r):
            start_t = self.pending[aid][0]
            if r["event_time_us"] - start_t <= rule.params["within"]:
                del self.pending[aid]
            return
        if rule.predicate(r):
            t = r["event_time_us"]
            if aid in self.pending:
                return
            self.pending[aid] = [t, r["event_id"], rule.slim(r), list(rule.key(r))]
            heapq.heappush(self.deadlines.setdefault(r["tenant"], []), [t + rule.params["within"], aid])

    def advance(self, clock: Clock) -> None:
        for tenant, heap in self.deadlines.items():
            watermark = clock.of(tenant)
            while heap and heap[0][0] <= watermark:
                self.decide(heapq.heappop(heap)[1])
        within = self.rule.params["within"]  # windows close T after their end: see the class docstring
        default = clock.default - within if clock.default != NEVER else NEVER
        self.hits.evict(Clock({tenant: mark - within for tenant, mark in clock.items()}, default=default))

    def decide(self, aid: str) -> None:
        entry = self.pending.pop(aid, None)
        if entry is not None:
            t, event_id, slim, key = entry
            ws = t - t % self.rule.window_us
            acc_key, acc = self.hits.acc(key[0], tuple(key), ws)
            if self.hits.add_event(acc, t, event_id, slim, slim=True):
                acc["count"] += 1
            acc["values"]["within"] = _human(self.rule.params["within"])
            acc["fired"] = True
            self.hits.touched.add(acc_key)

    def state(self) -> dict[str, Any]:
        return {"accs": self.hits.state(), "pending": self.pending, "deadlines": self.deadlines}

    def load(self, state: dict[str, Any]) -> None:
        super().load(state)
        self.pending = state.get("pending", {})
        self.deadlines = state.get("deadlines", {})
        for heap in self.deadlines.values():
            heapq.heapify(heap)


class AncestorRuntime(RuleRuntime):
    """A consequential action (condition) needs an approval earlier in its causal chain, within T.

    An approval counts when it is an ancestor of the action, a child of one of its ancestors
    (asked for by a step of the chain), a sibling, or named in the action's ``links``. The
    check runs when the watermark passes the action's time, so late approvals (within the
    allowed lateness) are still seen.

    With ``bind`` (attribute names, e.g. ``args_hash``), an approval counts only when it carries
    each of those attributes, non-empty and equal to the action's own, and, when it has an
    ``expires_at_us`` attribute, the action happened before that time: an approval of
    arguments A never covers arguments B, and an expired approval covers nothing.

    With ``once``, each approval covers at most one action. Actions are decided in (event time,
    event id) order per tenant, as the watermark passes them, and each uses up the earliest
    unused approval that covers it; so the same events give the same incidents whatever the
    batch boundaries. The used approvals' event ids are kept with the trace (and snapshotted).
    """

    def __init__(self, rule: CompiledRule) -> None:
        super().__init__(rule)
        self.traces: dict[str, dict[str, Any]] = {}
        self.due: dict[str, list[list]] = {}  # per tenant: heap of actions waiting for the watermark
        self.bind: tuple[str, ...] = rule.params.get("bind") or ()
        self.once: bool = rule.params.get("once", False)

    def _bound(self, r: dict[str, Any]) -> list[str]:
        attrs = r.get("attributes") or {}
        return [str(attrs.get(name) or "") for name in self.bind]

    def feed(self, r: dict[str, Any]) -> None:
        rule = self.rule
        tkey = f"{r['tenant']}{SEP}{r['trace_id']}"
        t = r["event_time_us"]
        trace = self.traces.get(tkey)
        if trace is None:
            trace = self.traces[tkey] = {"tenant": r["tenant"], "parents": {}, "approvals": [], "last": t}
        trace["last"] = max(trace["last"], t)
        trace["parents"][r["action_id"]] = r["parent_action_id"] or ""
        if rule.params["approval"](r):
            entry = [t, r["event_id"], r["action_id"], r["parent_action_id"] or ""]
            if self.bind:
                entry += [self._bound(r), _expiry((r.get("attributes") or {}).get(EXPIRES_ATTRIBUTE))]
            if entry not in trace["approvals"]:
                trace["approvals"].append(entry)
        if rule.predicate(r):
            due = [t, r["event_id"], tkey, r["action_id"], r["parent_action_id"] or "", list(r["links"]),
                   rule.slim(r), list(rule.key(r))]
            if self.bind:
                due.append(self._bound(r))
            heapq.heappush(self.due.setdefault(r["tenant"], []), due)

    def advance(self, clock: Clock) -> None:
        within = self.rule.params["within"]
        for tenant, heap in self.due.items():
            watermark = clock.of(tenant)
            while heap and heap[0][0] <= watermark:
                self.decide(heapq.heappop(heap), within)
        waiting = {entry[2] for heap in self.due.values() for entry in heap}
        for tkey in [k for k, tr in self.traces.items() if tr["last"] < clock.of(tr["tenant"]) - within]:
            if tkey not in waiting:
                del self.traces[tkey]
        super().advance(clock)

    def decide(self, entry: list, within: int) -> None:
        t, event_id, tkey, aid, parent, links, slim, key = entry[:8]
        trace = self.traces.get(tkey, {"parents": {}, "approvals": []})
        chain: set[str] = set()
        node = parent
        while node and node not in chain:
            chain.add(node)
            node = trace["parents"].get(node, "")
        related = [
            ap for ap in trace["approvals"]
            if ap[0] <= t and t - ap[0] <= within and ap[2] != aid
            and (ap[2] in chain or (ap[3] and ap[3] in chain) or ap[3] == parent or ap[2] in links)
        ]
        detail = "no approval in its chain"
        once = self.once
        if related and not self.bind:
            if not once:
                return
            if self._use(trace, related):
                return
            detail = "every approval in its chain was already used by an earlier action (once: true)"
        elif related:
            wanted = entry[8] if len(entry) > 8 else [""] * len(self.bind)
            names = ", ".join(self.bind)
            if not all(wanted):
                detail = f"the action carries no {names} to bind an approval to"
            else:
                matching = [ap for ap in related if len(ap) > 5 and ap[4] == wanted]
                valid = [ap for ap in matching if ap[5] is None or t < ap[5]]
                if valid and (not once or self._use(trace, valid)):
                    return
                detail = ("every matching approval was already used by an earlier action (once: true)" if valid
                          else f"the approval had expired (or has a bad {EXPIRES_ATTRIBUTE})" if matching
                          else f"approved {names} differs from the action's")
        ws = t - t % self.rule.window_us
        acc_key, acc = self.hits.acc(key[0], tuple(key), ws)
        if self.hits.add_event(acc, t, event_id, slim, slim=True):
            acc["count"] += 1
        acc["values"]["within"] = _human(within)
        acc["values"]["detail"] = detail
        acc["fired"] = True
        self.hits.touched.add(acc_key)

    @staticmethod
    def _use(trace: dict[str, Any], covering: list[list]) -> bool:
        """Use up the earliest (time, event id) of ``covering`` not yet used; False if all were."""
        used = trace.setdefault("used", [])
        free = [ap for ap in covering if ap[1] not in used]
        if not free:
            return False
        used.append(min(free, key=lambda ap: (ap[0], ap[1]))[1])
        return True

    def state(self) -> dict[str, Any]:
        return {"accs": self.hits.state(), "traces": self.traces, "due": self.due}

    def load(self, state: dict[str, Any]) -> None:
        super().load(state)
        self.traces = state.get("traces", {})
        self.due = state.get("due", {})
        for heap in self.due.values():
            heapq.heapify(heap)


class IntegrityRuntime(RuleRuntime):
    """Sequence gaps and hash-chain breaks per producer stream (schemas.integrity semantics), in log order.

    With a key ring (``keyring``, set by the evaluator), the signature checks judge each stream's signed
    checkpoints (schemas.checkpoints): ``bad_signature``, ``unknown_key``, ``not_authorized`` and ``revoked``
    name a checkpoint whose signature cannot be believed; ``unsigned`` fires once per stretch of a stream
    left without a valid checkpoint for more than ``max_unsigned_events`` events or ``max_unsigned_for`` of
    event time (also when the watermark passes that time and nothing came: a forged stream that stops).
    """

    keyring: KeyRing | None = None

    def __init__(self, rule: CompiledRule) -> None:
        super().__init__(rule)
        self.streams: dict[str, list] = {}
        checks = rule.params["checks"]
        self._chain_checks = bool(checks & CHAIN_CHECKS) or not checks
        self._sig_checks = checks & SIGNATURE_CHECKS
        # stream -> [events not covered, event time of the first, tenant, reported, slim first record]
        self.unsigned: dict[str, list] = {}

    def feed(self, r: dict[str, Any]) -> None:
        rule = self.rule
        if not rule.predicate(r):
            return
        if self._sig_checks and self.keyring is not None:
            self._feed_signature(r)
        if not self._chain_checks:
            return
        sid = r["stream_id"]
        seq = r["seq"]
        digest = r.get("event_hash", "")
        state = self.streams.get(sid)
        # The common case, the next event of a known stream with its chain intact, finds no problem.
        if state is not None and seq == state[0] and (not state[1] or not digest or r["prev_hash"] == state[1]):
            state[0] = seq + 1
            state[1] = digest
            return
        checks = rule.params["checks"]
        problem = None
        if seq == 0 and r["prev_hash"] and "bad_start" in checks:
            problem = ("bad_start", "seq 0 must have an empty prev_hash")
        if state is not None:
            expected, last_hash = state
            if seq > expected and "gap" in checks:
                problem = ("gap", f"seq {expected}..{seq - 1} missing")
            elif seq < expected:
                kind = "duplicate" if seq == expected - 1 else "reorder"
                if kind in checks:
                    problem = (kind, f"expected seq {expected}, got {seq}")
            elif seq == expected and last_hash and digest and r["prev_hash"] != last_hash and "hash_mismatch" in checks:
                problem = ("hash_mismatch", "prev_hash does not match the previous event's body")
            state[0] = max(expected, seq + 1)
            state[1] = digest
        else:
            self.streams[sid] = [seq + 1, digest]
        if problem is not None:
            self.hits.hit(r, rule.key(r), r["event_time_us"],
                          values={"detail": f"{problem[0]} at seq {seq}: {problem[1]}"})

    def _feed_signature(self, r: dict[str, Any]) -> None:
        rule = self.rule
        checks = self._sig_checks
        sid = r["stream_id"]
        t = r["event_time_us"]
        check = check_checkpoint(self.keyring, r)  # type: ignore[arg-type] - set when called
        if check is not None and check.ok:
            if r["name"] == CHECKPOINT_NAME and r["kind"] == "other":
                self.unsigned.pop(sid, None)  # a checkpoint event carries nothing of the agent's: all covered
                return
            self.unsigned[sid] = self._uncovered(r)
            self.unsigned[sid][0] = 1  # the signing event itself waits for the next checkpoint
            return
        if check is not None and check.verdict.value in checks:
            self.hits.hit(r, rule.key(r), t, values={
                "detail": f"{check.verdict.value} checkpoint at seq {r['seq']}: {check.detail or check.verdict.value}"})
        state = self.unsigned.get(sid)
        if state is None:
            state = self.unsigned[sid] = self._uncovered(r)
        state[0] += 1
        if "unsigned" in checks and not state[3] and (
                state[0] > rule.params["max_unsigned_events"] or t - state[1] > rule.params["max_unsigned_us"]):
            state[3] = True
            self.hits.hit(r, rule.key(r), t, values={"detail": self._unsigned_detail(state, r["seq"])})

    def _uncovered(self, r: dict[str, Any]) -> list:
        """The state of a stretch starting at ``r``: its first event, kept small (and JSON) for a late report."""
        first = {**self.rule.slim(r), "event_id": r["event_id"], "event_time_us": r["event_time_us"],
                 "stream_id": r["stream_id"], "agent_id": r["agent_id"], "seq": r["seq"]}
        return [0, r["event_time_us"], r["tenant"], False, first, list(self.rule.key(r))]

    def _unsigned_detail(self, state: list, seq: int | None) -> str:
        where = f"up to seq {seq}" if seq is not None else "and nothing since"
        return (f"unsigned: {state[0]} event(s) from seq {state[4].get('seq', '?')} {where} carry no valid "
                f"checkpoint (allowed {self.rule.params['max_unsigned_events']} events, "
                f"{_human(self.rule.params['max_unsigned_us'])})")

    def advance(self, clock: Clock) -> None:
        if self.unsigned and "unsigned" in self._sig_checks and self.keyring is not None:
            limit = self.rule.params["max_unsigned_us"]
            for state in self.unsigned.values():
                if not state[3] and clock.of(state[2]) - state[1] > limit:
                    state[3] = True  # the watermark passed: no checkpoint can come in time any more
                    rep = state[4]
                    self.hits.hit(rep, tuple(state[5]), rep["event_time_us"],
                                  values={"detail": self._unsigned_detail(state, None)})
        super().advance(clock)

    def feed_conflict(self, r: dict[str, Any], first_hash: str) -> None:
        """``r`` repeats the event id of an event already judged, with another body (``first_hash`` was the first's).

        The copy is not judged (the first-seen copy stands, as readers show it); the check
        ``conflicting_duplicate`` reports it, naming the event id and both body hashes.
        """
        rule = self.rule
        if "conflicting_duplicate" not in rule.params["checks"] or not rule.predicate(r):
            return
        self.hits.hit(r, rule.key(r), r["event_time_us"], values={
            "detail": (f"event {r['event_id']} arrived again with another body: first copy {first_hash}, "
                       f"this copy {r['event_hash']} (partition {r.get('_partition')} offset {r.get('_offset')}); "
                       "both are stored, readers show the first"),
            "first_hash": first_hash, "conflict_hash": r["event_hash"]})

    def state(self) -> dict[str, Any]:
        return {"accs": self.hits.state(), "streams": self.streams, "unsigned": self.unsigned}

    def load(self, state: dict[str, Any]) -> None:
        super().load(state)
        self.streams = state.get("streams", {})
        self.unsigned = state.get("unsigned", {})


EXPIRES_ATTRIBUTE = "expires_at_us"  # an approval's expiry, epoch microseconds (agentaudit.control.approvals)


def _expiry(value: Any) -> int | None:
    """An approval's expiry; None when it has none, 0 (always expired) when it is not a number."""
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _saturated(total: int, scale: int, n: int = 0) -> float:
    """``total / scale`` (``/ n``) as a float; beyond the float range, ``inf`` of its sign (see the module docstring)."""
    try:
        return total / scale / n if n else total / scale
    except OverflowError:
        try:
            return total / (scale * n)  # a mean can fit where the sum did not
        except (OverflowError, ZeroDivisionError):
            return math.inf if total > 0 else -math.inf


def _isolate(pending: list[dict[str, Any]], fn: Any,
             failures: list[tuple[dict[str, Any], Exception]]) -> tuple[list[dict[str, Any]], list[Any]]:
    """``fn`` of each event, one by one: the events it succeeded on and its results; the others to ``failures``."""
    good: list[dict[str, Any]] = []
    results: list[Any] = []
    for r in pending:
        try:
            results.append(fn(r))
        except Exception as exc:  # noqa: BLE001 - isolates the record a rule fails on; the caller reports it
            failures.append((r, exc))
        else:
            good.append(r)
    return good, results


def _human(us: int) -> str:
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000)):
        if us % size == 0:
            return f"{us // size}{unit}"
    return f"{us}us"


RUNTIMES: dict[str, type[RuleRuntime]] = {
    "predicate": PredicateRuntime,
    "aggregate": AggregateRuntime,
    "aggregate/trace": TraceAggregateRuntime,
    "sequence": SequenceRuntime,
    "absence": AbsenceRuntime,
    "ancestor": AncestorRuntime,
    "integrity": IntegrityRuntime,
}
