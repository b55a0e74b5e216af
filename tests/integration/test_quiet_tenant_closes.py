"""One batch of 200 runs, then silence: every decision is made within lateness + idle timeout (issue 13, item 2).

Both judging paths, on the real broker (and the real store for the inline sink): ``agentaudit consume``
with inline rules (per-tenant idleness) and ``agentaudit rules run`` (source-partition idleness), on two
batches:

- ``compact``: 200 small runs within 1 s of event time, lateness 2 s, so when the last event arrives no
  decision is due yet: all of them (ancestor, absence, and a ratio per agent and 100 ms window) are made by
  idleness alone;
- ``conversations``: 200 conversation-mode runs (``conversation_runs``, 20 % breached, about 90 minutes of
  recorded history) judged by the one-confirmation-per-write policy (``sequence ... unless``) and an
  ``ancestor ... once`` rule, the batch ending with the last injected confirmation breach, whose two
  incidents only idleness can decide.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.rules_worker import RulesWorker
from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.kafka import KafkaProducer
from agentaudit.producers.simulator.conversation import conversation_runs
from agentaudit.rules import RuleEvaluator, load_evaluator, load_rule_set
from agentaudit.schemas import AvroCodec, StreamChain
from tests.fixtures.broker import test_consumer_config
from tests.sink_support import action_record

pytestmark = [pytest.mark.integration, pytest.mark.broker]

LATENESS_S, IDLE_S = 2.0, 1.0
SLACK_S = 1.5  # polling (batch timeout 0.3 s, quiet check 0.25 s, markers about once a second) and the writes
RUNS = 200
UNAPPROVED = [i for i in range(RUNS) if i % 10 == 7]  # a write without the user's approval: ancestor
HUNG = [i for i in range(RUNS // 2) if i % 20 == 3]  # a tool call that never returns: absence (deadline < last event)
RULES = """
rules:
  - id: quiet.unapproved-write
    desc: A booking write without a human approval earlier in its run.
    condition: "kind = execute_tool and name = 'book_reservation' and phase = end"
    ancestor: {approval: kind = approval and actor_type = human, within: 10m}
    by: [trace_id]
    output: "{name} without approval"
    severity: high
    tags: [sandbox]
  - id: quiet.hung-call
    desc: A tool call that did not end within 500 ms.
    condition: kind = execute_tool and phase = start
    absence: {within: 500ms}
    by: [trace_id]
    output: "{name} did not return within {within}"
    severity: medium
    tags: [sandbox]
  - id: quiet.write-ratio
    desc: Share of an agent's writes that succeeded, per 100 ms window (a ratio is decided when its window closes).
    condition: "kind = execute_tool and name = 'book_reservation'"
    aggregate: {fn: ratio, where: "status = ok", threshold: 0.5}
    by: [agent_id]
    window: 100ms
    output: "{agent_id}: {value:.0%} of {count} writes succeeded"
    severity: low
    tags: [sandbox]
