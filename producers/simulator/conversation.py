"""Conversation mode: multi-turn customer-service runs, with policy breaches injected on purpose.

One seeded conversation per run (messages, lookups, a proposal, the user's confirmation as an
approval, then the write), with one breach (:data:`BREACH_KINDS`) in a share of the runs, tagged
``attributes["sim.breach"]``; :data:`EXPECTED_RULES` names the pack rules that should catch each.
What a run holds: ``docs/simulator.md``.

>>> corpus = conversation_runs(1000, seed=3, breach_rate=0.1)
>>> corpus.records[0]["kind"], len(corpus.breaches)
"""

from __future__ import annotations

import heapq
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from random import Random
from typing import Any, Literal
from uuid import UUID

from agentaudit.producers._checkpoints import CHECKPOINT_NAME, CheckpointSchedule
from agentaudit.producers.simulator._fleet import MODEL_PRICES
from agentaudit.producers.simulator._trace import canonical_digest
from agentaudit.producers.simulator.config import DEFAULT_START, SimConfig
from agentaudit.producers.simulator.engine import SimStats
from agentaudit.schemas import AvroCodec, SigningKey, StreamChain, body_hash, frame_body
from agentaudit.schemas.canonical import canonical_json
from agentaudit.schemas.checkpoints import SIG_ATTRIBUTE

__all__ = ["BREACH_ATTRIBUTE", "BREACH_KINDS", "EXPECTED_RULES", "WRITE_TOOLS", "Breach", "ConversationCorpus",
           "ConversationSource", "conversation_runs", "sealed_conversations"]

BREACH_ATTRIBUTE = "sim.breach"

#: Policy breaches conversation mode can inject, one per breached run.
BREACH_KINDS = ("unconfirmed_write", "write_after_refusal", "double_write", "forbidden_tool", "tool_loop",
                "fan_out", "cost_spike")

#: Default-pack rules for each breach kind: the first must catch it; the others may also fire because of it
#: (a loop's failures can tip a tool's or an agent's error ratio over its threshold).
EXPECTED_RULES: dict[str, tuple[str, ...]] = {
    "unconfirmed_write": ("security.unapproved-consequential-action",),
    "write_after_refusal": ("security.unapproved-consequential-action",),
    "double_write": ("security.unapproved-consequential-action",),
    "forbidden_tool": ("security.forbidden-tool",),
    "tool_loop": ("autonomy.tool-loop", "load.error-ratio", "load.error-burst"),
    "fan_out": ("autonomy.fan-out",),
    "cost_spike": ("cost.action-ceiling", "cost.token-blowup"),
}

#: The consequential writes (in the pack's consequential_tools list).
WRITE_TOOLS = ("book_reservation", "update_reservation")

_AGENTS = ("support-travel-desk-1", "support-travel-desk-2", "support-travel-desk-3", "support-travel-desk-4")
_TEAM = "support"
_MODELS = (("gpt-4o-mini", 6), ("gpt-4o", 3), ("claude-haiku-4", 1))
_LOOKUPS: dict[str, tuple[float, dict[str, str]]] = {  # median seconds, argument template
    "crm.lookup": (0.08, {"customer_id": "{c}"}),
    "bookings.get": (0.12, {"booking_ref": "BK{n}"}),
    "flights.search": (0.6, {"origin": "{a}", "destination": "{b}", "date": "2026-0{m}-{d:02d}", "page": "{n}"}),
    "fares.quote": (0.25, {"flight": "{a}{n}", "fare_class": "{f}"}),
    "hotels.search": (0.5, {"city": "{b}", "checkin": "2026-0{m}-{d:02d}", "nights": "{k}", "offset": "{n}"}),
    "kb.search": (0.15, {"query": "{f} fare rules", "article": "{n}"}),
}
_WRITE_MEDIAN_S = 0.4
_AIRPORTS = ("LHR", "JFK", "CDG", "FRA", "AMS", "MAD", "SFO", "NRT", "SIN", "DXB", "BCN", "FCO")
_FARES = ("economy", "premium", "business", "flex")
_ERRORS = (("HTTPError", "503 from the upstream"), ("TimeoutError", "upstream did not answer in 10s"),
           (None, "lookup failed: upstream returned 503"), (None, "no availability data"))
