"""Attack: forge human authority on the control and lifecycle topics (issue 12, item 4).

On the landed code, anyone who could produce to the broker was obeyed: a plain Kafka producer
published a ``clear`` naming ``human:alice`` and an agent alice had killed ran again; a forged
``kill_agent '*'`` stopped every agent of every tenant; a forged ``promote_rule`` moved
``security.forbidden-tool`` back to detect; a forged ``resolved`` by alice on the lifecycle topic
resolved an open incident.

Expected now, with an authority file configured: each forgery (no signature, a key nobody
registered, a registered key of someone else, a key whose owner holds no grant for that action
or tenant) is ignored by every reader (agents' listeners, the CLI/dashboard fold, the sink) and
raises an ``integrity.unauthorized-command`` / ``integrity.unauthorized-lifecycle`` incident
stored by the sink. Signed records from granted issuers still work end to end.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.control import (
    ActionBlocked,
    ControlIssuer,
    ControlListener,
    read_control_state,
    sign_headers,
)
from agentaudit.dashboard import LifecyclePublisher
from agentaudit.dashboard import queries as q
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.kafka import KafkaProducer
from agentaudit.schemas import (
    Actor,
    ActorType,
    AvroCodec,
    ControlCommand,
    ControlType,
    IncidentLifecycleEvent,
    LifecycleType,
    SigningKey,
)
from agentaudit.settings import KafkaSettings
from tests.authority_support import Operators, make_operators, wait_until
from tests.dashboard_support import seeded_database

pytestmark = [pytest.mark.integration, pytest.mark.broker]


@pytest.fixture
def operators(tmp_path: Path) -> Operators:
    return make_operators(tmp_path)


def _now() -> int:
    return time.time_ns() // 1000


def _forge(kafka: KafkaSettings, command: ControlCommand, *, key: SigningKey | None = None,
           partition: int | None = None) -> bytes:
    """What an attacker with produce access does: a plain producer, no signature or the wrong key."""
    value = AvroCodec("control").encode(command.to_avro())
    headers = sign_headers(key, "control", kafka.topics.control, value) if key is not None else None
    with KafkaProducer(kafka) as producer:
        producer.produce(kafka.topics.control, value, key=command.agent_id.encode(), headers=headers,
                         partition=partition)
        assert producer.flush(10) == 0
    return value


def _command(type: ControlType, *, issuer: str = "alice", issuer_type: ActorType = ActorType.HUMAN,
             **fields) -> ControlCommand:
    fields.setdefault("issued_at_us", _now())
    return ControlCommand(command_id=str(uuid.uuid4()), type=type, issuer=Actor(type=issuer_type, id=issuer),
                          **fields)


def _sink_incidents(kafka: KafkaSettings, store_settings, group: str, authority, rule: str, expected: int,
                    timeout: float = 40.0) -> list[tuple]:
    """Run a sink with the authority until ``expected`` ``rule`` incidents are stored; return them."""
    migrate(store_settings)
    settings = SinkSettings(group=group, batch_timeout_ms=200, session_timeout_ms=6000, heartbeat_interval_ms=1000,
                            digests=False)
    sql = ("SELECT incident_id, tenant, attributes['record_id'], attributes['issuer'], attributes['reason'] "
           "FROM incidents FINAL WHERE rule_id = {rule:String} ORDER BY attributes['record_id']")
    with Sink(kafka, store_settings, settings, authority=authority) as sink, connect(store_settings) as store:
        deadline = time.monotonic() + timeout
        rows: list[tuple] = []
        while time.monotonic() < deadline:
            sink.run_once()
            rows = store.query(sql, {"rule": rule}).rows
            if len(rows) >= expected:
                break
        for _ in range(3):  # a re-read or a later batch must not add a second incident for one record
            sink.run_once()
        return store.query(sql, {"rule": rule}).rows


def test_a_forged_clear_by_alice_does_not_revive_the_agent_she_killed(
        kafka_settings_factory, group_factory, store_settings_factory, operators: Operators):
    kafka = kafka_settings_factory(partitions=1)
    with ControlIssuer(kafka, key=operators.alice) as issuer:
        kill = issuer.kill("billing-bot", actor="alice", reason="runaway refunds", tenant="acme")
    with ControlListener(kafka, tenant="acme", authority=operators.authority) as listener:
        assert listener.wait_for(kill.command_id)
        with pytest.raises(ActionBlocked, match="killed by human alice"):
            listener.check("billing-bot", "execute_tool", "payments.refund")

        # The attack, three ways: unsigned; signed by a key nobody registered; signed by mallory's real key.
        forged = [_command(ControlType.CLEAR, agent_id="billing-bot", tenant="acme", clears_command_id=kill.command_id,
                           reason="all good")
                  for _ in range(3)]
        _forge(kafka, forged[0])
        _forge(kafka, forged[1], key=operators.stranger)
        _forge(kafka, forged[2], key=operators.mallory)
        assert wait_until(lambda: len(listener.refusals) == 3)
        reasons = sorted(r.reason for r in listener.refusals)
        assert any(r.startswith("unsigned") for r in reasons)
        assert any("unknown_key" in r and "stranger-1" in r for r in reasons)
        assert any("belongs to human:mallory, who may not sign for human:alice" in r for r in reasons)
        with pytest.raises(ActionBlocked, match="killed"):
            listener.check("billing-bot", "execute_tool", "payments.refund")  # still killed

        # Alice's own clear, signed: lifted.
        with ControlIssuer(kafka, key=operators.alice) as issuer:
            clear = issuer.clear(kill, actor="alice", note="root cause fixed")
        assert listener.wait_for(clear.command_id)
        listener.check("billing-bot", "execute_tool", "payments.refund")

    # The CLI and dashboard fold agree, and the sink stores one integrity incident per forgery.
    state = read_control_state(kafka, authority=operators.authority, timeout=15, idle=2)
    assert [c.command_id for c in state.history] == [kill.command_id, clear.command_id]
    rows = _sink_incidents(kafka, store_settings_factory(), group_factory(), operators.authority,
                           "integrity.unauthorized-command", 3)
    assert sorted(r[2] for r in rows) == sorted(c.command_id for c in forged)
    assert {r[3] for r in rows} == {"human:alice"} and {r[1] for r in rows} == {"acme"}


def test_a_forged_kill_of_every_agent_of_every_tenant_is_not_obeyed(
        kafka_settings_factory, group_factory, store_settings_factory, operators: Operators):
    kafka = kafka_settings_factory(partitions=2)
    # Unsigned; and one signed with the dashboard key for carol, whose kill grant covers tenant acme only.
    unsigned = _command(ControlType.KILL_AGENT, agent_id="*", tenant="", reason="lights out")
    overreach = _command(ControlType.KILL_AGENT, agent_id="*", tenant="", issuer="carol", reason="lights out")
    _forge(kafka, unsigned)
    _forge(kafka, overreach, key=operators.dashboard)
    listeners = [ControlListener(kafka, tenant=tenant, authority=operators.authority).start()
                 for tenant in ("acme", "globex")]
    try:
        for listener in listeners:
            assert wait_until(lambda listener=listener: len(listener.refusals) == 2)
            listener.check("any-agent", "execute_tool", "search")  # nobody stopped
        reasons = sorted(r.reason for r in listeners[0].refusals)
        assert reasons[0].startswith("human:carol holds no grant to kill on tenant '*'")
        assert reasons[1].startswith("unsigned")
        # Carol's real power is acme's agents: signed by the dashboard for her, obeyed there only.
        with ControlIssuer(kafka, key=operators.dashboard) as issuer:
            kill = issuer.kill("*", actor="carol", reason="acme incident", tenant="acme")
        for listener in listeners:
            assert wait_until(lambda listener=listener: kill.command_id in listener._admission._applied, 10)
        with pytest.raises(ActionBlocked, match="killed by human carol"):
            listeners[0].check("any-agent", "execute_tool", "search")
        listeners[1].check("any-agent", "execute_tool", "search")
    finally:
        for listener in listeners:
            listener.close()
    rows = _sink_incidents(kafka, store_settings_factory(), group_factory(), operators.authority,
                           "integrity.unauthorized-command", 2)
    assert sorted(r[2] for r in rows) == sorted([unsigned.command_id, overreach.command_id])


def test_a_forged_promotion_does_not_move_a_rule_back_to_detect(
        kafka_settings_factory, group_factory, store_settings_factory, operators: Operators):
    kafka = kafka_settings_factory(partitions=1)
    promote = {"rule_id": "security.forbidden-tool", "to_mode": "detect", "note": "noisy"}
    unsigned = _command(ControlType.PROMOTE_RULE, agent_id="", attributes=promote)
    by_mallory = _command(ControlType.PROMOTE_RULE, agent_id="", issuer="mallory", attributes=promote)
    by_rules = _command(ControlType.PROMOTE_RULE, agent_id="", issuer="agentaudit-rules",
                        issuer_type=ActorType.SYSTEM, attributes=promote)  # the rules' key may kill, not promote
    _forge(kafka, unsigned)
    _forge(kafka, by_mallory, key=operators.mallory)
    _forge(kafka, by_rules, key=operators.rules)
    with ControlListener(kafka, agents=(), authority=operators.authority) as listener:
        assert wait_until(lambda: len(listener.refusals) == 3)
        assert listener.rule_mode("security.forbidden-tool") is None  # the rule file's mode (enforce) stands
        with ControlIssuer(kafka, key=operators.alice) as issuer:
            real = issuer.promote("security.forbidden-tool", to="simulate", actor="alice", note="trial")
        assert listener.wait_for(real.command_id)
        assert listener.rule_mode("security.forbidden-tool").value == "simulate"
    rows = _sink_incidents(kafka, store_settings_factory(), group_factory(), operators.authority,
                           "integrity.unauthorized-command", 3)
    assert sorted(r[2] for r in rows) == sorted([unsigned.command_id, by_mallory.command_id, by_rules.command_id])
    assert {r[3] for r in rows} == {"human:alice", "human:mallory", "system:agentaudit-rules"}


def test_a_forged_resolved_by_alice_does_not_resolve_an_open_incident(
        kafka_settings_factory, group_factory, store_server, operators: Operators):
    kafka = kafka_settings_factory(partitions=1)
    store_settings, _ = seeded_database(store_server.url, big_trace_actions=5)
    codec = AvroCodec("incident_lifecycle")
    forged = [IncidentLifecycleEvent(event_id=str(uuid.uuid4()), incident_id="inc-critical-open", tenant="acme",
                                     type=LifecycleType.RESOLVED, actor=Actor(type=ActorType.HUMAN, id="alice"),
                                     note="nothing to see", at_us=_now()) for _ in range(2)]
    with KafkaProducer(kafka) as producer:
        value = codec.encode(forged[0].to_avro())
        producer.produce(kafka.topics.lifecycle, value, key=b"inc-critical-open")  # unsigned
        value = codec.encode(forged[1].to_avro())
        producer.produce(kafka.topics.lifecycle, value, key=b"inc-critical-open",  # mallory's key, alice's name
                         headers=sign_headers(operators.mallory, "lifecycle", kafka.topics.lifecycle, value))
        assert producer.flush(10) == 0
    # Legitimate acts through the dashboard's service key, for the signed-in person: bob may acknowledge
    # on acme, not resolve.
    with LifecyclePublisher(kafka, key=operators.dashboard) as publisher:
        acked = publisher.acknowledge("inc-critical-open", actor="bob", tenant="acme", note="on it")
        overreach = publisher.resolve("inc-critical-open", actor="bob", tenant="acme", note="done?")
    rows = _sink_incidents(kafka, store_settings, group_factory(), operators.authority,
                           "integrity.unauthorized-lifecycle", 3)
    assert sorted(r[2] for r in rows) == sorted([forged[0].event_id, forged[1].event_id, overreach.event_id])
    with connect(store_settings, readonly=True) as reader:
        history = q.lifecycle_history(reader, "inc-critical-open")
        assert list(history["event_id"]) == [acked.event_id]
        state = q.incident(reader, "inc-critical-open")
        assert (state["status"], state["acknowledged_by"], state["resolved_by"]) == ("acknowledged", "bob", "")
    # Alice, signed by the dashboard on her behalf, resolves it.
    with LifecyclePublisher(kafka, key=operators.dashboard) as publisher:
        resolved = publisher.resolve("inc-critical-open", actor="alice", tenant="acme", note="tool revoked")
    settings = SinkSettings(group=group_factory(), batch_timeout_ms=200, session_timeout_ms=6000,
                            heartbeat_interval_ms=1000, digests=False)
    with Sink(kafka, store_settings, settings, authority=operators.authority) as sink, \
            connect(store_settings, readonly=True) as reader:
        assert wait_until(lambda: sink.run_once() is not None and
                          q.incident(reader, "inc-critical-open")["status"] == "resolved", 40, 0)
        assert resolved.event_id in list(q.lifecycle_history(reader, "inc-critical-open")["event_id"])


def test_a_clear_must_name_an_earlier_command_and_may_arrive_before_it(kafka_settings_factory,
                                                                        operators: Operators):
    kafka = kafka_settings_factory(partitions=2)
    value_codec = AvroCodec("control")
    with ControlListener(kafka, tenant="acme", authority=operators.authority) as listener:
        assert listener.wait_ready(10)
        # 1. A clear signed by alice that arrives before its kill (other partition): held, then applied.
        kill = _command(ControlType.KILL_AGENT, agent_id="bot-1", tenant="acme", reason="r")
        clear = _command(ControlType.CLEAR, agent_id="bot-1", tenant="acme", clears_command_id=kill.command_id,
                         issued_at_us=kill.issued_at_us + 1_000)
        _forge(kafka, clear, key=operators.alice, partition=1)
        assert wait_until(lambda: listener._admission.held == 1)
        _forge(kafka, kill, key=operators.alice, partition=0)
        assert listener.wait_for(clear.command_id)
        listener.check("bot-1", "execute_tool", "search")
        # 2. A backdated clear (alice's key, issued before the kill it names) is refused: the kill stands.
        kill2 = _command(ControlType.KILL_AGENT, agent_id="bot-2", tenant="acme", reason="r")
        early = _command(ControlType.CLEAR, agent_id="bot-2", tenant="acme", clears_command_id=kill2.command_id,
                         issued_at_us=kill2.issued_at_us - 1_000_000)
        _forge(kafka, kill2, key=operators.alice, partition=0)
        assert listener.wait_for(kill2.command_id)
        _forge(kafka, early, key=operators.alice, partition=0)
        # 3. A clear naming no command at all (no clears_command_id) is refused.
        blanket = _command(ControlType.CLEAR, agent_id="bot-2", tenant="acme")
        _forge(kafka, blanket, key=operators.alice, partition=0)
        # 4. A clear of acme's kill that carol (acme only) signs as tenant globex... refused: wrong tenant.
        cross = _command(ControlType.CLEAR, agent_id="bot-2", tenant="globex", clears_command_id=kill2.command_id)
        _forge(kafka, cross, key=operators.alice, partition=0)
        assert wait_until(lambda: len(listener.refusals) == 3)
        reasons = [r.reason for r in listener.refusals]
        assert "not before the clear" in reasons[0]
        assert "must name the command it lifts" in reasons[1]
        assert "not of the clear's tenant 'globex'" in reasons[2]
        with pytest.raises(ActionBlocked):
            listener.check("bot-2", "execute_tool", "search")
        # 5. Replays: alice's signed kill of bot-1, re-sent byte for byte after its clear, stays cleared.
        value = value_codec.encode(kill.to_avro())
        with KafkaProducer(kafka) as producer:
            producer.produce(kafka.topics.control, value, key=b"bot-1", partition=1,
                             headers=sign_headers(operators.alice, "control", kafka.topics.control, value))
            producer.flush(10)
        time.sleep(1.0)
        listener.check("bot-1", "execute_tool", "search")
        assert len(listener.refusals) == 3  # a replay is ignored, not an incident


ENFORCE_RULES = """\
required_engine_version: 1
rules:
  - id: pub.shell
    desc: Shells are blocked for the agent that tried.
    condition: kind = execute_tool and phase = start and name = "shell.exec"
    output: "{agent_id} ran {name}"
    severity: high
    mode: enforce
    tags: [stable, "control:block_tool"]
