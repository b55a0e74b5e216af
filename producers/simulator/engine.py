"""The fleet simulator: merges every agent session's traces into one deterministic event stream.

Each agent session (a *lane*) runs traces one after another with a think time between them;
lanes run side by side and their events are emitted in event-time order (ties broken by lane),
each sealed into its agent's :class:`~agentaudit.schemas.StreamChain`
(``stream_id = "sim-<seed>/<agent>"``). With the virtual clock the output depends on the
config alone, so the same seed gives byte-identical logs.
"""

from __future__ import annotations

import heapq
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from agentaudit.producers._checkpoints import CHECKPOINT_NAME, CheckpointSchedule
from agentaudit.producers.simulator._fleet import Agent, build_fleet
from agentaudit.producers.simulator._trace import FAULT_ATTRIBUTE, TimedRecord, build_trace
from agentaudit.producers.simulator.config import FAULT_KINDS, SimConfig
from agentaudit.schemas import AvroCodec, SigningKey, StreamChain

__all__ = ["SimEvent", "SimStats", "Simulator", "sessions_for_rate"]

SimEvent = tuple[bytes, bytes, dict[str, Any]]
"""``(key, value, record)``: the stream id as bytes, the framed Avro message, the sealed record."""

_CHECKPOINT_IDS = uuid.UUID("5d1c0a7e-0000-4000-8000-00000000c4e7")  # namespace of checkpoint event ids
_TAIL_SCAN_US = 100_000  # how often (event time) idle streams are looked at for a checkpoint that is due


@dataclass
class SimStats:
    """What a run emitted. Faults count traces that had each failure mode (once its first event went out)."""

    events: int = 0
    traces: int = 0
    errors: int = 0
    hung: int = 0
    checkpoints: int = 0
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0))
    first_time_us: int | None = None
    last_time_us: int | None = None
    elapsed_s: float = 0.0

    @property
    def events_per_s(self) -> float:
        """Emitted events per wall-clock second (generation, encoding and any pacing)."""
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"events": self.events, "traces": self.traces, "errors": self.errors, "hung": self.hung,
                "checkpoints": self.checkpoints,
                "faults": dict(self.faults), "first_time_us": self.first_time_us,
                "last_time_us": self.last_time_us, "elapsed_s": round(self.elapsed_s, 3),
                "events_per_s": round(self.events_per_s, 1)}


class _Lane:
    __slots__ = ("agent", "buffer", "pos", "next_start")

    def __init__(self, agent: Agent, next_start: int) -> None:
        self.agent = agent
        self.buffer: list[TimedRecord] = []
        self.pos = 0
        self.next_start = next_start


def _now_us() -> int:
    return time.time_ns() // 1000


