"""Whether a tool is refused by its name alone: what ``tools/list`` hides with ``hide_blocked``."""

from __future__ import annotations

import time
from typing import Any

from agentaudit.control import ActionBlocked
from agentaudit.producers.client import AuditClient

__all__ = ["blocked_by_name"]


def blocked_by_name(audit: AuditClient, name: str) -> bool:
    """True when a ``block_tool`` command names ``name`` for this agent, or an enforce-mode guard rule denies a
    call of ``name`` whatever its arguments. Kills and pauses hide nothing: they refuse every call."""
    gate = getattr(audit, "_gate", None)  # the SDK's gate (producers.gate.ClientGate), None without control
    if gate is None:
        return False
    settings = audit.settings
    agent = settings.agent_id
    listener, guard = gate.gate.listener, gate.gate.guard
    if listener is not None:
        try:
            listener.check(agent, "execute_tool", name, tenant=settings.tenant)
        except ActionBlocked as exc:
            if exc.code == "tool_blocked":
                return True
    if guard is not None:
        now = time.time_ns() // 1000
        record: dict[str, Any] = {
            "event_id": "", "tenant": settings.tenant, "agent_id": agent, "agent_version": settings.agent_version,
            "run_id": "", "trace_id": "", "action_id": "", "parent_action_id": None, "links": [], "depth": 1,
            "stream_id": "", "seq": 0, "prev_hash": "", "kind": "execute_tool", "name": name, "phase": "start",
            "status": "unset", "error_type": None, "error_message": None, "actor": {"type": "agent", "id": agent},
            "model": None, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "latency_us": None,
            "start_time_us": now, "end_time_us": None, "event_time_us": now, "input_digest": None,
            "output_digest": None, "input_body": None, "output_body": None, "payload_bytes": 0, "attributes": {},
            "environment": settings.environment}
        return any(decision.denies for decision in guard.evaluate(record))
    return False
