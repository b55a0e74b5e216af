"""Action records and framed messages for the sink's tests (built through the real codec and chain)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from agentaudit.schemas import AvroCodec, StreamChain

# Recent times: the store drops rows older than the retention TTL at insert time.
BASE_US = (int(time.time()) - 3600) * 1_000_000


def action_record(n: int, **overrides: Any) -> dict[str, Any]:
    """A valid v2 action record; ``n`` varies ids and times."""
    record: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "tenant": "acme",
        "agent_id": f"agent-{n % 3}",
        "agent_version": "1.0",
        "run_id": f"run-{n // 10}",
        "trace_id": f"trace-{n // 10}",
        "action_id": f"action-{n}",
        "parent_action_id": None,
        "links": [],
        "depth": 0,
        "stream_id": "",
        "seq": 0,
        "prev_hash": "",
        "kind": "execute_tool",
        "name": "search",
        "phase": "end",
        "status": "ok",
        "error_type": None,
        "error_message": None,
        "actor": {"type": "agent", "id": f"agent-{n % 3}"},
        "model": None,
        "input_tokens": 10,
        "output_tokens": 20,
        "cost_usd": 0.001,
        "latency_us": 1500,
        "start_time_us": BASE_US + n * 1000,
        "end_time_us": BASE_US + n * 1000 + 1500,
        "event_time_us": BASE_US + n * 1000 + 1500,
        "input_digest": None,
        "output_digest": None,
        "input_body": None,
        "output_body": None,
        "payload_bytes": 0,
        "attributes": {"k": "v"},
        "environment": "test",
    }
    record.update(overrides)
    return record


def framed_events(count: int, *, stream_id: str = "test-stream", start: int = 0,
                  **overrides: Any) -> list[tuple[dict[str, Any], bytes]]:
    """``count`` records sealed into one producer stream: ``(record, framed bytes)`` pairs."""
    codec = AvroCodec("action")
    chain = StreamChain(stream_id)
    out = []
    for n in range(start, start + count):
        record = action_record(n, **overrides)
        out.append((record, chain.seal(record, codec)))
    return out


def drain(sink: Any, expected: int, timeout: float = 40.0) -> int:
    """Run batches until ``expected`` messages were consumed and committed (retried batches do not count)."""
    consumed = 0
    deadline = time.monotonic() + timeout
    while consumed < expected and time.monotonic() < deadline:
        result = sink.run_once()
        if not result.retried:
            consumed += result.consumed
    assert consumed == expected, f"consumed {consumed} of {expected} messages in {timeout}s"
    return consumed


def tool_burst_rules(threshold: int, window: str) -> str:
    """A rule file with one windowed aggregate: ``threshold`` tool calls by one agent within ``window``."""
    return f"""\
required_engine_version: 1
rules:
  - id: test.tool-burst
    desc: Many tool calls by one agent within a window.
    condition: kind = execute_tool
    aggregate: {{fn: count, op: ">=", threshold: {threshold}}}
    by: [agent_id]
    window: {window}
    output: "{{agent_id}} made {{value:.0f}} tool calls"
    severity: low
    tags: [sandbox]
"""
