"""A deterministic agent fleet with failure modes injected on purpose (``agentaudit simulate``).

Twelve agents (by default) of five teams and two tenants run realistic traces: an
``invoke_agent`` root, a plan, model calls with tokens and cost, tool calls with argument
digests, handoffs to peers, and named humans' approvals before consequential tools. Failure
modes (:data:`FAULT_KINDS`) are injected per trace at configurable rates and tagged on their
events as ``attributes["sim.fault"]``.

Clocks:

- ``virtual`` (default for logs): event times start at ``SimConfig.start`` (2026-01-01T00:00:00Z)
  and advance only by simulated durations; ids come from ``random.Random(seed)``. The same
  config gives byte-identical output, and an ``events`` limit gives a prefix of a longer run.
- ``wall`` (``agentaudit up``): the same seeded ids, but times start at the real now, a trace never
  starts in the past, and :func:`run_to_kafka` emits each event when its time comes, so the
  dashboard shows recent activity. Not byte-identical across runs.

A ``run_nonce`` (``agentaudit up`` draws one per start unless the seed is pinned) is mixed into
the seed and the stream ids (``sim-{seed}-{nonce}/{agent}``), so two runs share no id.

Each agent's events are sealed into ``StreamChain(f"sim-{seed}/{agent}")``, so a log verifies
with :func:`agentaudit.schemas.verify_streams`. Generating and sealing runs at a few tens of
thousands of events/s (the Avro encode dominates); to feed throughput benchmarks, write a log
once and replay it with :func:`read_log` (hundreds of thousands of events/s).

>>> sim = Simulator(SimConfig(seed=7, traces=100))
>>> for key, value, record in sim.events(): ...
>>> sim.write_log("fleet.aasim"); sim.stats.faults
"""

from agentaudit.producers.simulator._fleet import AGENT_PATTERNS
from agentaudit.producers.simulator._trace import FAULT_ATTRIBUTE, canonical_digest
from agentaudit.producers.simulator.config import DEFAULT_FAULT_RATES, DEFAULT_START, FAULT_KINDS, SimConfig
from agentaudit.producers.simulator.engine import SimEvent, SimStats, Simulator, sessions_for_rate
from agentaudit.producers.simulator.exceptions import SimulatorError
from agentaudit.producers.simulator.log import LOG_MAGIC, read_log, write_log

__all__ = [
    "AGENT_PATTERNS",
    "DEFAULT_FAULT_RATES",
    "DEFAULT_START",
    "FAULT_ATTRIBUTE",
    "FAULT_KINDS",
    "LOG_MAGIC",
    "SimConfig",
    "SimEvent",
    "SimStats",
    "Simulator",
    "SimulatorError",
    "canonical_digest",
    "read_log",
    "sessions_for_rate",
    "write_log",
]
