"""Semantic checks a decoded record must pass before it enters the pipeline.

Bounds are absolute, not relative to the wall clock, so that a replay years later
judges the same log the same way.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MAX_EVENT_TIME_US", "MIN_EVENT_TIME_US", "check_action"]

MIN_EVENT_TIME_US = 978_307_200_000_000  # 2001-01-01T00:00:00Z
MAX_EVENT_TIME_US = 4_102_444_800_000_000  # 2100-01-01T00:00:00Z
_MAX_ID_CHARS = 256


def check_action(record: dict[str, Any]) -> str | None:
    """The first problem with an action record, or None when it is acceptable."""
    cost = record["cost_usd"]
    if not math.isfinite(cost) or cost < 0:
        return f"cost_usd must be a finite non-negative number, got {cost!r}"
    if record["input_tokens"] < 0 or record["output_tokens"] < 0:
        return "token counts must be non-negative"
    for field in ("event_time_us", "start_time_us"):
        value = record[field]
        if not MIN_EVENT_TIME_US <= value < MAX_EVENT_TIME_US:
            return f"{field}={value} is outside 2001..2100 (epoch microseconds expected)"
    end = record["end_time_us"]
    if end is not None and not MIN_EVENT_TIME_US <= end < MAX_EVENT_TIME_US:
        return f"end_time_us={end} is outside 2001..2100 (epoch microseconds expected)"
    if record["seq"] < 0 or record["depth"] < 0:
        return "seq and depth must be non-negative"
    for field in ("event_id", "tenant", "agent_id", "trace_id", "action_id", "stream_id"):
        value = record[field]
        if not value or len(value) > _MAX_ID_CHARS:
            return f"{field} must be 1..{_MAX_ID_CHARS} characters"
    return None