_LOOKUP_ERROR_RATE = 0.03
_RETRY_RATE = 0.7
_APPROVAL_TTL_US = 900_000_000  # the SDK's default approval lifetime, 15 minutes
_MEAN_GAP_S = 30.0  # mean time between conversation starts (all agents)
_CHECKPOINT_IDS = uuid.UUID("5d1c0a7e-0000-4000-8000-00000000c0c0")  # namespace of checkpoint event ids
_TAIL_SCAN_US = 100_000  # how often (event time) idle streams are looked at for a checkpoint that is due


@dataclass(frozen=True, slots=True)
class Breach:
    """One injected policy breach: its kind, the run's trace and the event that embodies it."""

    kind: str
    trace_id: str
    event_id: str


@dataclass
class ConversationCorpus:
    """Sealed action records of the runs, in event-time order, and the breaches injected into them."""

    records: list[dict[str, Any]]
    breaches: list[Breach]
    runs: int = 0
    messages: list[tuple[bytes, bytes]] = field(default_factory=list, repr=False)
    """``(stream id, framed Avro value)`` of each record, as produced to Kafka."""

    def events(self) -> Iterator[tuple[bytes, bytes, dict[str, Any]]]:
        """``(key, value, record)`` in emission order, like :meth:`Simulator.events`."""
        for (key, value), record in zip(self.messages, self.records, strict=False):
            yield key, value, record


def conversation_runs(runs: int, *, seed: int = 0, tenant: str = "acme", breach_rate: float = 0.0,
                      start_us: int | None = None, codec: AvroCodec | None = None, mean_gap_s: float = _MEAN_GAP_S,
                      signing_key: SigningKey | None = None, checkpoint_events: int = 1000,
                      checkpoint_seconds: float = 10.0, run_nonce: str = "") -> ConversationCorpus:
    """``runs`` customer-service conversations over four agents, starting about every ``mean_gap_s`` (30 s).

    :param breach_rate: share of runs (0..1) that get one injected breach, kinds taken in turn.
    :param start_us: first run's start (epoch µs); default 2026-01-01T00:00:00Z.
    :param codec: the action codec to seal with, default ``AvroCodec("action")``.
    :param signing_key: signs checkpoints over each agent's stream as the SDK does (every
        ``checkpoint_events`` events or ``checkpoint_seconds`` of event time, and the tail); default unsigned.
    :param run_nonce: mixed into the seed and the stream ids (``conv-<seed>-<nonce>/<agent>``), so two runs
        of one seed with different nonces share no id (as the fleet simulator's ``run_nonce``).
    """
    if runs < 0:
        raise ValueError("runs must be >= 0")
    breaches: list[Breach] = []
    records: list[dict[str, Any]] = []
    messages: list[tuple[bytes, bytes]] = []
    for key, value, record in sealed_conversations(
            runs, seed=seed, tenant=tenant, breach_rate=breach_rate, start_us=start_us, codec=codec,
            mean_gap_s=mean_gap_s, signing_key=signing_key, checkpoint_events=checkpoint_events,
            checkpoint_seconds=checkpoint_seconds, run_nonce=run_nonce, breaches=breaches):
        records.append(record)
        messages.append((key, value))
    return ConversationCorpus(records, breaches, runs, messages)


