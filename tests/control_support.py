"""Shared helpers of the control-plane tests: a rule file with modes, and full action records."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

GUARD_RULES = """\
required_engine_version: 1
lists:
  - name: forbidden_tools
    items: [shell.exec, fs.rmtree]
rules:
  - id: guard.forbidden-tool
    desc: A tool no agent may call.
    condition: kind = execute_tool and phase in (start, point) and name in (forbidden_tools)
    output: "{agent_id} called forbidden tool {name}"
    severity: high
    mode: enforce
    tags: [stable, security]
  - id: guard.egress-simulated
    desc: Egress we are trialling a block for.
    condition: kind = execute_tool and phase in (start, point) and name = "http.post"
    output: "{agent_id} posted out"
    severity: medium
    mode: simulate
    tags: [incubating, security]
  - id: guard.deep-chain
    desc: Deep chains, only watched.
    condition: depth > 5 and phase != end
    output: "{agent_id} at depth {depth}"
    severity: low
    tags: [sandbox]
  - id: guard.tool-burst
    desc: Needs stream state, so the guard must leave it to the consumer.
    condition: kind = execute_tool
    aggregate: {fn: count, threshold: 100}
    by: [agent_id]
    window: 1m
    output: "{agent_id} burst {value}"
    severity: low
    tags: [sandbox]
"""


def write_rules(directory: Path, text: str = GUARD_RULES, name: str = "rules.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def action_record(**over: Any) -> dict[str, Any]:
    """A complete action v2 record (every field the rule engine may read), start of a tool call by default."""
    now = time.time_ns() // 1000
    record: dict[str, Any] = dict(
        event_id=str(uuid.uuid4()), tenant="acme", agent_id="bot-1", agent_version="1", run_id="run-1",
        trace_id="trace-1", action_id=str(uuid.uuid4()), parent_action_id=None, links=[], depth=1,
        stream_id="stream-1", seq=0, prev_hash="", kind="execute_tool", name="search", phase="start",
        status="unset", error_type=None, error_message=None, actor={"type": "agent", "id": "bot-1"}, model=None,
        input_tokens=0, output_tokens=0, cost_usd=0.0, latency_us=None, start_time_us=now, end_time_us=None,
        event_time_us=now, input_digest=None, output_digest=None, input_body=None, output_body=None,
        payload_bytes=0, attributes={}, environment="prod")
    record.update(over)
    if "agent_id" in over and "actor" not in over:
        record["actor"] = {"type": "agent", "id": over["agent_id"]}
    return record


class GatedAgent:
    """A minimal agent on the real broker: asks the gate, records guardrail notes and approvals, then acts.

    Stands in for the SDK where a test must see the raw events it writes.
    """

    def __init__(self, kafka: Any, agent_id: str, gate: Any, tenant: str = "acme") -> None:
        from agentaudit.infra.kafka import KafkaProducer
        from agentaudit.schemas import AvroCodec, StreamChain

        self.kafka, self.agent_id, self.gate, self.tenant = kafka, agent_id, gate, tenant
        self.codec = AvroCodec("action")
        self.chain = StreamChain(f"{agent_id}-{uuid.uuid4().hex[:8]}")
        self.producer = KafkaProducer(kafka, {"linger.ms": 0})
        self.ran: list[tuple[str, Any]] = []

    def emit(self, record: dict[str, Any]) -> None:
        record = {**record, "stream_id": self.chain.stream_id}
        self.producer.produce(self.kafka.topics.actions, self.chain.seal(record, self.codec),
                              key=self.chain.stream_id.encode())

    def note(self, note: Any, record: dict[str, Any]) -> None:
        self.emit(action_record(agent_id=self.agent_id, tenant=self.tenant, kind="guardrail", phase="point",
                                name=note.name, status=note.status, parent_action_id=record["action_id"],
                                trace_id=record["trace_id"], attributes=dict(note.attributes)))

    def record_approval(self, approval: Any) -> None:
        self.emit(action_record(agent_id=self.agent_id, tenant=self.tenant, kind="approval", phase="point",
                                name=approval.tool, status="ok",
                                actor={"type": approval.approver.type.value, "id": approval.approver.id},
                                attributes=approval.attributes()))

    def call(self, tool: str, args: Any = None, approval: Any = None) -> None:
        record = action_record(agent_id=self.agent_id, tenant=self.tenant, name=tool)
        try:
            self.gate.before(record, record_note=self.note, args=args, approval=approval)
        finally:
            self.producer.flush(10)
        self.emit(record)
        self.ran.append((tool, args))  # the tool "runs" only after the gate said yes
        self.producer.flush(10)

    def close(self) -> None:
        self.producer.close()
