"""A deterministic agent fleet with failure modes injected on purpose (``agentaudit simulate``).

Seeded traces of twelve agents (by default), each fault tagged ``attributes["sim.fault"]`` on its
events, sealed per agent into a stream chain. The ``virtual`` clock gives byte-identical logs; the
``wall`` clock (``agentaudit up``) emits events when their time comes. Clocks, nonces and speed:
``docs/simulator.md``.

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