def sealed_conversations(runs: int | None, *, seed: int = 0, tenant: str = "acme", breach_rate: float = 0.0,
                         start_us: int | None = None, codec: AvroCodec | None = None,
                         mean_gap_s: float = _MEAN_GAP_S, signing_key: SigningKey | None = None,
                         checkpoint_events: int = 1000, checkpoint_seconds: float = 10.0, run_nonce: str = "",
                         breaches: list[Breach] | None = None) -> Iterator[tuple[bytes, bytes, dict[str, Any]]]:
    """The records of :func:`conversation_runs` as ``(stream id, framed value, record)``, built run by run.

    ``runs=None`` never stops; memory holds only the runs still in progress. Each breach is appended to
    ``breaches`` when its run is built (before its events are yielded).
    """
    if not 0.0 <= breach_rate <= 1.0 or mean_gap_s <= 0:
        raise ValueError("breach_rate must be within 0..1 and mean_gap_s positive")
    rng = Random(f"conversation/{seed}/{run_nonce}" if run_nonce else f"conversation/{seed}")
    t = start_us if start_us is not None else int(DEFAULT_START.timestamp()) * 1_000_000
    sealer = _Sealer(codec or AvroCodec("action"), f"{seed}-{run_nonce}" if run_nonce else str(seed), signing_key,
                     checkpoint_events, checkpoint_seconds)
    pending: list[tuple[int, int, int, dict[str, Any]]] = []  # heap of (event time, run, n): the runs under way
    turn = index = 0
    while runs is None or index < runs:
        t += int(rng.expovariate(1.0 / mean_gap_s) * 1_000_000) + 1
        while pending and pending[0][0] <= t:  # everything up to this run's start (a new run only adds later events)
            yield from sealer.seal(heapq.heappop(pending)[3])
        kind = None
        if breach_rate and rng.random() < breach_rate:
            kind = BREACH_KINDS[turn % len(BREACH_KINDS)]
            turn += 1
        run = _Run(rng, tenant, _AGENTS[rng.randrange(len(_AGENTS))], t, index)
        run.play(kind)
        if kind is not None and breaches is not None:
            breaches.append(Breach(kind, run.trace_id, run.breach_event or ""))
        for n, rec in enumerate(run.out):
            heapq.heappush(pending, (rec["event_time_us"], index, n, rec))
        index += 1
    while pending:
        yield from sealer.seal(heapq.heappop(pending)[3])
    yield from sealer.tail()


class _Sealer:
    """Seals records into one chain per agent, signing checkpoints on the SDK's schedule when given a key."""

    def __init__(self, codec: AvroCodec, seed: str, key: SigningKey | None, every_events: int,
                 every_seconds: float) -> None:
        self.codec = codec
        self.seed = seed
        self.chains: dict[str, tuple[StreamChain, dict[str, Any]]] = {}
        self.schedule = None if key is None else CheckpointSchedule(key, every_events=every_events,
                                                                    every_seconds=every_seconds * 1_000_000)
        self._next_scan = 0
        self._last_us = 0

    def seal(self, rec: dict[str, Any]) -> Iterator[tuple[bytes, bytes, dict[str, Any]]]:
        """``rec`` sealed into its agent's stream, after any checkpoint event due on an idle stream."""
        t = rec["event_time_us"]
        stream = f"conv-{self.seed}/{rec['agent_id']}"
        entry = self.chains.get(stream)
        if entry is None:
            entry = self.chains[stream] = (StreamChain(stream), rec)
        chain = entry[0]
        schedule = self.schedule
        signature = None
        if schedule is not None:
            if schedule and t >= self._next_scan:
                self._next_scan = t + _TAIL_SCAN_US
                for due in schedule.due(t):
                    yield self._checkpoint(due, t)
            signature = schedule.attributes(stream, rec, chain, t)
            if signature is not None:
                rec["attributes"] = {**rec["attributes"], **signature}
        yield self._append(chain, rec)
        if schedule is not None:
            schedule.sealed(stream, t, signed=signature is not None)
        self._last_us = t

    def tail(self) -> Iterator[tuple[bytes, bytes, dict[str, Any]]]:
        """Checkpoints covering every stream's uncovered tail, as the SDK's ``close()`` signs."""
        if self.schedule is not None:
            for stream in self.schedule.due(self._last_us, everything=True):
                yield self._checkpoint(stream, self._last_us)

    def _append(self, chain: StreamChain, rec: dict[str, Any]) -> tuple[bytes, bytes, dict[str, Any]]:
        value = chain.seal(rec, self.codec)
        rec["event_hash"] = body_hash(frame_body(value))
        return chain.stream_id.encode("utf-8"), value, rec

    def _checkpoint(self, stream: str, t: int) -> tuple[bytes, bytes, dict[str, Any]]:
        chain, sample = self.chains[stream]
        mark = str(uuid.uuid5(_CHECKPOINT_IDS, f"{stream}/{chain.seq}"))
        rec: dict[str, Any] = {
            "event_id": mark, "tenant": sample["tenant"], "agent_id": sample["agent_id"],
            "agent_version": sample["agent_version"], "run_id": mark, "trace_id": mark, "action_id": mark,
            "parent_action_id": None, "links": [], "depth": 0, "stream_id": "", "seq": 0, "prev_hash": "",
            "kind": "other", "name": CHECKPOINT_NAME, "phase": "point", "status": "unset", "error_type": None,
            "error_message": None, "actor": {"type": "agent", "id": sample["agent_id"]}, "model": None,
            "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "latency_us": None, "start_time_us": t,
            "end_time_us": t, "event_time_us": t, "input_digest": None, "output_digest": None, "input_body": None,
            "output_body": None, "payload_bytes": 0, "attributes": {}, "environment": sample["environment"],
        }
        assert self.schedule is not None  # noqa: S101 - narrows the Optional: set before the run starts
        rec["attributes"] = self.schedule.attributes(stream, rec, chain, t, force=True) or {}
        sealed = self._append(chain, rec)
        self.schedule.sealed(stream, t, signed=bool(rec["attributes"]), point=True)
        return sealed


