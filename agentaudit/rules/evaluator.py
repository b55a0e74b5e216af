"""The rule engine as the sink sees it: a :class:`BaseEvaluator` over compiled rules.

>>> evaluator = load_evaluator(["rules/"], owners_path="owners.yaml")
>>> incidents = evaluator.evaluate(records)          # one consumed batch
>>> incidents += evaluator.on_watermark(max_event_time_us)

A rule that raises on an event fails for that event alone: the event still counts for every
other rule, and the failure becomes a ``rule_error`` incident (rule id :data:`RULE_ERROR_ID`,
key the failing rule's id) of the event's tenant, one per rule, tenant and hour of event time,
naming the rule, the events (up to 50) and the last error. See :mod:`._runtime` for numbers
that overflow.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from agentaudit.logs import get_logger
from agentaudit.rules._compile import RuleSet, compile_rule_files
from agentaudit.rules._runtime import NEVER, RUNTIMES, Acc, Clock, ErrorTally, RuleRuntime, plain
from agentaudit.rules._spec import read_rule_files
from agentaudit.rules.engine import BaseEvaluator
from agentaudit.rules.exceptions import RuleError
from agentaudit.schemas import ActionKind, Incident, KeyRing, Severity

if TYPE_CHECKING:
    import pyarrow as pa

    from agentaudit.rules._batch import Plan
    from agentaudit.rules.owners import OwnershipMap

__all__ = ["DEFAULT_LATENESS_US", "DEFAULT_PACK", "RULE_ERROR_ID", "RuleEvaluator", "load_evaluator", "load_rule_set",
           "read_snapshot", "rule_error_incident", "rule_paths"]

_log = get_logger(__name__)
DEFAULT_PACK = Path(__file__).with_name("pack")
DEFAULT_LATENESS_US = 30_000_000
DEDUPE_WINDOW = 200_000  # event ids remembered to drop redeliveries; a snapshot restores state as of its offsets
_SNAPSHOT_VERSION = 2
#: Rule id of the incidents that record a rule failing on events (the key names the failing rule).
RULE_ERROR_ID = "rule_error"
_ERROR_WINDOW_US = 3_600_000_000  # one rule_error incident per rule, tenant and hour of event time
_MAX_SUMMARY_CHARS = 4096  # an incident must fit a Kafka message whatever the events it quotes
_MAX_ATTRIBUTE_CHARS = 1024
_MAX_ERROR_CHARS = 500


def rule_paths(paths: str | Sequence[str] | None) -> list[Path]:
    """Rule files named by ``paths`` (files, or directories whose *.yaml/*.yml are read in name order)."""
    if paths is None:
        paths = [str(DEFAULT_PACK)]
    elif isinstance(paths, (str, Path)):
        paths = [str(paths)]
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()))
        elif path.exists():
            files.append(path)
        else:
            raise RuleError("no such rule file or directory; check the path", file=str(path))
    return files


def load_rule_set(paths: str | Sequence[str] | None = None) -> RuleSet:
    """Read, check and compile rule files (None: the default pack); raises :class:`RuleError`."""
    files = rule_paths(paths)
    return compile_rule_files(read_rule_files(files), [str(f) for f in files])


class RuleEvaluator(BaseEvaluator):
    """Runs a compiled :class:`RuleSet` over batches of decoded action records.

    :param rule_set: compiled rules, from :func:`load_rule_set`.
    :param owners: ownership map used when a rule names no owner; default none.
    :param keyring: the producer keys (``AGENTAUDIT_KEYS_FILE``): given, integrity rules with signature
        checks verify each stream's signed checkpoints and require them; default none (not judged).
    :param lateness_us: allowed lateness: the watermark trails the largest event time seen by this
        much, so events up to this late still count; default 30 s.
    :param sources: ids of every source partition that can carry events to this evaluator
        (records name theirs in ``"_source"``, e.g. ``"agentaudit.actions:3"``). When given, one
        watermark holds for all tenants: the smallest, over these sources, of the largest event
        time each has delivered, minus the lateness. Sources that are each in event-time order
        then never deliver a late event, however the copy interleaved them, so incidents do not
        depend on that interleaving; a source that has delivered nothing holds every window
        open (until :meth:`flush`) unless it is marked idle. Default none: per-tenant watermarks
        from the events alone.

    Source markers: with ``sources``, :meth:`evaluate` also takes marker records, dicts with
    ``"_marker"`` (``"progress"`` or ``"idle"``), ``"_source"`` and optionally ``"event_time_us"``
    (the largest event time the source has delivered anywhere). A marker raises that source's
    maximum as its events would, so a source that carries nothing to this evaluator still moves
    its watermark. ``"idle"`` also leaves the source out of the minimum until an event or a
    progress marker of it arrives again; when every source is idle, the watermark is the largest
    of their maxima, each plus the ``"quiet_us"`` its latest idle marker carries (processing time
    without a delivery: event time moves on with it, see :mod:`.event_time`), minus the lateness
    (nothing is pending anywhere). Markers are applied in
    their place among the records, as the rules worker copies them into the repartition topic
    behind the source's events (see :class:`~agentaudit.consumers.rules_worker.RulesWorker`).
    """

    def __init__(self, rule_set: RuleSet, owners: OwnershipMap | None = None,
                 lateness_us: int = DEFAULT_LATENESS_US, sources: Sequence[str] | None = None,
                 keyring: KeyRing | None = None) -> None:
        self.rule_set = rule_set
        self.revision = rule_set.revision
        self.owners = owners
        self.lateness_us = lateness_us
        self.runtimes: list[RuleRuntime] = [RUNTIMES[_runtime_kind(rule)](rule) for rule in rule_set.rules]
        self.keyring = keyring
        for rt in self.runtimes:
            if hasattr(rt, "keyring"):
                rt.keyring = keyring  # integrity rules judge stream signatures only when keys are registered
        self._max_time: dict[str, int] = {}  # per tenant: the largest event time seen
        self._marked: dict[str, int] = {}  # per tenant: the watermark the runtimes last advanced to
        self._ceiling: int | None = None  # no tenant watermark passes this (hold(): a partition still unread)
        self.sources: tuple[str, ...] | None = tuple(sources) if sources is not None else None
        self._source_max: dict[str, int] = {}  # per source partition: the largest event time it delivered
        self._source_mark = NEVER  # with sources: the watermark the runtimes last advanced to
        self._idle: set[str] = set()  # with sources: those marked idle, left out of the minimum
        self._source_quiet: dict[str, int] = {}  # with sources: idle ones' processing time without a delivery, µs
        self.runtime_errors = 0
        # rule_error accumulators, keyed (rule id, tenant, hour start); touched ones are emitted by _advance
        self._errors: dict[tuple[str, str, int], ErrorTally] = {}
        self._errors_touched: set[tuple[str, str, int]] = set()
        self._seen: dict[str, str] = {}  # recent event ids -> body hash of the copy judged, oldest first
        # Integrity rules told about a copy of a seen event id with another body (integrity.conflicting-duplicate).
        self._conflicts = tuple(rt for rt in self.runtimes if hasattr(rt, "feed_conflict"))
        # Per event kind: one generated function tests the conditions of every predicate and
        # aggregate rule that can match that kind (one call per event instead of one per rule),
        # then the other kinds' runtimes (sequence, absence, ancestor, integrity) get the event.
        self._plans: dict[str, tuple[Any, tuple[RuleRuntime, ...], tuple[RuleRuntime, ...]]] = {}
        for kind in ActionKind:
            applicable = [rt for rt in self.runtimes if rt.rule.kinds is None or kind.value in rt.rule.kinds]
            fused = tuple(rt for rt in applicable if rt.fusable)
            others = tuple(rt for rt in applicable if not rt.fusable)
            self._plans[kind.value] = (_fuse(fused, rule_set.namespace, kind.value), fused, others)
        self._plans_batch: tuple[Plan, ...] | None = None  # evaluate_table's, built on its first call
        fused_all = self._fusable = tuple(rt for rt in self.runtimes if rt.fusable)
        self._fallback = (_fuse(fused_all, rule_set.namespace, "any"), fused_all,
                          tuple(rt for rt in self.runtimes if not rt.fusable))

    @property
    def watermark_us(self) -> int:
        """The most advanced tenant watermark (0 before any event)."""
        if self.sources is not None:
            return max(self._source_mark, 0)
        return max(self._marked.values(), default=0)

    def evaluate(self, records: Sequence[dict[str, Any]]) -> list[Incident]:
        plans = self._plans
        fallback = self._fallback
        max_time = self._max_time
        seen = self._seen
        source_max = self._source_max
        idle = self._idle
        for r in records:
            if "_marker" in r:
                self._mark_source(r)
                continue
            event_id = r["event_id"]
            first = seen.get(event_id)
            if first is not None:  # redelivered (a retried batch): judged once only
                if first != r.get("event_hash", first) and first and self._conflicts:
                    self._conflict(r, first)  # not a redelivery: the same id with another body
                continue
            seen[event_id] = r.get("event_hash") or ""
            t = r["event_time_us"]
            if t > max_time.get(r["tenant"], NEVER):
                max_time[r["tenant"]] = t
            source = r.get("_source")
            if source is not None:
                if t > source_max.get(source, NEVER):
                    source_max[source] = t
                if idle:
                    idle.discard(source)  # it delivers again
                    self._source_quiet.pop(source, None)
            match, fused, others = plans.get(r["kind"], fallback)
            try:
                match(r)  # appends r to the pending list of every fused rule it matches
            except Exception:  # noqa: BLE001 - an odd record: redo it rule by rule to isolate the failing rule
                self._one_by_one(r, fused)
            for rt in others:
                try:
                    rt.feed(r)
                except Exception as exc:  # noqa: BLE001 - one odd record must not stop the other rules
                    self._runtime_error(rt, r, exc)
        self._trim_seen()
        self._end_batches()
        return self._advance()

    def evaluate_table(self, table: pa.Table, sources: Sequence[str | None] | None = None) -> list[Incident]:
        """:meth:`evaluate` for a batch of action rows as an Arrow table: the same incidents, ids included.

        ``table`` has the columns of the ``actions`` rows as read (``consumers._columns.actions_hex_table``,
        hashes in hex; at least the leaves the rules read, ``event_id``, ``tenant``, ``event_time``, and ``event_hash``
        where integrity rules should see it). Conditions are decided for the whole batch by Arrow kernels
        (:mod:`._vector`); stateful runtimes get only the rows their conditions select, as records, in
        table order. Markers are not rows: send them through :meth:`evaluate` in their place.

        :param sources: each row's source partition id (``"_source"`` of :meth:`evaluate`), when the
            evaluator was made with ``sources``; default none.
        """
        from agentaudit.rules._batch import evaluate_table

        return evaluate_table(self, table, sources)

    def _batch_plans(self) -> tuple[Plan, ...]:
        """The batch path's plan per rule (:mod:`._batch`), compiled on first use."""
        if self._plans_batch is None:
            from agentaudit.rules._batch import plans_of

            self._plans_batch = plans_of(self.runtimes)
        return self._plans_batch

    def _trim_seen(self) -> None:
        seen = self._seen
        if len(seen) > DEDUPE_WINDOW:
            for event_id in list(itertools.islice(seen, len(seen) - DEDUPE_WINDOW)):
                del seen[event_id]

    def _end_batches(self) -> None:
        """Hand each fusable rule its batch of matches (``pending``); report the events it failed on."""
        for rt in self._fusable:
            if rt.pending:
                try:
                    rt.end_batch()  # isolates the events a rule fails on into rt.failures
                except Exception as exc:  # noqa: BLE001 - not an event's fault: report each event, keep the rule
                    for r in rt.pending:
                        self._runtime_error(rt, r, exc)
                    rt.pending.clear()
                if rt.failures:
                    for r, error in rt.failures:
                        self._runtime_error(rt, r, error)
                    rt.failures.clear()

    def _conflict(self, r: dict[str, Any], first_hash: str) -> None:
        """Report a copy of an already judged event id whose body differs; the copy itself is not judged.

        Detected here, in the evaluator's seen-set, because the evaluator reads each tenant's events in
        one deterministic order (a partition's log order; the rules worker routes every copy of an event
        id to one ``event_id`` class evaluator), so the same log raises the same incident live and in replay; a store lookup at
        insert would depend on insert timing across sinks and cost a read per batch. The set holds
        the last ``DEDUPE_WINDOW`` ids; older conflicts are found by ``agentaudit verify --store``.
        """
        for rt in self._conflicts:
            try:
                rt.feed_conflict(r, first_hash)
            except Exception as exc:  # noqa: BLE001 - one odd record must not stop the other rules
                self._runtime_error(rt, r, exc)

    def _mark_source(self, marker: dict[str, Any]) -> None:
        """Apply a source marker (see the class docstring): raise the source's maximum, set it idle or active."""
        source = marker["_source"]
        t = marker.get("event_time_us", NEVER)
        if t > self._source_max.get(source, NEVER):
            self._source_max[source] = t
        if marker["_marker"] == "idle":
            self._idle.add(source)
            quiet = marker.get("quiet_us")
            if quiet is not None:
                self._source_quiet[source] = quiet
        else:
            self._idle.discard(source)
            self._source_quiet.pop(source, None)

    def _one_by_one(self, r: dict[str, Any], runtimes: tuple[RuleRuntime, ...]) -> None:
        for rt in runtimes:
            if rt.pending and rt.pending[-1] is r:
                rt.pending.pop()  # the fused matcher got this far before failing
            try:
                rt.feed(r)
            except Exception as exc:  # noqa: BLE001 - one rule's bug must not stop the other rules; reported as a rule error
                self._runtime_error(rt, r, exc)

    def _runtime_error(self, rt: RuleRuntime, r: dict[str, Any], exc: Exception) -> None:
        """Count ``rt``'s failure on event ``r`` into its rule_error incident."""
        self.runtime_errors += 1
        event_id = str(r.get("event_id", ""))
        tenant = str(r.get("tenant", ""))
        t = r.get("event_time_us", 0)
        error = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]
        _log.warning("rules.runtime_error", rule=rt.rule.id, tenant=tenant, event_id=event_id,
                     partition=r.get("_partition"), offset=r.get("_offset"), error=error)
        ws = t - t % _ERROR_WINDOW_US
        key = (rt.rule.id, tenant, ws)
        acc = self._errors.get(key)
        if acc is None:
            acc = self._errors[key] = ErrorTally()
        acc.add_failure(t, event_id, error, str(r.get("agent_id", "")), str(r.get("trace_id", "")))
        self._errors_touched.add(key)

    def on_watermark(self, watermark_us: int) -> list[Incident]:
        """Incidents still due; the caller's watermark is not used.

        Without ``sources``, each tenant's watermark moves with that tenant's own events only, so that a tenant's
        incidents never depend on which other tenants (partitions) this consumer reads. A tenant
        that falls silent keeps its last windows open until it sends again (or :meth:`flush`).
        """
        return self._advance()

    def hold(self, ceiling_us: int | None) -> None:
        """Keep each tenant's watermark at or below ``ceiling_us`` (None: no ceiling; see :class:`BaseEvaluator`).

        Without ``sources`` a tenant's watermark follows the largest event time of its events, whatever
        partition they came from. A backlog is read a fetch at a time from each partition, and partitions
        carrying fewer events an hour race ahead in event time: the events of the others then arrived
        behind the watermark, split their windows and changed the verdicts. The inline sink holds the
        watermark at the slowest unread partition's progress minus the lateness, so such events are on time.
        Applied by the next advance; never moves a watermark back. Ignored with ``sources``.
        """
        self._ceiling = ceiling_us

    def on_quiet(self, quiet_us: dict[str, int], others_us: int | None = None) -> list[Incident]:
        """Incidents due because tenants went quiet (see :mod:`.event_time`): the inline sink's idleness.

        :param quiet_us: per tenant, processing time since its last delivery while the caller had read
            every partition to its end (0: not quiet); such a tenant's watermark becomes its largest
            event time plus that, minus the lateness, so its pending decisions close although it
            sends nothing more.
        :param others_us: the same for tenants not in ``quiet_us`` (known from a restored snapshot).

        With ``sources`` the markers carry idleness instead and this only returns what is due.
        """
        if self.sources is None:
            lateness = self.lateness_us
            marks = dict(self._marked)
            moved = False
            for tenant, t in self._max_time.items():
                quiet = quiet_us.get(tenant, others_us)
                if quiet:
                    mark = t + quiet - lateness
                    if mark > marks.get(tenant, NEVER):
                        marks[tenant] = mark
                        moved = True
            if moved:
                self._marked = marks
                return self._advance(Clock(marks))
        return self._advance()

    def flush(self) -> list[Incident]:
        """Close every window and decide every pending check: the end of a finite replay."""
        return self._advance(Clock({}, default=2**62))

    def _advance(self, clock: Clock | None = None) -> list[Incident]:
        if clock is None and self.sources is not None:
            source_max = self._source_max
            idle = self._idle
            active = [s for s in self.sources if s not in idle] if idle else self.sources
            if active:
                top = min(source_max.get(s, NEVER) for s in active)
            else:  # every source idle: all each delivered is here, so the largest maximum holds,
                # advanced by the processing time each has been quiet (see .event_time)
                quiet = self._source_quiet
                top = max((source_max.get(s, NEVER) + quiet.get(s, 0) for s in self.sources
                           if s in source_max), default=NEVER)
            mark = top - self.lateness_us if top != NEVER else NEVER
            if mark > self._source_mark:
                self._source_mark = mark
                clock = Clock({}, default=mark)
        elif clock is None:
            lateness = self.lateness_us
            marked = self._marked  # never moves back: a quiet tenant's mark may lead its events (on_quiet)
            cap = self._ceiling if self._ceiling is not None else -NEVER  # hold(): none passes the ceiling
            marks = {tenant: max(min(t - lateness, cap), marked.get(tenant, NEVER)) for tenant, t in self._max_time.items()}
            moved = any(mark > marked.get(tenant, NEVER) for tenant, mark in marks.items())
            clock = Clock(marks) if moved else None
            self._marked = marks
        if clock is not None:
            for rt in self.runtimes:
                try:
                    rt.advance(clock)
                except Exception as exc:  # noqa: BLE001 - one rule's bug must not close no other rule's windows
                    self._runtime_error(rt, {}, exc)
        incidents: list[Incident] = []
        for rt in self.runtimes:
            hits = rt.hits
            if hits.touched:
                for acc in hits.take():
                    try:
                        incidents.append(self._incident(rt, acc))
                    except Exception as exc:  # noqa: BLE001 - one incident that cannot be built must not lose the others; reported as a rule error
                        t, event_id = acc.events[-1] if acc.events else (acc.ws, "")
                        self._runtime_error(rt, {"event_id": event_id, "tenant": acc.tenant, "event_time_us": t},
                                            exc)
            # Closed windows are kept only for take() above: a rule that fired nothing this time must not keep
            # every window it ever closed (they piled up, and the consumer's memory with them).
            hits.retired.clear()
            if hits.held:
                hits.slim_held()
        if self._errors_touched:
            incidents.extend(self._error_incidents())
        if clock is not None and self._errors:
            for key in [k for k in self._errors if k[2] + _ERROR_WINDOW_US <= clock.of(k[1])]:
                del self._errors[key]
        return incidents

    def _error_incidents(self) -> list[Incident]:
        out = []
        for key in sorted(self._errors_touched):
            acc = self._errors.get(key)
            if acc is not None:
                rule_id, tenant, ws = key
                out.append(rule_error_incident(
                    rule_id, tenant, self.revision, event_ids=[eid for _, eid in acc.events], count=acc.count,
                    first_us=acc.first if acc.first is not None else ws,
                    last_us=acc.last if acc.last is not None else ws, window_start_us=ws, error=acc.error,
                    event_id=acc.event_id, agent_id=acc.agent_id, trace_id=acc.trace_id))
        self._errors_touched.clear()
        return out

    def _incident(self, rt: RuleRuntime, acc: Acc) -> Incident:
        rule = rt.rule
        rep = acc.rep or {}
        ident = "\x1f".join((rule.id, self.revision, acc.tenant, acc.key, str(acc.ws)))
        incident_id = hashlib.sha256(ident.encode()).hexdigest()[:32]
        values = rt.values(acc)
        render = dict(rep)
        render.update(values)
        per_trace = rule.window_text == "trace"  # identity (rule, tenant, key); its window is the trace's span
        render.update(count=acc.count, key=acc.key, window="trace" if per_trace else rule.window_us // 1_000_000,
                      rule_id=rule.id, severity=rule.severity.value)
        render.setdefault("detail", "")
        render.setdefault("within", "")
        render.setdefault("value", acc.count)
        render.setdefault("threshold", "")
        owner = rule.owner
        if not owner and self.owners is not None:
            found = self.owners.resolve(rule=rule.id, agent=rep.get("agent_id", ""),
                                        tool=rep.get("name", "") if rep.get("kind") == "execute_tool" else "",
                                        tenant=acc.tenant)
            owner = found.team if found else ""
        attributes = {"kind": rule.kind, "key_fields": ",".join(rule.key_names)}
        first = acc.first if acc.first is not None else acc.ws  # a fired accumulator always has an event
        last = acc.last if acc.last is not None else acc.ws
        attributes.update({k: _cut(str(v), _MAX_ATTRIBUTE_CHARS) for k, v in values.items()})
        return Incident(
            incident_id=incident_id, tenant=acc.tenant, rule_id=rule.id, rule_revision=self.revision,
            severity=rule.severity, mode=rule.mode, owner=owner, key=acc.key,
            window_start_us=first if per_trace else acc.ws,
            window_end_us=last if per_trace else acc.we, agent_id=rep.get("agent_id", ""),
            trace_id=rep.get("trace_id", ""), event_ids=tuple(eid for _, eid in acc.events),
            first_seen_us=first, last_seen_us=last, count=max(acc.count, 1),
            summary=_cut(rule.render(render), _MAX_SUMMARY_CHARS), tags=rule.tags, attributes=attributes,
        )

    def snapshot(self) -> bytes:
        """All rule state as canonical JSON (sorted keys, UTF-8), tagged with the revision it belongs to.

        Written by orjson, about 3x faster than the standard library on rule state (the snapshot is
        taken after every batch; ``python -m benchmarks rule_state``), with the same data model:
        the text is still JSON that any process can read back and no code runs on load, unlike
        pickle; the rules worker's state files keep it as text. State orjson refuses (an integer
        beyond 64 bits) falls back to the standard library. A float NaN or infinity in an event
        field would be written as ``null`` (the standard library wrote ``NaN``): event fields are
        finite in practice.
        """
        state = {
            "version": _SNAPSHOT_VERSION, "revision": self.revision, "max_time": self._max_time,
            "marked": self._marked, "source_max": self._source_max, "source_mark": self._source_mark,
            "idle": sorted(self._idle), "source_quiet": self._source_quiet,
            "rules": {rt.rule.id: rt.state() for rt in self.runtimes},
            "errors": [[list(k), acc] for k, acc in sorted(self._errors.items())],
        }
        try:
            return orjson.dumps(state, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            return json.dumps(state, sort_keys=True, separators=(",", ":"), default=plain).encode()

    def restore(self, data: bytes) -> None:
        """Load a :meth:`snapshot`; a snapshot of another revision is ignored (state rebuilds from the log)."""
        state = read_snapshot(data, "rule engine")
        if state is None:
            return
        if state.get("version") != _SNAPSHOT_VERSION or state.get("revision") != self.revision:
            _log.warning("rules.snapshot_skipped", revision=state.get("revision"), current=self.revision)
            return
        self._max_time = dict(state["max_time"])
        self._marked = dict(state["marked"])
        self._source_max = dict(state.get("source_max", {}))  # absent in snapshots older than source watermarks
        self._source_mark = int(state.get("source_mark", NEVER))
        self._idle = set(state.get("idle", ()))  # absent in snapshots older than idle sources
        self._source_quiet = dict(state.get("source_quiet", {}))  # absent before quiet idle sources
        for rt in self.runtimes:
            if rt.rule.id in state["rules"]:
                rt.load(state["rules"][rt.rule.id])
        self._errors = {}
        for k, acc in state.get("errors", ()):  # absent in snapshots older than rule_error incidents
            rule_id, tenant, ws = k
            self._errors[rule_id, tenant, ws] = ErrorTally.from_json(acc)


def read_snapshot(data: bytes, what: str) -> dict[str, Any] | None:
    """A snapshot's JSON (None when there is none); raises :class:`RuleError` naming ``what`` when unreadable."""
    if not data:
        return None
    try:
        # The standard library, not orjson: it reads integers beyond 64 bits exactly (orjson makes
        # them floats), and a restore happens once per start, not per batch.
        state: dict[str, Any] = json.loads(data)
    except ValueError as exc:
        raise RuleError(f"{what} snapshot is not valid JSON: {exc}; delete it to rebuild state") from exc
    return state


def rule_error_incident(rule_id: str, tenant: str, revision: str, *, event_ids: Sequence[str], count: int,
                        first_us: int, last_us: int, window_start_us: int, error: str, event_id: str,
                        agent_id: str = "", trace_id: str = "") -> Incident:
    """The incident that records rule ``rule_id`` failing on ``count`` events of ``tenant`` in one hour.

    Its id derives from the failing rule, tenant and hour, so a re-read batch updates the same
    incident. Evaluators and the sink (for an evaluator that raises) both report failures this way.
    """
    ident = "\x1f".join((RULE_ERROR_ID, revision, tenant, rule_id, str(window_start_us)))
    summary = (f"rule {rule_id} failed on {count} event(s) of tenant {tenant}, the last {event_id}: {error}; "
               "those events were not judged by that rule (fix the rule, then replay them)")
    return Incident(
        incident_id=hashlib.sha256(ident.encode()).hexdigest()[:32], tenant=tenant, rule_id=RULE_ERROR_ID,
        rule_revision=revision, severity=Severity.HIGH, key=rule_id, window_start_us=window_start_us,
        window_end_us=window_start_us + _ERROR_WINDOW_US, agent_id=agent_id, trace_id=trace_id,
        event_ids=tuple(event_ids), first_seen_us=first_us, last_seen_us=last_us, count=max(count, 1),
        summary=_cut(summary, _MAX_SUMMARY_CHARS), tags=(RULE_ERROR_ID,),
        attributes={"rule": rule_id, "event_id": event_id, "error": _cut(error, _MAX_ERROR_CHARS)},
    )


def _runtime_kind(rule: Any) -> str:
    """The runtime of ``rule``: its kind, or ``aggregate/trace`` for an aggregate with ``window: trace``."""
    return "aggregate/trace" if rule.kind == "aggregate" and rule.window_text == "trace" else rule.kind


def _cut(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters and how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... (cut, {len(text)} characters)"


def _fuse(runtimes: Sequence[RuleRuntime], namespace: dict[str, Any], label: str) -> Any:
    """One function that appends ``r`` to the pending list of each rule whose condition it meets."""
    scope = dict(namespace)
    lines = ["def _match(r):"]
    for i, rt in enumerate(runtimes):
        scope[f"_pending{i}"] = rt.pending.append
        lines.append(f"    if {rt.rule.code}:")
        lines.append(f"        _pending{i}(r)")
    lines.append("    return None")
    scope["__builtins__"] = {"len": len}
    exec(compile("\n".join(lines) + "\n", f"<rules fused for {label}>", "exec"), scope)  # noqa: S102 - our own code
    return scope["_match"]


def load_evaluator(paths: str | Sequence[str] | None = None, owners_path: str | None = None,
                   lateness_us: int = DEFAULT_LATENESS_US, sources: Sequence[str] | None = None,
                   keyring: KeyRing | None = None) -> RuleEvaluator:
    """The sink's entry point: compile rule files (None: the default pack) into an evaluator.

    :param paths: rule files or directories; None loads the pack shipped in this package.
    :param owners_path: owners YAML for incidents whose rule names no owner; default none.
    :param keyring: producer keys that stream checkpoints are verified with; default none (not judged).
    """
    owners = None
    if owners_path:
        from agentaudit.rules.owners import load_owners

        owners = load_owners(owners_path)
    return RuleEvaluator(load_rule_set(paths), owners=owners, lateness_us=lateness_us, sources=sources,
                         keyring=keyring)