"""


def batch() -> list[tuple[dict, bytes]]:
    """200 runs 5 ms apart in event time (1 s in all), ending now; one producer stream per run."""
    codec = AvroCodec("action")
    start = time.time_ns() // 1000 - RUNS * 5_000
    out = []
    for i in range(RUNS):
        t = start + i * 5_000
        trace, root = f"trace-{i}", f"root-{i}"
        common = {"tenant": "acme", "agent_id": f"agent-{i % 4}", "run_id": f"run-{i}", "trace_id": trace,
                  "stream_id": f"stream-{i}-{uuid.uuid4().hex[:6]}", "attributes": {}}
        events = [dict(kind="invoke_agent", name="support", phase="start", action_id=root, start_time_us=t,
                       end_time_us=t, event_time_us=t)]
        if i in HUNG:
            events.append(dict(kind="execute_tool", name="search", phase="start", action_id=f"hung-{i}",
                               parent_action_id=root, start_time_us=t + 1, end_time_us=t + 1, event_time_us=t + 1))
        if i not in UNAPPROVED:
            events.append(dict(kind="approval", name="confirm", phase="point", action_id=f"yes-{i}",
                               parent_action_id=root, actor={"type": "human", "id": "user"},
                               start_time_us=t + 2, end_time_us=t + 2, event_time_us=t + 2))
        events.append(dict(kind="execute_tool", name="book_reservation", phase="end", action_id=f"write-{i}",
                           parent_action_id=root, start_time_us=t + 3, end_time_us=t + 4, event_time_us=t + 4))
        chain = StreamChain(common["stream_id"])
        for n, fields in enumerate(events):
            record = action_record(i * 10 + n, **{**common, **fields})
            out.append((record, chain.seal(record, codec)))
    return out


def expected(events: list[tuple[dict, bytes]]) -> set[tuple[str, str]]:
    """Ancestor and absence incidents per run; one ratio incident per agent and 100 ms window, named by the
    trace of its latest write (the last window ends at most 100 ms after the last event)."""
    latest: dict[tuple[str, int], dict] = {}
    for r, _ in events:
        if r["name"] == "book_reservation":
            group = (r["agent_id"], r["event_time_us"] // 100_000)
            if group not in latest or r["event_time_us"] > latest[group]["event_time_us"]:
                latest[group] = r
    return ({("quiet.unapproved-write", f"trace-{i}") for i in UNAPPROVED}
            | {("quiet.hung-call", f"trace-{i}") for i in HUNG}
            | {("quiet.write-ratio", r["trace_id"]) for r in latest.values()})


POLICY = Path(__file__).parents[2] / "agentaudit" / "rules" / "pack" / "examples" / "confirm-each-write.yaml"
ONCE = """
rules:
  - id: quiet.write-needs-its-own-approval
    desc: each write needs an approval of its own arguments, used once
    condition: kind = execute_tool and phase = start and name in ("book_reservation", "update_reservation")
    ancestor: {approval: kind = approval and actor_type = human, within: 1h, bind: args_hash, once: true}
    by: [trace_id]
    output: "{name}: {detail}"
    severity: high
    tags: [sandbox]