class ConversationSource:
    """Conversation runs as a source for the simulator's log writer and Kafka publisher (``simulate --mode
    conversation``): the same ``config``/``events()``/``tail_events()``/``stats`` as :class:`Simulator`.

    :param runs: conversations to run; None: endless (``agentaudit up``), built as time goes.
    :param clock: ``virtual`` (runs start at ``start_us``, default 2026-01-01) or ``wall`` (at the real now,
        read when :meth:`events` starts; the Kafka publisher then sends each event when its time comes).
    """

    def __init__(self, runs: int | None, *, seed: int = 0, tenant: str = "acme", breach_rate: float = 0.0,
                 clock: Literal["virtual", "wall"] = "virtual", start_us: int | None = None, mean_gap_s: float = _MEAN_GAP_S,
                 signing_key: SigningKey | None = None, checkpoint_events: int = 1000,
                 checkpoint_seconds: float = 10.0, run_nonce: str = "") -> None:
        self.config = SimConfig(seed=seed, run_nonce=run_nonce, traces=runs, clock=clock, tenants=(tenant,),
                                sessions_per_agent=1)
        self.stats = SimStats()
        self.injected: list[Breach] = []
        self._options: dict[str, Any] = {"seed": seed, "tenant": tenant, "breach_rate": breach_rate, "start_us": start_us,
                         "mean_gap_s": mean_gap_s, "signing_key": signing_key,
                         "checkpoint_events": checkpoint_events, "checkpoint_seconds": checkpoint_seconds,
                         "run_nonce": run_nonce}

    @property
    def breaches(self) -> Counter[str]:
        """Breaches injected so far, by kind."""
        return Counter(b.kind for b in self.injected)

    def events(self) -> Iterator[tuple[bytes, bytes, dict[str, Any]]]:
        options = dict(self._options)
        if self.config.clock == "wall" and options["start_us"] is None:
            options["start_us"] = time.time_ns() // 1000
        began = time.perf_counter()
        self.injected = []
        stats = self.stats = SimStats()
        try:
            for key, value, record in sealed_conversations(self.config.traces, breaches=self.injected, **options):
                stats.events += 1
                stats.first_time_us = stats.first_time_us or record["event_time_us"]
                stats.last_time_us = record["event_time_us"]
                stats.traces += record["kind"] == "invoke_agent" and record["phase"] == "start"
                stats.errors += record["status"] in ("error", "timeout")
                stats.checkpoints += SIG_ATTRIBUTE in record["attributes"]
                yield key, value, record
        finally:
            stats.elapsed_s = time.perf_counter() - began

    def tail_events(self) -> Iterator[tuple[bytes, bytes, dict[str, Any]]]:
        """Nothing: a signed corpus already ends with its tail checkpoints."""
        return iter(())

    def write_log(self, path: Any) -> SimStats:
        from agentaudit.producers.simulator.log import write_log

        return write_log(self, path)  # type: ignore[arg-type]  # duck-typed: it reads events(), tail_events(), stats

    def run_to_kafka(self, kafka_settings: Any, rate: float = 0.0, stop_event: threading.Event | None = None,
                     *, topic: str | None = None) -> SimStats:
        from agentaudit.producers.simulator.publish import run_to_kafka

        # duck-typed: it reads config, stats, events() and tail_events(), all of which this class has
        return run_to_kafka(self, kafka_settings, rate, stop_event, topic=topic)  # type: ignore[arg-type]  # see above