"""


def test_enforcement_signed_by_the_rules_service_is_obeyed_and_the_same_unsigned_is_not(
        kafka_settings_factory, tmp_path: Path, operators: Operators):
    from agentaudit.consumers.control_publisher import (
        ControlPublisher,
        ControlPublisherSettings,
    )
    from agentaudit.rules import RuleEvaluator, load_rule_set
    from tests.control_support import action_record, write_rules

    kafka = kafka_settings_factory(partitions=1)
    rules = str(write_rules(tmp_path, ENFORCE_RULES))
    signed = ControlPublisher(RuleEvaluator(load_rule_set(rules)), kafka, ControlPublisherSettings(ttl_s=120),
                              key=operators.rules)
    unsigned = ControlPublisher(RuleEvaluator(load_rule_set(rules)), kafka, ControlPublisherSettings(ttl_s=120))
    with ControlListener(kafka, tenant="acme", authority=operators.authority) as listener:
        assert listener.wait_ready(10)
        unsigned.evaluate([action_record(agent_id="bot-u", name="shell.exec")])  # as a forger would publish
        signed.evaluate([action_record(agent_id="bot-s", name="shell.exec")])
        unsigned.close()
        signed.close()
        [command] = signed.published
        assert listener.wait_for(command.command_id, 10)
        with pytest.raises(ActionBlocked, match="blocked by system agentaudit-rules"):
            listener.check("bot-s", "execute_tool", "shell.exec")
        assert wait_until(lambda: len(listener.refusals) == 1)
        assert listener.refusals[0].reason.startswith("unsigned")
        listener.check("bot-u", "execute_tool", "shell.exec")

