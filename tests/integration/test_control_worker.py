"""`agentaudit rules run`'s worker enforces too: each partition's evaluator wrapped in the control publisher
(as `agentaudit consume` wraps its evaluator) turns an enforce incident into a control command."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agentaudit.consumers.control_publisher import ControlPublisher
from agentaudit.consumers.rules_worker import RulesWorker
from agentaudit.control import read_control_state
from agentaudit.infra.kafka import KafkaProducer
from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.schemas import AvroCodec, ControlType
from tests.control_support import action_record, write_rules
from tests.fixtures.broker import test_consumer_config

pytestmark = [pytest.mark.integration, pytest.mark.broker]

RULES = """\
required_engine_version: 1
rules:
  - id: worker.drop-table
    desc: Dropping tables pauses the agent.
    condition: kind = execute_tool and phase = start and name = "db.drop_table"
    output: "{agent_id} tried {name}"
    severity: critical
    mode: enforce
    tags: [stable, security]
  - id: worker.shell
    desc: Shells are only simulated.
    condition: kind = execute_tool and phase = start and name = "shell.exec"
    output: "{agent_id} ran {name}"
    severity: high
    mode: simulate
    tags: [stable, security]
"""


def test_the_rules_worker_publishes_enforce_and_simulate_commands(kafka_settings_factory, group_factory,
                                                                  tmp_path: Path) -> None:
    kafka = kafka_settings_factory(partitions=1)
    evaluator = RuleEvaluator(load_rule_set(str(write_rules(tmp_path, RULES))))
    producer = KafkaProducer(kafka, {"linger.ms": 0})
    wrapped: list[ControlPublisher] = []

    def enforce(inner):
        wrapped.append(ControlPublisher(inner, kafka, producer=producer))
        return wrapped[-1]

    codec = AvroCodec("action")
    with KafkaProducer(kafka) as actions:
        for name, agent in (("db.drop_table", "bot-7"), ("shell.exec", "bot-8"), ("search", "bot-9")):
            record = action_record(agent_id=agent, name=name, stream_id=f"s-{agent}")
            actions.produce(kafka.topics.actions, codec.encode(record), key=record["stream_id"].encode())
        actions.flush()
    config = test_consumer_config(**{"auto.offset.reset": "earliest"})
    with RulesWorker(kafka, evaluator, group=group_factory(), batch_size=100, consumer_config=config,
                     wrap=enforce) as worker:
        deadline = time.monotonic() + 60
        while worker.evaluated < 3:
            worker.run_once()
            assert time.monotonic() < deadline, f"evaluated {worker.evaluated} of 3"
    producer.close()
    assert wrapped, "the worker did not wrap its partition's evaluator"
    incidents = {i.rule_id: i for i in worker.incidents.values()}
    assert incidents["worker.drop-table"].attributes["control_action"] == "pause_agent"
    assert incidents["worker.shell"].attributes["control_simulated"] == "true"
    state = read_control_state(kafka)
    by_agent = {c.agent_id: c for c in state.history}
    assert set(by_agent) == {"bot-7", "bot-8"}
    assert by_agent["bot-7"].type is ControlType.PAUSE_AGENT and not by_agent["bot-7"].simulated
    assert by_agent["bot-7"].incident_id == incidents["worker.drop-table"].incident_id
    assert by_agent["bot-8"].simulated  # recorded, never obeyed
    now = time.time_ns() // 1000
    assert state.blocking("acme", "bot-7", None, now) == by_agent["bot-7"]
    assert state.blocking("acme", "bot-8", "shell.exec", now) is None