class _Run:
    """One conversation, built with a clock that only moves forward."""

    def __init__(self, rng: Random, tenant: str, agent: str, start_us: int, index: int) -> None:
        self.rng = rng
        self.tenant = tenant
        self.agent = agent
        self.t = start_us
        self.out: list[dict[str, Any]] = []
        self.customer = f"customer-{rng.randrange(10**6):06d}"
        self.run_id = self._uuid()
        self.root = self._uuid()
        self.trace_id = self.root
        self.breach_event: str | None = None
        a, b = rng.sample(_AIRPORTS, 2)
        self.slots = {"c": self.customer, "a": a, "b": b, "m": rng.randint(1, 9), "d": rng.randint(1, 28),
                      "f": _FARES[rng.randrange(len(_FARES))], "k": rng.randint(1, 6)}

    # -- ids, time and records -----------------------------------------------------------------

    def _uuid(self) -> str:
        return str(UUID(int=self.rng.getrandbits(128), version=4))

    def _hex(self) -> str:
        return f"{self.rng.getrandbits(256):064x}"

    def _tick(self, low_ms: float = 1, high_ms: float = 20) -> None:
        self.t += int(self.rng.uniform(low_ms, high_ms) * 1000) + 1

    def _think(self, low_s: float, high_s: float) -> None:
        self.t += int(self.rng.uniform(low_s, high_s) * 1_000_000)

    def _record(self, action_id: str, parent: str | None, kind: str, name: str, phase: str, status: str,
                attrs: dict[str, str], *, actor: dict[str, str] | None = None, links: list[str] | None = None,
                **extra: Any) -> dict[str, Any]:
        t = self.t
        rec = {
            "event_id": self._uuid(), "tenant": self.tenant, "agent_id": self.agent, "agent_version": "2.3.1",
            "run_id": self.run_id, "trace_id": self.trace_id, "action_id": action_id, "parent_action_id": parent,
            "links": links or [], "depth": 0 if parent is None else 1, "stream_id": "", "seq": 0, "prev_hash": "",
            "kind": kind, "name": name, "phase": phase, "status": status, "error_type": None, "error_message": None,
            "actor": actor or {"type": "agent", "id": self.agent}, "model": None, "input_tokens": 0,
            "output_tokens": 0, "cost_usd": 0.0, "latency_us": None, "start_time_us": t,
            "end_time_us": t if phase == "point" else None, "event_time_us": t, "input_digest": None,
            "output_digest": None, "input_body": None, "output_body": None, "payload_bytes": 0,
            "attributes": {"team": _TEAM, "owner": _TEAM, **attrs}, "environment": "prod",
        }
        rec.update(extra)
        self.out.append(rec)
        return rec

    def _end(self, start: dict[str, Any], status: str = "ok", **extra: Any) -> dict[str, Any]:
        rec = dict(start)
        rec.update(event_id=self._uuid(), attributes=dict(start["attributes"]), links=list(start["links"]),
                   phase="end", status=status, end_time_us=self.t, event_time_us=self.t,
                   latency_us=self.t - start["start_time_us"])
        rec.update(extra)
        self.out.append(rec)
        return rec

    def _point(self, kind: str, name: str, attrs: dict[str, str], *, actor: dict[str, str] | None = None,
               status: str = "ok", links: list[str] | None = None) -> dict[str, Any]:
        rec = self._record(self._uuid(), self.root, kind, name, "point", status, attrs, actor=actor, links=links)
        self._tick()
        return rec

    def _tag(self, attrs: dict[str, str], breach: str | None) -> dict[str, str]:
        return {**attrs, BREACH_ATTRIBUTE: breach} if breach else attrs

    # -- turns -----------------------------------------------------------------------------------

    def user(self, intent: str, breach: str | None = None) -> dict[str, Any]:
        self._think(4.0, 40.0)  # the customer reads and types
        return self._point("message", "user", self._tag({"role": "user", "intent": intent}, breach),
                           actor={"type": "human", "id": self.customer})

    def say(self, intent: str, attrs: dict[str, str] | None = None) -> dict[str, Any]:
        return self._point("message", "assistant", {"role": "assistant", "intent": intent, **(attrs or {})})

    def chat(self, *, breach: str | None = None) -> dict[str, Any]:
        rng = self.rng
        if breach:  # a whole booking history pasted into one call
            model, tokens_in, tokens_out = "claude-sonnet-4", rng.randrange(350_000, 600_000), rng.randrange(4_000, 9_000)
            latency_s = rng.uniform(20.0, 45.0)
        else:
            model = rng.choices([m for m, _ in _MODELS], [w for _, w in _MODELS])[0]
            tokens_in, tokens_out = rng.randrange(800, 7_000), rng.randrange(30, 600)
            latency_s = 0.3 + tokens_out / 150.0 * rng.uniform(0.7, 1.3)
        price_in, price_out = MODEL_PRICES[model]
        cost = round((tokens_in * price_in + tokens_out * price_out) / 1_000_000, 6)
        start = self._record(self._uuid(), self.root, "chat", model, "start", "unset", self._tag({}, breach),
                             model=model, input_digest=self._hex())
        self.t += int(latency_s * 1_000_000)
        end = self._end(start, input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=cost,
                        output_digest=self._hex())
        self._tick()
        return end

    def _args(self, tool: str) -> dict[str, str]:
        template = _LOOKUPS[tool][1] if tool in _LOOKUPS else {"input": "{a}{n}"}
        slots = {**self.slots, "n": self.rng.randrange(1000, 99999)}
        return {k: v.format(**slots) for k, v in template.items()}

    def tool(self, name: str, args: dict[str, str], *, status: str = "ok", error: tuple[str | None, str] | None = None,
             breach: str | None = None, links: list[str] | None = None, attrs: dict[str, str] | None = None,
             median_s: float | None = None, ends: bool = True) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """One tool call (start and end) carrying ``args_hash`` as the SDK records it."""
        digest = canonical_digest(args)
        body = canonical_json(args)  # the text the digest covers (RFC 8785), so payload_bytes is its size
        start = self._record(self._uuid(), self.root, "execute_tool", name, "start", "unset",
                             self._tag({"args_hash": digest, **(attrs or {})}, breach), links=links,
                             input_digest=digest, payload_bytes=len(body))
        if not ends:
            return start, None
        median = median_s if median_s is not None else _LOOKUPS.get(name, (_WRITE_MEDIAN_S,))[0]
        self.t += max(1_000, int(self.rng.lognormvariate(math.log(median), 0.35) * 1_000_000))
        if status == "ok":
            end = self._end(start, output_digest=self._hex(), payload_bytes=len(body) + self.rng.randrange(200, 6000))
        else:
            error_type, message = error or _ERRORS[self.rng.randrange(len(_ERRORS))]
            end = self._end(start, status, error_type=error_type, error_message=message)
        self._tick()
        return start, end

    def lookup(self, name: str | None = None) -> None:
        """A lookup; now and then it fails (sometimes with no error type) and the agent retries once."""
        rng = self.rng
        name = name or rng.choice(("bookings.get", "flights.search", "fares.quote", "hotels.search", "kb.search"))
        args = self._args(name)
        if rng.random() >= _LOOKUP_ERROR_RATE:
            self.tool(name, args)
            return
        error = _ERRORS[rng.randrange(len(_ERRORS))]
        self.tool(name, args, status="error", error=error)
        if rng.random() < _RETRY_RATE:
            self._think(0.2, 2.0)
            failed_again = rng.random() < 0.1
            self.tool(name, args, status="error" if failed_again else "ok", error=error)

    def approve(self, tool: str, digest: str) -> dict[str, Any]:
        """The customer's "yes", recorded as ``client.approval()`` records a grant."""
        approval_id = self._uuid()
        return self._point("approval", f"approve {tool}", {
            "approval_id": approval_id, "args_hash": digest, "approval.tool": tool, "approval.approver": self.customer,
            "approver_type": "human", "approver_id": self.customer, "approved_agent_id": self.agent,
            "approved_tool": tool, "expires_at_us": str(self.t + _APPROVAL_TTL_US)},
            actor={"type": "human", "id": self.customer})

    def write(self, tool: str, args: dict[str, Any], approval: dict[str, Any] | None,
              breach: str | None = None) -> dict[str, Any]:
        self._think(0.3, 2.0)
        attrs = {"approval_id": approval["attributes"]["approval_id"]} if approval else {}
        start, _ = self.tool(tool, args, breach=breach, attrs=attrs,
                             links=[approval["action_id"]] if approval else None)
        return start

    # -- a whole conversation --------------------------------------------------------------------

    def play(self, breach: str | None) -> None:
        rng = self.rng
        root = self._record(self.root, None, "invoke_agent", self.agent, "start", "unset",
                            {"channel": "chat", "customer": self.customer})
        self._tick()
        self.user("request")
        self.chat()
        self.lookup("crm.lookup")
        long_run = rng.random() < 0.12
        cycles = rng.choice((1, 1, 1, 2, 2, 3))
        at = rng.randrange(cycles)  # the cycle that carries the breach
        for cycle in range(cycles):
            lookups = rng.randint(6, 10) if long_run else rng.randint(1, 3)
            for _ in range(lookups):
                self.chat()
                self.lookup()
            if breach == "tool_loop" and cycle == at:
                self.inject_loop()
            elif breach == "fan_out" and cycle == at:
                self.inject_fan_out()
            elif breach == "forbidden_tool" and cycle == at:
                self.chat()
                start, _ = self.tool("shell.exec", {"cmd": f"grep {self.customer} /var/log/bookings.log"},
                                     breach=breach, median_s=0.3)
                self.breach_event = start["event_id"]
            elif breach == "cost_spike" and cycle == at:
                self.breach_event = self.chat(breach=breach)["event_id"]
            self.chat()
            tool = WRITE_TOOLS[0] if cycle == 0 else rng.choice(WRITE_TOOLS)
            args = ({"flight": f"{self.slots['a']}{rng.randrange(100, 9999)}", "passenger": self.customer,
                     "fare_class": self.slots["f"]} if tool == WRITE_TOOLS[0]
                    else {"booking_ref": f"BK{rng.randrange(10**5, 10**6)}", "change": rng.choice(("date", "seat", "meal"))})
            digest = canonical_digest(args)
            if breach == "unconfirmed_write" and cycle == at:
                self.breach_event = self.write(tool, args, None, breach)["event_id"]
                self.say("inform")
                continue
            self.say("propose", {"proposal.tool": tool, "args_hash": digest})
            roll = rng.random()
            if breach == "write_after_refusal" and cycle == at:
                self.user("refuse")
                self.breach_event = self.write(tool, args, None, breach)["event_id"]
                self.say("inform")
                continue
            if breach == "double_write" and cycle == at:
                roll = 0.0
            if roll < 0.75:
                self.user("confirm")
                approval = self.approve(tool, digest)
                self.write(tool, args, approval)
                if breach == "double_write" and cycle == at:
                    self.chat()
                    self.breach_event = self.write(tool, args, approval, breach)["event_id"]
                self.say("inform")
            elif roll < 0.9:
                self.user("refuse")
                self.say("acknowledge")
            else:
                self.user("other")
                self.say("clarify")
        self.user("other")
        self.chat()
        self.say("close")
        self._end(root)

    def inject_loop(self) -> None:
        """The same lookup with the same arguments, failing the same way 3 to 5 times."""
        rng = self.rng
        name = rng.choice(("flights.search", "bookings.get", "hotels.search"))
        args = self._args(name)
        error = _ERRORS[rng.randrange(len(_ERRORS))]
        for i in range(rng.randint(3, 5)):
            self.chat()
            _, end = self.tool(name, args, status="error", error=error, breach="tool_loop")
            if i == 2 and end is not None:  # always: ends=True
                self.breach_event = end["event_id"]

    def inject_fan_out(self) -> None:
        """20 to 30 searches started at once under one step, running side by side."""
        rng = self.rng
        self.chat()
        step = self._point("decision", "parallel_search", self._tag({}, "fan_out"))
        starts = []
        for _ in range(rng.randint(20, 30)):
            name = rng.choice(("flights.search", "hotels.search", "fares.quote"))
            args = self._args(name)
            digest = canonical_digest(args)
            starts.append(self._record(self._uuid(), step["action_id"], "execute_tool", name, "start", "unset",
                                       {"args_hash": digest, BREACH_ATTRIBUTE: "fan_out"}, input_digest=digest,
                                       depth=2))
            self.t += rng.randrange(1_000, 30_000)
        self.breach_event = starts[0]["event_id"]
        ends = sorted((start["start_time_us"] + max(1_000, int(rng.lognormvariate(math.log(_LOOKUPS[start["name"]][0]),
                                                                                   0.35) * 1_000_000)), i)
                      for i, start in enumerate(starts))
        for end_us, i in ends:  # each finishes after its own latency: they ran side by side
            self.t = max(self.t, end_us)
            self._end(starts[i], output_digest=self._hex())
        self._tick()
