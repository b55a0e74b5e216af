"""The control plane end to end through the real broker (and the real store for the sink):
enforce pauses and a human clear resumes; the kill switch within a measured delay; simulate never blocks."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentaudit.consumers.control_publisher import ControlPublisher, ControlPublisherSettings
from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.control import ActionBlocked, ControlIssuer, ControlListener, read_control_state
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.kafka import KafkaProducer
from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.schemas import AvroCodec, ControlType, RuleMode, StreamChain
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.authority_support import Operators, make_operators
from tests.control_support import action_record, write_rules
from tests.fixtures.broker import test_consumer_config

pytestmark = [pytest.mark.integration, pytest.mark.broker]

PIPELINE_RULES = """\
required_engine_version: 1
rules:
  - id: ctl.drop-table
    desc: Dropping tables is forbidden; stop the agent.
    condition: kind = execute_tool and phase = start and name = "db.drop_table"
    output: "{agent_id} tried {name}"
    severity: critical
    mode: {mode}
    tags: [stable, security]
"""


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.005) -> float:
    """Seconds until ``condition()`` held; fails the test after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(step)
    return time.monotonic() - start


def blocked(listener: ControlListener, agent: str, tool: str = "search") -> ActionBlocked | None:
    try:
        listener.check(agent, "execute_tool", tool)
    except ActionBlocked as exc:
        return exc
    return None


@pytest.fixture
def listener_factory(kafka_settings_factory) -> Iterator[Callable[..., ControlListener]]:
    started: list[ControlListener] = []

    def make(settings: KafkaSettings, **kwargs) -> ControlListener:
        listener = ControlListener(settings, **kwargs).start()
        started.append(listener)
        assert listener.wait_ready(15)
        return listener

    yield make
    for listener in started:
        listener.close()


class Agent:
    """A minimal agent: asks the control plane, then emits its tool call's start event."""

    def __init__(self, kafka: KafkaSettings, listener: ControlListener, agent_id: str) -> None:
        self.kafka, self.listener, self.agent_id = kafka, listener, agent_id
        self.codec = AvroCodec("action")
        self.chain = StreamChain(f"{agent_id}-stream")
        self.producer = KafkaProducer(kafka, {"linger.ms": 0})
        self.ran: list[str] = []

    def call(self, tool: str) -> None:
        self.listener.check(self.agent_id, "execute_tool", tool)
        record = action_record(agent_id=self.agent_id, name=tool, stream_id=self.chain.stream_id)
        self.producer.produce(self.kafka.topics.actions, self.chain.seal(record, self.codec),
                              key=self.chain.stream_id.encode())
        self.producer.flush(10)
        self.ran.append(tool)


@pytest.fixture
def pipeline(kafka_settings_factory, store_settings_factory, group_factory, tmp_path: Path):
    """``start(mode) -> (kafka, store_settings, publisher)``: a sink with the control publisher, running."""
    stops: list[tuple[threading.Event, threading.Thread, Sink]] = []

    def start(mode: str, operators: Operators | None = None) -> tuple[KafkaSettings, StoreSettings, ControlPublisher]:
        kafka = kafka_settings_factory(partitions=1)
        store = store_settings_factory()
        migrate(store)
        rules = write_rules(tmp_path, PIPELINE_RULES.replace("{mode}", mode), name=f"{mode}.yaml")
        publisher = ControlPublisher(RuleEvaluator(load_rule_set(str(rules))), kafka,
                                     ControlPublisherSettings(ttl_s=600), key=operators.rules if operators else None)
        sink = Sink(kafka, store, SinkSettings(group=group_factory(), session_timeout_ms=6000,
                                               heartbeat_interval_ms=1000, batch_timeout_ms=50), publisher,
                    authority=operators.authority if operators else None)
        stop = threading.Event()
        thread = threading.Thread(target=sink.run, args=(stop,), daemon=True)
        thread.start()
        stops.append((stop, thread, sink))
        return kafka, store, publisher

    yield start
    for stop, thread, sink in stops:
        stop.set()
        thread.join(30)
        sink.evaluator.close()  # type: ignore[attr-defined]  # the durable evaluator this test built


