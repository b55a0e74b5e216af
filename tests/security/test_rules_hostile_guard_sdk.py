"""The ReDoS rule through the SDK's inline guard on the real broker: the agent's tool call is not held.

Attack: a rule file with ``name matches "^(\\w+\\s?)+$"`` in enforce mode, loaded by
``AuditClient(guard_rules=...)``, and tool names built to backtrack: 26 word characters then ``!``
(held the call 3.1 s before RE2) and 1,023 then ``!`` (the SDK keeps 1,024 characters of a name; under
a backtracking engine that is 2**1000 steps). Expected: each call enters its action in
well under a second (the guard's own share is < 50 ms, asserted in test_rules_hostile_files),
runs, and is recorded; a name the rule matches is still denied.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agentaudit.infra.kafka import read_all
from agentaudit.producers import ActionBlocked, AuditClient
from agentaudit.schemas import AvroCodec

pytestmark = [pytest.mark.integration, pytest.mark.broker]

RULES = """\
rules:
  - id: redos
    desc: a backtracking pattern, enforced inline
    condition: kind = execute_tool and name matches "^(\\\\w+\\\\s?)+$"
    output: "{agent_id} ran {name}"
    severity: high
    mode: enforce
    tags: [sandbox]
"""


def test_redos_rule_does_not_hold_the_agents_tool_call(kafka_settings_factory, tmp_path: Path) -> None:
    kafka = kafka_settings_factory(partitions=1)
    rules = tmp_path / "redos.yaml"
    rules.write_text(RULES)
    ran: list[str] = []
    held: dict[int, float] = {}
    with AuditClient(kafka=kafka, tenant="acme", agent="bot-1", spool_dir=tmp_path / "spool",
                     guard_rules=str(rules)) as audit:
        for size in (26, 1_023):
            name = "a" * size + "!"
            started = time.perf_counter()
            with audit.action("execute_tool", name=name):
                held[size] = time.perf_counter() - started
                ran.append(name)
        with pytest.raises(ActionBlocked) as info, audit.action("execute_tool", name="read file"):
            ran.append("read file")
        assert audit.flush(10)
    assert held[26] < 0.5 and held[1_023] < 0.5, held
    assert [len(n) for n in ran] == [27, 1_024] and info.value.rule_id == "redos"
    codec = AvroCodec("action")
    recorded = [codec.decode(m.value()) for m in read_all(kafka, kafka.topics.actions, expected=5, timeout=15)]
    tools = [e for e in recorded if e["kind"] == "execute_tool"]
    assert sorted(len(e["name"]) for e in tools) == [27, 27, 1_024, 1_024]  # start and end of each
