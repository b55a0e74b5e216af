"""One event-time policy for both judging paths: allowed lateness, and idleness with its bound.

A watermark alone stops when deliveries stop, so a quiet tenant would keep its last decisions open;
once quiet (idle for ``idle_timeout`` and read to the end) event time advances with processing time.
Every decision is then made within ``lateness + idle_timeout`` of the later of the last delivery and
its own deadline. The design and the bound: ``docs/event-time.md``.

>>> policy = EventTimePolicy(lateness_us=2_000_000, idle_timeout_us=1_000_000)
>>> policy.quiet_mark(10_000_000, quiet_us=500_000) is None   # not quiet yet
True
>>> policy.quiet_mark(10_000_000, quiet_us=3_000_000)
11000000
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["EventTimePolicy", "QuietTenants"]


@dataclass(frozen=True)
class EventTimePolicy:
    """Allowed lateness and idle timeout, in microseconds (``idle_timeout_us`` 0: never quiet)."""

    lateness_us: int
    idle_timeout_us: int

    def mark(self, max_time_us: int) -> int:
        """The watermark of a source or tenant that still delivers."""
        return max_time_us - self.lateness_us

    def quiet_mark(self, max_time_us: int, quiet_us: int) -> int | None:
        """The watermark after ``quiet_us`` of processing time without a delivery; None while not quiet."""
        if self.idle_timeout_us <= 0 or quiet_us < self.idle_timeout_us:
            return None
        return max_time_us + quiet_us - self.lateness_us


class QuietTenants:
    """Processing time of each tenant's last delivery, for the inline sink (one process sees every tenant).

    A tenant not seen since this tracker started counts as quiet since the start (its state may have
    been restored from a snapshot). ``now`` is a monotonic clock in seconds.
    """

    def __init__(self, idle_timeout_s: float, now: float) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.started = now
        self._last: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        return self.idle_timeout_s > 0

    def delivered(self, tenants: Iterable[str], now: float) -> None:
        last = self._last
        for tenant in tenants:
            last[tenant] = now

    def quiet(self, now: float) -> tuple[dict[str, int], int | None] | None:
        """Quiet time in µs per known tenant (0: not quiet) and of every other tenant; None: nobody is quiet."""
        if not self.enabled:
            return None
        timeout = self.idle_timeout_s
        others = now - self.started
        known = {t: int((now - seen) * 1e6) if now - seen >= timeout else 0 for t, seen in self._last.items()}
        others_us = int(others * 1e6) if others >= timeout else None
        if others_us is None and not any(known.values()):
            return None
        return known, others_us
