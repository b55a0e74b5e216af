"""Three rules that need no rule file: forbidden tools, costly events and failed actions.

They are the sink's default judgement when the rule engine is not installed or no rule
file is given. Incident ids are the SHA-256 of rule id, revision, tenant and key (the
action id), so a re-read batch yields the same incidents.

>>> evaluator = BuiltinEvaluator(forbidden_tools=["shell.exec"], cost_threshold_usd=0.5)
>>> incidents = evaluator.evaluate(records)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from agentaudit.rules.engine import BaseEvaluator
from agentaudit.schemas import Incident, Severity

__all__ = ["RULE_COST", "RULE_ERROR", "RULE_FORBIDDEN_TOOL", "BuiltinEvaluator"]

RULE_FORBIDDEN_TOOL = "builtin.forbidden_tool"
RULE_COST = "builtin.cost_threshold"
RULE_ERROR = "builtin.error_status"

_SEVERITY = {RULE_FORBIDDEN_TOOL: Severity.HIGH, RULE_COST: Severity.MEDIUM, RULE_ERROR: Severity.LOW}


class BuiltinEvaluator(BaseEvaluator):
    """Flags calls to forbidden tools, events costing more than a threshold, and error statuses.

    :param forbidden_tools: tool names (``execute_tool`` events' ``name``) that must not be called.
    :param cost_threshold_usd: an event whose ``cost_usd`` exceeds this opens an incident; None disables.
    :param error_statuses: statuses that count as a failed action, default ``("error",)``.
    """

    def __init__(
        self,
        forbidden_tools: Iterable[str] = (),
        cost_threshold_usd: float | None = 1.0,
        error_statuses: Iterable[str] = ("error",),
    ) -> None:
        self.forbidden_tools = frozenset(forbidden_tools)
        self.cost_threshold_usd = cost_threshold_usd
        self.error_statuses = frozenset(error_statuses)
        spec = repr((sorted(self.forbidden_tools), cost_threshold_usd, sorted(self.error_statuses)))
        self.revision = "builtin-" + hashlib.sha256(spec.encode()).hexdigest()[:16]

    def evaluate(self, records: Sequence[dict[str, Any]]) -> list[Incident]:
        hits: dict[str, dict[str, Any]] = {}
        forbidden = self.forbidden_tools
        threshold = self.cost_threshold_usd
        errors = self.error_statuses
        for record in records:
            if forbidden and record["kind"] == "execute_tool" and record["name"] in forbidden:
                self._hit(hits, RULE_FORBIDDEN_TOOL, record, f"agent {record['agent_id']} called forbidden tool {record['name']}")
            if threshold is not None and record["cost_usd"] > threshold:
                self._hit(
                    hits, RULE_COST, record,
                    f"event cost ${record['cost_usd']:.4f} exceeds ${threshold:.4f} ({record['kind']} {record['name']})",
                )
            if record["status"] in errors:
                self._hit(
                    hits, RULE_ERROR, record,
                    f"{record['kind']} {record['name']} ended with status {record['status']}"
                    + (f": {record['error_type']}" if record.get("error_type") else ""),
                )
        return [Incident.model_validate(fields) for fields in hits.values()]

    def _hit(self, hits: dict[str, dict[str, Any]], rule_id: str, record: dict[str, Any], summary: str) -> None:
        key = record["action_id"]
        incident_id = hashlib.sha256(f"{rule_id}\x1f{self.revision}\x1f{record['tenant']}\x1f{key}".encode()).hexdigest()[:32]
        at = record["event_time_us"]
        current = hits.get(incident_id)
        if current is None:
            hits[incident_id] = {
                "incident_id": incident_id,
                "tenant": record["tenant"],
                "rule_id": rule_id,
                "rule_revision": self.revision,
                "severity": _SEVERITY[rule_id],
                "key": key,
                "window_start_us": at,
                "window_end_us": at,
                "agent_id": record["agent_id"],
                "trace_id": record["trace_id"],
                "event_ids": [record["event_id"]],
                "first_seen_us": at,
                "last_seen_us": at,
                "count": 1,
                "summary": summary,
                "tags": ["builtin"],
            }
            return
        current["event_ids"].append(record["event_id"])
        current["count"] += 1
        current["first_seen_us"] = current["window_start_us"] = min(current["first_seen_us"], at)
        current["last_seen_us"] = current["window_end_us"] = max(current["last_seen_us"], at)