"""
CONFIRMATION_BREACHES = ("unconfirmed_write", "write_after_refusal", "double_write")


def conversations() -> tuple[list[tuple[dict, bytes]], set[tuple[str, str]]]:
    """200 conversations of recorded history, cut after the last confirmation breach; the incidents due."""
    codec = AvroCodec("action")
    corpus = conversation_runs(RUNS, breach_rate=0.2, start_us=(int(time.time()) - 3 * 3600) * 1_000_000)
    breaches = [b for b in corpus.breaches if b.kind in CONFIRMATION_BREACHES]
    ids = {b.event_id for b in breaches}
    cut = max(i for i, r in enumerate(corpus.records) if r["event_id"] in ids) + 1
    events = []
    for r in corpus.records[:cut]:
        record = {k: v for k, v in r.items() if k not in ("event_hash", "_partition", "_offset")}
        events.append((record, codec.encode(record)))
    rules = ("conversation.write-without-confirmation", "quiet.write-needs-its-own-approval")
    return events, {(rule, b.trace_id) for b in breaches for rule in rules}


def corpus(name: str, tmp_path: Path) -> tuple[list[str], list[tuple[dict, bytes]], set[tuple[str, str]]]:
    """Rule files, the batch and the (rule id, trace id) of every incident due."""
    if name == "compact":
        path = tmp_path / "quiet.yaml"
        path.write_text(RULES, encoding="utf-8")
        events = batch()
        return [str(path)], events, expected(events)
    path = tmp_path / "once.yaml"
    path.write_text(ONCE, encoding="utf-8")
    events, due = conversations()
    return [str(POLICY), str(path)], events, due


def produce(kafka, events: list[tuple[dict, bytes]]) -> float:
    """Send every event; the processing time when the broker has acknowledged the last one."""
    with KafkaProducer(kafka) as producer:
        for record, data in events:
            producer.produce(kafka.topics.actions, data, key=record["stream_id"].encode())
        producer.flush()
    return time.monotonic()


BATCHES = ["compact", "conversations"]


def report(path: str, name: str, events: int, due: int, acked: float, last_event: float,
           last_incident: float) -> None:
    print(f"\n[{path}, {name}] lateness {LATENESS_S:.0f} s, idle timeout {IDLE_S:.0f} s, {RUNS} runs, {events} "
          f"events, {due} incidents: last incident {last_incident - last_event:.2f} s after the last event "
          f"was read ({last_incident - acked:.2f} s after the broker acknowledged it); bound "
          f"{LATENESS_S + IDLE_S:.0f} s")


def assert_waited_out_lateness(quiet_since: float, decided: float, tolerance_s: float = 0.3) -> None:
    """Idleness did not decide early: the last decisions came at least the allowed lateness after the
    delivery their quiet time counts from."""
    assert decided - quiet_since >= LATENESS_S - tolerance_s, \
        f"the last decisions waited {decided - quiet_since:.2f} s, less than the allowed lateness"


@pytest.mark.parametrize("name", BATCHES)
def test_inline_consume_closes_every_decision_of_a_quiet_tenant(
        kafka_settings_factory: Callable, group_factory, store_settings_factory: Callable, tmp_path: Path,
        name: str) -> None:
    rule_files, events, due = corpus(name, tmp_path)
    kafka = kafka_settings_factory(partitions=3)
    store_settings = store_settings_factory()
    migrate(store_settings)
    evaluator = load_evaluator(rule_files, lateness_us=int(LATENESS_S * 1e6))
    settings = SinkSettings(group=group_factory("quiet"), session_timeout_ms=6000, heartbeat_interval_ms=1000,
                            batch_timeout_ms=300, idle_timeout_ms=int(IDLE_S * 1000), digests=False)
    query = "SELECT rule_id, trace_id FROM incidents FINAL WHERE rule_id != 'rule_error'"
    with Sink(kafka, store_settings, settings, evaluator) as sink, connect(store_settings) as store:
        deadline = time.monotonic() + 30
        while not sink.assignment and time.monotonic() < deadline:  # join the group before the batch
            sink.run_once()
        acked = produce(kafka, events)
        consumed, last_event, last_read_began = 0, 0.0, 0.0
        while consumed < len(events):
            began = time.monotonic()  # the last delivery happened after this: the lower bound's start
            consumed += sink.run_once().consumed
            last_event, last_read_began = time.monotonic(), began
            assert last_event - acked < 30, f"consumed {consumed} of {len(events)}"
        stored = {tuple(row) for row in store.query(query).rows}
        assert len(stored) < len(due), "decided before the tenant went quiet: the test proves nothing"
        while True:
            sink.run_once()
            stored = {tuple(row) for row in store.query(query).rows}
            now = time.monotonic()
            if stored >= due:
                break
            assert now - last_event < LATENESS_S + IDLE_S + SLACK_S, \
                f"{len(due - stored)} of {len(due)} incidents missing {now - last_event:.1f} s after the last event"
    assert stored == due
    report("consume", name, len(events), len(due), acked, last_event, now)
    # one tenant, quiet since its last delivery: in the call that read the last event. Timed from before that
    # call (its end, a store write and a commit on Apache Kafka, is after the delivery), so the wait cannot
    # look shorter.
    assert_waited_out_lateness(last_read_began, now)


@pytest.mark.parametrize("name", BATCHES)
def test_rules_run_closes_every_decision_when_all_partitions_go_quiet(
        kafka_settings_factory: Callable, group_factory, tmp_path: Path, name: str) -> None:
    rule_files, events, due = corpus(name, tmp_path)
    kafka = kafka_settings_factory(partitions=3)
    evaluator = RuleEvaluator(load_rule_set(rule_files), lateness_us=int(LATENESS_S * 1e6))
    worker = RulesWorker(kafka, evaluator, group=group_factory("quiet"), batch_size=500,
                         consumer_config=test_consumer_config(**{"auto.offset.reset": "earliest"}),
                         idle_timeout_ms=int(IDLE_S * 1000))

    def published() -> set[tuple[str, str]]:
        return {(i.rule_id, i.trace_id) for i in worker.incidents.values()}

    try:
        deadline = time.monotonic() + 30
        while not all(worker.assignment()) and time.monotonic() < deadline:
            worker.run_once()
        acked = produce(kafka, events)
        copied, last_event = 0, 0.0
        while worker.evaluated < len(events):  # the re-key stage reads the last event first: time it there
            if copied < len(events):
                copied += worker.rekey_once()
                last_event = time.monotonic()
            worker.judge_once()
            assert time.monotonic() - acked < 30, f"copied {copied}, judged {worker.evaluated} of {len(events)}"
        quiet_since = worker.idleness.last_deliveries()
        assert quiet_since, "no source partition delivered an event"
        assert len(published()) < len(due), "decided before the partitions went quiet"
        while not published() >= due:
            worker.run_once()
            now = time.monotonic()
            assert now - last_event < LATENESS_S + IDLE_S + SLACK_S, \
                f"{len(due - published())} of {len(due)} incidents missing {now - last_event:.1f} s after the last event"
        now = time.monotonic()
    finally:
        worker.close()
    assert published() == due
    report("rules run", name, len(events), len(due), acked, last_event, now)
    # Each source partition's event time moves on from its own last delivery, and the one that decides may
    # have gone quiet a batch before the last event was read from another: time the wait from the earliest
    # of those deliveries. Every batch is in event-time order and its last decision is due at or after its
    # last event, so no source's maximum is past it and a quiet time of the lateness is still needed.
    assert_waited_out_lateness(min(quiet_since.values()), now, tolerance_s=0.0)


@pytest.mark.parametrize("guarded", [True, False])
def test_a_backlog_is_never_quiet(kafka_settings_factory: Callable, group_factory, store_settings_factory: Callable,
                                  tmp_path: Path, monkeypatch, guarded: bool) -> None:
    """Tenant A's write comes first in the log, its approval (50 ms earlier in event time) after 600 events of
    tenant B. Reading that backlog takes longer than the idle timeout, yet A is not quiet while records are
    unread, so the approval still counts. Without the read-to-end guard (``guarded=False``) A would go quiet
    and its write be judged unapproved: the guard is what this test sees."""
    if not guarded:
        monkeypatch.setattr(Sink, "_read_to_end", lambda self, consumer: True)
    codec = AvroCodec("action")
    t0 = time.time_ns() // 1000 - 10_000_000

    def sealed(stream: str, records: list[dict]) -> list[tuple[dict, bytes]]:
        chain = StreamChain(stream)
        return [(r, chain.seal(r, codec)) for r in records]

    a = {"tenant": "tenant-a", "agent_id": "agent-a", "trace_id": "trace-a", "run_id": "run-a", "attributes": {}}
    head = sealed("a-1", [
        action_record(0, **a, stream_id="a-1", kind="invoke_agent", name="support", phase="start",
                      action_id="root-a", start_time_us=t0, end_time_us=t0, event_time_us=t0),
        action_record(1, **a, stream_id="a-1", kind="execute_tool", name="book_reservation", phase="end",
                      action_id="write-a", parent_action_id="root-a", start_time_us=t0 + 100_000,
                      end_time_us=t0 + 100_000, event_time_us=t0 + 100_000)])
    b = sealed("b-1", [action_record(10 + n, tenant="tenant-b", stream_id="b-1", kind="chat", name="gpt",
                                     phase="end", event_time_us=t0 + n * 1_000, attributes={})
                       for n in range(600)])
    tail = sealed("a-2", [action_record(2, **a, stream_id="a-2", kind="approval", name="confirm", phase="point",
                                        action_id="yes-a", parent_action_id="root-a",
                                        actor={"type": "human", "id": "user"}, start_time_us=t0 + 50_000,
                                        end_time_us=t0 + 50_000, event_time_us=t0 + 50_000)])
    events = head + b + tail
    path = tmp_path / "quiet.yaml"
    path.write_text(RULES, encoding="utf-8")
    kafka = kafka_settings_factory(partitions=1)  # one partition: the log order above is the reading order
    store_settings = store_settings_factory()
    migrate(store_settings)
    with KafkaProducer(kafka) as producer:
        for _record, data in events:
            producer.produce(kafka.topics.actions, data, key=b"one")
        producer.flush()
    evaluator = load_evaluator([str(path)], lateness_us=100_000)
    settings = SinkSettings(group=group_factory("backlog"), session_timeout_ms=6000, heartbeat_interval_ms=1000,
                            batch_timeout_ms=300, batch_size=50, idle_timeout_ms=300, digests=False)
    began = time.monotonic()
    with Sink(kafka, store_settings, settings, evaluator,
              on_after_insert=lambda _result: time.sleep(0.1)) as sink, connect(store_settings) as store:
        consumed, first = 0, 0.0  # a slow store (0.1 s per batch of 50): the backlog takes over 1 s to read
        while consumed < len(events):
            consumed += sink.run_once().consumed
            first = first or (time.monotonic() if consumed else 0.0)
            assert time.monotonic() - began < 60
        read = time.monotonic() - first
        for _ in range(10):
            sink.run_once()
        rows = [tuple(r) for r in store.query(
            "SELECT rule_id, trace_id FROM incidents FINAL WHERE rule_id = 'quiet.unapproved-write'").rows]
    print(f"\n[backlog, guarded={guarded}] read {len(events)} events in {read:.1f} s; incidents {rows}")
    assert read > 3 * settings.idle_timeout_ms / 1000, "read faster than the idle timeout: the test proves nothing"
    assert rows == ([] if guarded else [("quiet.unapproved-write", "trace-a")])


def test_inline_state_restored_after_a_restart_closes_when_the_tenant_stays_quiet(
        kafka_settings_factory: Callable, group_factory, store_settings_factory: Callable, tmp_path: Path) -> None:
    """``consume --state-dir``: the first sink stops before the tenant's decisions are due (idleness off); the
    restarted sink reads nothing more, yet the restored tenant counts as quiet since the start and its
    incidents are stored within lateness + idle timeout of that start."""
    from agentaudit.consumers.rule_state import PartitionEvaluators, PartitionStateStore

    rule_files, events, due = corpus("compact", tmp_path)
    kafka = kafka_settings_factory(partitions=1)  # per-partition state: one partition keeps the tenant's events together
    store_settings = store_settings_factory()
    migrate(store_settings)
    produce(kafka, events)
    group = group_factory("restart")
    query = "SELECT rule_id, trace_id FROM incidents FINAL WHERE rule_id LIKE 'quiet.%'"

    def sink(idle_timeout_ms: int) -> Sink:
        partitions = PartitionEvaluators(lambda: load_evaluator(rule_files, lateness_us=int(LATENESS_S * 1e6)),
                                         PartitionStateStore(tmp_path / "state"), group)
        return Sink(kafka, store_settings, SinkSettings(
            group=group, session_timeout_ms=6000, heartbeat_interval_ms=1000, batch_timeout_ms=300,
            idle_timeout_ms=idle_timeout_ms, digests=False), partitions=partitions)

    with sink(0) as first, connect(store_settings) as store:
        consumed, began = 0, time.monotonic()
        while consumed < len(events):
            consumed += first.run_once().consumed
            assert time.monotonic() - began < 30
        time.sleep(LATENESS_S + IDLE_S)
        first.run_once()
        assert {tuple(r) for r in store.query(query).rows} == set(), "idleness off: nothing decided yet"
    with sink(int(IDLE_S * 1000)) as second, connect(store_settings) as store:
        started = time.monotonic()
        while {tuple(r) for r in store.query(query).rows} != due:
            assert second.run_once().consumed == 0, "resumed at the committed offsets"
            assert time.monotonic() - started < LATENESS_S + IDLE_S + SLACK_S + 10, "not decided after the restart"
        took = time.monotonic() - started
    print(f"\n[consume restart] {len(due)} restored decisions stored {took:.2f} s after the restart (group join "
          f"included; bound {LATENESS_S + IDLE_S:.0f} s after the start)")
