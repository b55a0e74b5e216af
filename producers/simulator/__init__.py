"""A deterministic agent fleet with failure modes injected on purpose (``agentaudit simulate``).

Twelve agents (by default) of five teams and two tenants run realistic traces: an
``invoke_agent`` root, a plan, model calls with tokens and cost, tool calls with argument
digests, handoffs to peers, and named humans' approvals before consequential tools. Failure
modes (:data:`FAULT_KINDS`) are injected per trace at configurable rates and tagged on their
events as ``attributes["sim.fault"]``. With the virtual clock the same seed gives the same bytes.

>>> sim = Simulator(SimConfig(seed=7, traces=100))
>>> for key, value, record in sim.events(): ...
>>> sim.write_log("fleet.aasim"); sim.stats.faults
"""

from agentaudit.producers.simulator._trace import FAULT_ATTRIBUTE, canonical_digest
from agentaudit.producers.simulator.config import DEFAULT_FAULT_RATES, DEFAULT_START, FAULT_KINDS, SimConfig
from agentaudit.producers.simulator.engine import SimEvent, SimStats, Simulator, sessions_for_rate
from agentaudit.producers.simulator.exceptions import SimulatorError
from agentaudit.producers.simulator.log import LOG_MAGIC, read_log, write_log

__all__ = [
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