class Simulator:
    """A deterministic agent fleet with failure modes injected at configurable rates.

    :param config: the run; default ``SimConfig()`` (12 agents, seed 0, endless).
    :param codec: the action codec to seal events with, default ``AvroCodec("action")``.
    :param signing_key: signs checkpoints over each agent's stream as the SDK does
        (:class:`~agentaudit.producers._checkpoints.CheckpointSchedule`, ``AGENTAUDIT_SIGNING_KEY_FILE`` for
        ``agentaudit simulate``); default none: streams are chained, not signed.
    :param checkpoint_events: a stream signs at least every this many events, default 1000.
    :param checkpoint_seconds: ... and at least every this many seconds of *event time* while it has events
        not yet covered (an idle stream gets an ``agentaudit.checkpoint`` event), default 10.

    Example::

        sim = Simulator(SimConfig(seed=7, traces=200))
        for key, value, record in sim.events():
            ...
        sim.write_log("fleet.aasim")          # the same bytes on every run
        sim.run_to_kafka(KafkaSettings(), rate=200, stop_event=stop)
    """

    def __init__(self, config: SimConfig | None = None, *, codec: AvroCodec | None = None,
                 now_us: Callable[[], int] = _now_us, signing_key: SigningKey | None = None,
                 checkpoint_events: int = 1000, checkpoint_seconds: float = 10.0) -> None:
        self.config = config or SimConfig()
        self.codec = codec or AvroCodec("action")
        self.signing_key = signing_key
        self.checkpoint_events = checkpoint_events
        self.checkpoint_seconds = checkpoint_seconds
        # the run events() is producing: its chains and checkpoint schedule, for tail_events()
        self._chains: dict[str, tuple[StreamChain, Agent]] = {}
        self._schedule: CheckpointSchedule | None = None
        self.fleet = build_fleet(self.config.agents, self.config.tenants)
        self.stats = SimStats()
        self._now_us = now_us
        self._sessions = self.config.sessions_per_agent

    def stream_id(self, agent: Agent | str) -> str:
        """The producer stream of ``agent`` in this run."""
        name = agent if isinstance(agent, str) else agent.agent_id
        nonce = self.config.run_nonce
        return f"sim-{self.config.seed}-{nonce}/{name}" if nonce else f"sim-{self.config.seed}/{name}"

    def events(self) -> Generator[SimEvent, None, None]:
        """Every event of the run in emission order; each call starts the run afresh (and resets ``stats``)."""
        cfg = self.config
        # A nonce makes another id space; without one, the seed alone (byte-identical logs as before).
        rng = random.Random(f"{cfg.seed}/{cfg.run_nonce}" if cfg.run_nonce else cfg.seed)
        wall = cfg.clock == "wall"
        now_us = self._now_us
        epoch = now_us() if wall else int(cfg.start.timestamp()) * 1_000_000 + cfg.start.microsecond
        horizon = None if cfg.duration_s is None else epoch + int(cfg.duration_s * 1_000_000)
        rates = cfg.effective_rates()
        peers: dict[str, list[Agent]] = {}
        for agent in self.fleet:
            peers.setdefault(agent.tenant, []).append(agent)
        chains = [StreamChain(self.stream_id(a)) for a in self.fleet]
        keys = [c.stream_id.encode("utf-8") for c in chains]
        self._chains = {c.stream_id: (c, a) for c, a in zip(chains, self.fleet, strict=False)}
        schedule = self._schedule = None if self.signing_key is None else CheckpointSchedule(
            self.signing_key, every_events=self.checkpoint_events, every_seconds=self.checkpoint_seconds * 1_000_000)
        next_scan = 0
        think_us = cfg.think_time_s * 1_000_000
        lanes = [_Lane(agent, epoch + int(rng.random() * think_us))
                 for _ in range(self._sessions) for agent in self.fleet]
        max_traces, max_events = cfg.traces, cfg.events
        stats = self.stats = SimStats()
        faults, seen = stats.faults, set()
        codec = self.codec
        started = 0
        began = time.perf_counter()

        def refill(index: int) -> bool:
            nonlocal started
            lane = lanes[index]
            if max_traces is not None and started >= max_traces:
                return False
            start = lane.next_start
            if wall:
                start = max(start, now_us())
            if horizon is not None and start > horizon:
                return False
            records, _, end = build_trace(rng, self.fleet, peers, lane.agent, rates, start)
            started += 1
            lane.buffer, lane.pos = records, 0
            lane.next_start = end + int(rng.expovariate(1.0) * think_us)
            heapq.heappush(heap, (records[0][0], index))
            return True

        heap: list[tuple[int, int]] = []
        for index in range(len(lanes)):
            refill(index)
        try:
            while heap:
                t, index = heap[0]
                if horizon is not None and t > horizon:
                    break
                lane = lanes[index]
                _, agent_index, record = lane.buffer[lane.pos]
                lane.pos += 1
                if lane.pos < len(lane.buffer):
                    heapq.heapreplace(heap, (lane.buffer[lane.pos][0], index))
                else:
                    heapq.heappop(heap)
                    lane.buffer = []
                    refill(index)
                if schedule is not None:  # times in µs of event time: the same schedule as the SDK's
                    if schedule and t >= next_scan:
                        next_scan = t + _TAIL_SCAN_US
                        for stream_id in schedule.due(t):
                            yield self._checkpoint_event(stream_id, t)
                    chain = chains[agent_index]
                    signature = schedule.attributes(chain.stream_id, record, chain, t)
                    if signature is not None:
                        record["attributes"] = {**record["attributes"], **signature}
                    value = chain.seal(record, codec)
                    schedule.sealed(chain.stream_id, t, signed=signature is not None)
                    stats.checkpoints = schedule.checkpoints
                else:
                    value = chains[agent_index].seal(record, codec)
                stats.events += 1
                if stats.first_time_us is None:
                    stats.first_time_us = t
                stats.last_time_us = t
                if record["depth"] == 0 and record["phase"] == "start":
                    stats.traces += 1
                status = record["status"]
                if status in {"error", "timeout"}:
                    stats.errors += 1
                fault = record["attributes"].get(FAULT_ATTRIBUTE)
                if fault is not None:
                    mark = (record["trace_id"], fault)
                    if mark not in seen:
                        seen.add(mark)
                        faults[fault] += 1
                    if fault == "hung":
                        stats.hung += 1
                yield keys[agent_index], value, record
                if max_events is not None and stats.events >= max_events:
                    break
        finally:
            stats.elapsed_s = time.perf_counter() - began

    def tail_events(self) -> Iterator[SimEvent]:
        """Checkpoint events that cover every stream's uncovered tail, after :meth:`events` stopped (what the
        SDK's ``close()`` does); none without a signing key."""
        schedule = self._schedule
        if schedule is None:
            return
        t = max(self.stats.last_time_us or 0, self._now_us() if self.config.clock == "wall" else 0)
        for stream_id in schedule.due(t, everything=True):
            yield self._checkpoint_event(stream_id, t)

    def _checkpoint_event(self, stream_id: str, t: int) -> SimEvent:
        """Seal an ``agentaudit.checkpoint`` point event (nothing of the agent's) that signs ``stream_id``'s tail."""
        chain, agent = self._chains[stream_id]
        schedule = self._schedule
        assert schedule is not None  # noqa: S101 - narrows the Optional: set before the run starts
        mark_id = str(uuid.uuid5(_CHECKPOINT_IDS, f"{stream_id}/{chain.seq}"))
        record: dict[str, Any] = {
            "event_id": mark_id, "tenant": agent.tenant, "agent_id": agent.agent_id, "agent_version": agent.version,
            "run_id": mark_id, "trace_id": mark_id, "action_id": mark_id, "parent_action_id": None, "links": [],
            "depth": 0, "stream_id": "", "seq": 0, "prev_hash": "", "kind": "other", "name": CHECKPOINT_NAME,
            "phase": "point", "status": "unset", "error_type": None, "error_message": None,
            "actor": {"type": "agent", "id": agent.agent_id}, "model": None, "input_tokens": 0, "output_tokens": 0,
            "cost_usd": 0.0, "latency_us": None, "start_time_us": t, "end_time_us": t, "event_time_us": t,
            "input_digest": None, "output_digest": None, "input_body": None, "output_body": None,
            "payload_bytes": 0, "attributes": {}, "environment": agent.environment,
        }
        signature = schedule.attributes(stream_id, record, chain, t, force=True)
        record["attributes"] = signature or {}
        value = chain.seal(record, self.codec)
        schedule.sealed(stream_id, t, signed=signature is not None, point=True)
        self.stats.checkpoints = schedule.checkpoints
        self.stats.events += 1
        return stream_id.encode("utf-8"), value, record

    def write_log(self, path: Any) -> SimStats:
        """Write the run to ``path`` in the simulator log format (see :mod:`.log`); needs a stop condition."""
        from agentaudit.producers.simulator.log import write_log

        return write_log(self, path)

    def run_to_kafka(self, kafka_settings: Any, rate: float = 0.0, stop_event: threading.Event | None = None,
                     *, topic: str | None = None) -> SimStats:
        """Produce the run to the actions topic keyed by stream id, at most ``rate`` events/s (0: unpaced).

        See :func:`agentaudit.producers.simulator.publish.run_to_kafka`.
        """
        from agentaudit.producers.simulator.publish import run_to_kafka

        return run_to_kafka(self, kafka_settings, rate, stop_event, topic=topic)


def sessions_for_rate(config: SimConfig, rate: float, *, sample_events: int = 5_000) -> int:
    """Sessions per agent so that a wall-clock fleet averages about ``rate`` events/s.

    Measures how many events one session per agent makes per simulated second (on a virtual
    run of the same seed) and scales up; at least 1.
    """
    if rate <= 0:
        return config.sessions_per_agent
    probe = Simulator(config.model_copy(update={"clock": "virtual", "sessions_per_agent": 1, "traces": None,
                                                "events": sample_events, "duration_s": None}))
    for _ in probe.events():
        pass
    stats = probe.stats
    span_s = ((stats.last_time_us or 0) - (stats.first_time_us or 0)) / 1_000_000
    natural = stats.events / span_s if span_s > 0 else rate
    return max(1, math.ceil(rate / natural))