def test_enforce_rule_pauses_the_agent_and_a_human_clear_resumes_it(pipeline, listener_factory, tmp_path) -> None:
    # Signed end to end: the consumer's rules key signs the pause, alice's key the clear; the agent obeys
    # only what the authority admits.
    (tmp_path / "authority").mkdir()
    operators = make_operators(tmp_path / "authority")
    kafka, store_settings, publisher = pipeline("enforce", operators)
    listener = listener_factory(kafka, agents=["bot-1"], authority=operators.authority)
    agent = Agent(kafka, listener, "bot-1")
    agent.call("search")
    with connect(store_settings) as store:  # the sink is up and has stored the first event
        joined = wait_until(lambda: store.query("SELECT count() FROM actions").rows[0][0] > 0, timeout=60, step=0.02)
    sent = time.monotonic()
    agent.call("db.drop_table")  # allowed by the control plane (no guard here): the consumer judges it
    delay = wait_until(lambda: blocked(listener, "bot-1") is not None, timeout=60)
    print(f"\nenforce: offending event -> sink (batch_timeout 50 ms, store insert) -> rule -> control topic -> "
          f"agent paused in {delay * 1000:.0f} ms (sink start-up incl. group join took {joined * 1000:.0f} ms)")
    error = blocked(listener, "bot-1")
    assert error is not None and error.code == "paused"
    with pytest.raises(ActionBlocked):
        agent.call("search")
    assert agent.ran == ["search", "db.drop_table"]
    [command] = publisher.published
    assert command.type is ControlType.PAUSE_AGENT and command.issuer.type.value == "system"
    assert error.incident_id == command.incident_id and error.command_id == command.command_id
    assert command.expires_at_us is not None and command.reason.startswith("rule ctl.drop-table")
    assert blocked(listener, "bot-2") is None  # other agents run on

    with connect(store_settings) as store:
        wait_until(lambda: store.query("SELECT count() FROM incidents FINAL").rows[0][0] > 0, timeout=30, step=0.2)
        mode, attrs = store.query("SELECT mode, attributes FROM incidents FINAL WHERE incident_id = "
                                  f"'{command.incident_id}'").rows[0]
    assert mode == "enforce" and attrs["control_command_id"] == command.command_id

    with ControlIssuer(kafka, key=operators.alice) as issuer:
        clear = issuer.clear(command, actor="alice", note="false alarm, table was a scratch copy")
    resumed = wait_until(lambda: blocked(listener, "bot-1") is None, timeout=10)
    print(f"human clear -> agent resumed in {resumed * 1000:.1f} ms")
    agent.call("search")
    assert listener.refusals == []
    state = read_control_state(kafka, authority=operators.authority)
    assert state.active(time.time_ns() // 1000) == []
    assert state.cleared_by(command.command_id).issuer.id == "alice"
    assert clear.attributes["note"].startswith("false alarm")
    wall = time.monotonic() - sent
    assert wall < 90


def test_kill_switch_stops_an_agent_within_a_measured_delay(kafka_settings_factory, listener_factory) -> None:
    kafka = kafka_settings_factory(partitions=3)
    listener = listener_factory(kafka, agents=["bot-1", "bot-2"])
    delays: list[float] = []
    with ControlIssuer(kafka) as issuer:
        for i in range(5):
            started = time.monotonic()
            kill = issuer.kill("bot-1", actor="oncall-bob", reason=f"drill {i}")
            wait_until(lambda: blocked(listener, "bot-1") is not None, timeout=10)
            delays.append(time.monotonic() - started)  # includes waiting for the broker's acknowledgement
            error = blocked(listener, "bot-1")
            assert error.code == "killed" and error.command_id == kill.command_id and "oncall-bob" in str(error)
            assert blocked(listener, "bot-2") is None
            issuer.clear(kill, actor="oncall-bob", note="drill over")
            wait_until(lambda: blocked(listener, "bot-1") is None, timeout=10)
    issued_to_applied = [(applied - issued) / 1000 for issued, applied in listener.arrivals.values()]
    print(f"\nkill switch: publish -> agent blocked, 5 runs: median {statistics.median(delays) * 1000:.1f} ms, "
          f"max {max(delays) * 1000:.1f} ms; issued_at -> folded: median {statistics.median(issued_to_applied):.1f} ms")
    assert max(delays) < 5.0, "the kill switch must act within its documented bound"
    kills = [c for c in read_control_state(kafka).history if c.type is ControlType.KILL_AGENT]
    assert len(kills) == 5 and {c.issuer.id for c in kills} == {"oncall-bob"}


def test_a_restarted_agent_rebuilds_its_constraints_from_the_log(kafka_settings_factory, listener_factory) -> None:
    kafka = kafka_settings_factory(partitions=3)
    with ControlIssuer(kafka) as issuer:
        kill = issuer.kill("bot-1", actor="alice", reason="gone rogue")
        issuer.kill("bot-2", actor="alice", reason="expired already", ttl_s=0.001)
        block = issuer.publish(issuer.command(ControlType.BLOCK_TOOL, agent_id="bot-3", tool="shell.exec",
                                              actor="alice", reason="no shells"))
        issuer.clear(block, actor="alice")
    fresh = listener_factory(kafka, subscribe=True, config=test_consumer_config())  # a group, like production
    assert blocked(fresh, "bot-1").command_id == kill.command_id
    assert blocked(fresh, "bot-2") is None
    assert blocked(fresh, "bot-3", "shell.exec") is None


def test_simulate_mode_never_blocks_and_records_what_it_would_have_done(pipeline, listener_factory) -> None:
    kafka, store_settings, publisher = pipeline("simulate")
    listener = listener_factory(kafka, agents=["bot-1"])
    agent = Agent(kafka, listener, "bot-1")
    for _ in range(3):
        agent.call("db.drop_table")
    wait_until(lambda: bool(publisher.published), timeout=60, step=0.05)
    [command] = publisher.published
    assert command.simulated and command.type is ControlType.PAUSE_AGENT
    assert listener.wait_for(command.command_id, timeout=10)
    agent.call("search")  # still runs
    assert blocked(listener, "bot-1") is None
    assert agent.ran == ["db.drop_table"] * 3 + ["search"]
    listed = read_control_state(kafka)
    assert [c.command_id for c in listed.history] == [command.command_id] and listed.active(0) == []
    with connect(store_settings) as store:
        wait_until(lambda: store.query("SELECT count() FROM incidents FINAL").rows[0][0] > 0, timeout=30, step=0.2)
        mode, attrs = store.query("SELECT mode, attributes FROM incidents FINAL LIMIT 1").rows[0]
    assert mode == RuleMode.SIMULATE.value
    assert attrs["control_simulated"] == "true" and attrs["control_action"] == "pause_agent"
    assert attrs["control_target"] == "bot-1"


def test_unreachable_control_topic_fails_open_or_closed_as_configured(kafka_settings) -> None:
    from agentaudit.infra.embedded import free_port

    nowhere = kafka_settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    config = {"socket.timeout.ms": 1000, "reconnect.backoff.max.ms": 200}
    closed = ControlListener(nowhere, ready_timeout=1, fail_closed=True, config=config).start()
    open_ = ControlListener(nowhere, ready_timeout=1, config=config).start()
    try:
        with pytest.raises(ActionBlocked, match="control_unavailable"):
            closed.check("bot-1", "execute_tool", "search")
        open_.check("bot-1", "execute_tool", "search")  # runs: fail-open is the default
    finally:  # the readers are still waiting on the absent broker; they are daemon threads and give up alone
        closed.close(timeout=0.1)
        open_.close(timeout=0.1)
