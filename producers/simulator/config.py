"""What a simulation run looks like: fleet size, stop condition, clock and failure-mode rates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULT_FAULT_RATES", "DEFAULT_START", "FAULT_KINDS", "SimConfig"]

#: Failure modes, each tagged on its events as ``attributes["sim.fault"]``.
FAULT_KINDS = ("loop", "budget", "forbidden", "unapproved", "latency", "error_burst", "deep", "fanout", "hung")

#: Per-trace probability of each failure mode before ``fault_rate`` multiplies it.
DEFAULT_FAULT_RATES: dict[str, float] = {
    "loop": 0.02, "budget": 0.01, "forbidden": 0.01, "unapproved": 0.01, "latency": 0.02,
    "error_burst": 0.01, "deep": 0.005, "fanout": 0.005, "hung": 0.005,
}

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


class SimConfig(BaseModel):
    """A simulation run. The same config with ``clock="virtual"`` always yields the same bytes.

    :param seed: seeds every random choice and every id, default 0.
    :param run_nonce: mixed into the seed and the stream ids, default ``""`` (none). Two runs of one
        seed with different nonces share no event, trace, run or stream id; ``agentaudit up`` gives
        each start a fresh nonce unless the seed is pinned, so restarts never re-send old ids.
    :param agents: fleet size, default 12, spread over five teams and the tenants.
    :param tenants: tenant names, assigned to agents round-robin, default ``("acme", "globex")``.
    :param traces: stop after this many traces have been started (all their events are emitted).
    :param events: stop after this many events.
    :param duration_s: stop when event time passes start + this many seconds.
    :param fault_rate: multiplies every failure-mode rate, default 1.0 (0 turns faults off).
    :param fault_rates: per-mode probability per trace; modes not given keep their default.
    :param clock: ``virtual`` (times start at ``start`` and advance by simulated durations:
        deterministic) or ``wall`` (times start at the real now and traces never start in the
        past: for live demos; ids stay seeded, times do not).
    :param start: first event time of the virtual clock, default 2026-01-01T00:00:00Z.
    :param sessions_per_agent: concurrent sessions each agent runs, default 1.
    :param think_time_s: mean pause between an agent session's traces, default 5 s.

    >>> sim = Simulator(SimConfig(seed=7, traces=100, fault_rates={"loop": 0.5}))
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 0
    run_nonce: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9_-]*$")
    agents: int = Field(default=12, gt=0, le=10_000)
    tenants: tuple[str, ...] = ("acme", "globex")
    traces: int | None = Field(default=None, ge=0)
    events: int | None = Field(default=None, ge=0)
    duration_s: float | None = Field(default=None, ge=0)
    fault_rate: float = Field(default=1.0, ge=0)
    fault_rates: dict[str, float] = Field(default_factory=dict)
    clock: Literal["virtual", "wall"] = "virtual"
    start: datetime = DEFAULT_START
    sessions_per_agent: int = Field(default=1, gt=0, le=1000)
    think_time_s: float = Field(default=5.0, ge=0)

    @field_validator("tenants")
    @classmethod
    def _tenants(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(not t or len(t) > 256 for t in value):
            raise ValueError("tenants must be one or more non-empty names")
        return value

    @field_validator("fault_rates")
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown failure mode(s) {unknown}; known: {', '.join(FAULT_KINDS)}")
        bad = {k: v for k, v in value.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"failure-mode rates are probabilities per trace in 0..1, got {bad}")
        return value

    @field_validator("start")
    @classmethod
    def _start(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def effective_rates(self) -> dict[str, float]:
        """Per-trace probability of each failure mode, after the multiplier (capped at 1)."""
        rates = {**DEFAULT_FAULT_RATES, **self.fault_rates}
        return {k: min(1.0, rates[k] * self.fault_rate) for k in FAULT_KINDS}
