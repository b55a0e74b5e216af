"""`agentaudit notify` on the real embedded broker and store, with real HTTP receivers on loopback:
payload shape per route kind, deep link, escalation, dedup, retry after a 500, exactly once across a
receiver outage and a notifier restart, and the latency from a stored incident to its owner's receiver."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.notify import Notifier, NotifySettings, verify_signature
from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.kafka import KafkaProducer, read_all
from agentaudit.rules.owners import load_owners
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.fixtures.broker import test_consumer_config
from tests.notify_support import (
    INCIDENT_CODEC,
    LIFECYCLE_CODEC,
    Receiver,
    incident_record,
    lifecycle_record,
    owners_file,
)
from tests.sink_support import framed_events

pytestmark = [pytest.mark.integration, pytest.mark.broker]

SECRET = "s3cret-s3cret-s3cret"
DASHBOARD = "https://audit.example.com"


def notify_settings(state_dir: Path, group: str, **fields) -> NotifySettings:
    base = {"state_dir": state_dir, "group": group, "dashboard_url": DASHBOARD, "timeout_s": 2.0,
            "retry_initial_s": 0.05, "retry_max_s": 0.4, "attempts": 3, "batch_timeout_ms": 100,
            "consumer_config": test_consumer_config()}
    return NotifySettings(**{**base, **fields})


@contextmanager
def running(notifier: Notifier) -> Iterator[Notifier]:
    stop = threading.Event()
    thread = threading.Thread(target=notifier.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield notifier
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "the notifier did not stop"


def publish(kafka: KafkaSettings, *, incidents=(), lifecycle=()) -> None:
    with KafkaProducer(kafka) as producer:
        for record in incidents:
            producer.produce(kafka.topics.incidents, INCIDENT_CODEC.encode(record), key=record["incident_id"].encode())
        for record in lifecycle:
            producer.produce(kafka.topics.lifecycle, LIFECYCLE_CODEC.encode(record), key=record["incident_id"].encode())


def notified_events(kafka: KafkaSettings, expected: int) -> list[dict]:
    messages = read_all(kafka, kafka.topics.lifecycle, expected=expected, timeout=15, idle=2)
    records = [LIFECYCLE_CODEC.decode(m.value()) for m in messages]
    return [r for r in records if r["type"] == "notified"]


@pytest.fixture
def receivers() -> Iterator[dict[str, Receiver]]:
    started = {kind: Receiver().start() for kind in ("slack", "pagerduty", "alertmanager", "webhook")}
    yield started
    for receiver in started.values():
        receiver.stop()


def four_routes(r: dict[str, Receiver]) -> list[dict]:
    return [{"kind": "slack", "url": r["slack"].url},
            {"kind": "pagerduty", "routing_key": "R0UTINGKEY", "url": r["pagerduty"].url},
            {"kind": "alertmanager", "url": r["alertmanager"].url},
            {"kind": "webhook", "url": r["webhook"].url, "secret": SECRET}]


def test_a_stored_incident_reaches_every_route_of_its_owner_within_2s_then_escalates_and_resolves(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory, store_settings_factory, tmp_path: Path,
    receivers: dict[str, Receiver],
) -> None:
    """The real sink judges a forbidden tool call and stores the incident; the notifier tells all four routes."""
    kafka = kafka_settings_factory(partitions=2)
    store_settings: StoreSettings = store_settings_factory()
    migrate(store_settings)
    owners = load_owners(owners_file(tmp_path / "owners.yaml", four_routes(receivers)))
    notifier = Notifier(kafka, notify_settings(tmp_path / "state", group_factory()), owners)
    sink_settings = SinkSettings(group=group_factory(), session_timeout_ms=6000, heartbeat_interval_ms=1000,
                                 batch_timeout_ms=100, forbidden_tools=("shell.exec",), digests=False)
    stop_sink = threading.Event()
    with running(notifier), Sink(kafka, store_settings, sink_settings) as sink, connect(store_settings) as store:
        sink_thread = threading.Thread(target=sink.run, args=(stop_sink,), daemon=True)
        sink_thread.start()
        time.sleep(4)  # both groups joined: the figure below is delivery latency, not a cold group join
        with KafkaProducer(kafka) as producer:
            for record, data in framed_events(1, stream_id="s-1", start=100, name="shell.exec"):
                producer.produce(kafka.topics.actions, data, key=record["stream_id"].encode())
        got = {kind: receiver.wait_for(1)[0] for kind, receiver in receivers.items()}
        rows = store.query("SELECT incident_id, toUnixTimestamp64Micro(ingested_at) FROM incidents FINAL").rows
        assert len(rows) == 1
        incident_id, stored_us = rows[0][0], rows[0][1]
        latencies = {kind: r.at - stored_us / 1e6 for kind, r in got.items()}
        print(f"\nnotify latency from stored to received (s): {latencies}")
        assert all(latency < 2.0 for latency in latencies.values()), latencies
        link = f"{DASHBOARD}/?page=incident&incident={incident_id}"

        slack = got["slack"].json
        assert set(slack) >= {"text", "blocks"} and link in slack["blocks"][0]["text"]["text"]
        assert "security.forbidden-tool" in slack["text"] or incident_id in slack["blocks"][0]["text"]["text"]
        pd = got["pagerduty"].json
        assert pd["event_action"] == "trigger" and pd["dedup_key"] == incident_id and pd["routing_key"] == "R0UTINGKEY"
        assert pd["payload"]["severity"] in {"critical", "error", "warning", "info"} and pd["links"][0]["href"] == link
        am = got["alertmanager"].json
        assert am["version"] == "4" and am["status"] == "firing" and len(am["alerts"]) == 1
        assert am["alerts"][0]["labels"]["incident_id"] == incident_id and am["alerts"][0]["generatorURL"] == link
        hook = got["webhook"]
        assert hook.json["type"] == "incident.opened" and hook.json["incident"]["link"] == link
        assert verify_signature(SECRET.encode(), hook.body, hook.headers["x-agentaudit-timestamp"],
                                hook.headers["x-agentaudit-signature"])

        # escalation, a second acknowledgement (no state change), then resolution
        publish(kafka, lifecycle=[
            lifecycle_record(incident_id, "escalated", actor="agentaudit-escalator", level="1", team="payments"),
            lifecycle_record(incident_id, "acknowledged"),
            lifecycle_record(incident_id, "acknowledged", actor="bob@example.com"),
            lifecycle_record(incident_id, "resolved"),
        ])
        actions = [r.json["event_action"] for r in receivers["pagerduty"].wait_for(4)]
        assert actions == ["trigger", "trigger", "acknowledge", "resolve"]
        assert receivers["pagerduty"].accepted[1].json["payload"]["custom_details"]["level"] == 1
        assert [r.json["status"] for r in receivers["alertmanager"].wait_for(4)] == [
            "firing", "firing", "firing", "resolved"]
        assert [r.json["type"] for r in receivers["webhook"].wait_for(4)] == [
            "incident.opened", "incident.escalated", "incident.acknowledged", "incident.resolved"]
        time.sleep(1.5)
        assert {kind: len(r.requests) for kind, r in receivers.items()} == dict.fromkeys(receivers, 4)

        # every delivery is a notified lifecycle event, and the sink stores it
        notified = notified_events(kafka, expected=4 + 16)
        assert sorted((e["attributes"]["route"], e["attributes"]["state"]) for e in notified) == sorted(
            (f"payments/{i}", state) for i in range(4)
            for state in ("opened/0", "escalated/1", "acknowledged/0", "resolved/0"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stored = store.query("SELECT count() FROM incident_lifecycle FINAL WHERE type = 'notified'").rows[0][0]
            if stored == 16:
                break
            time.sleep(0.2)
        assert stored == 16
        stop_sink.set()
        sink_thread.join(30)


def test_a_500_is_retried_and_a_republished_incident_or_repeated_event_is_not_notified_again(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory, tmp_path: Path,
) -> None:
    kafka = kafka_settings_factory(partitions=1)
    receiver = Receiver(statuses=[500, 500]).start()
    try:
        owners = load_owners(owners_file(tmp_path / "owners.yaml", [{"kind": "slack", "url": receiver.url}]))
        notifier = Notifier(kafka, notify_settings(tmp_path / "state", group_factory()), owners)
        incident = incident_record()
        ack = lifecycle_record(incident["incident_id"], "acknowledged")
        publish(kafka, incidents=[incident, incident_record(incident["incident_id"], count=2)], lifecycle=[ack, ack])
        with running(notifier):
            receiver.wait_for(2)
            time.sleep(1.5)
            assert [r.headers["x-answered"] for r in receiver.requests] == ["500", "500", "200", "200"]
            notified = notified_events(kafka, expected=2 + 2)
        # the first delivery took three attempts (two 500s), the other one; the order across topics may vary
        assert sorted(e["attributes"]["state"] for e in notified) == ["acknowledged/0", "opened/0"]
        assert sorted(e["attributes"]["attempts"] for e in notified) == ["1", "3"]
        assert all(e["attributes"]["outcome"] == "delivered 200" for e in notified)
    finally:
        receiver.stop()


def test_exactly_once_per_state_change_across_a_receiver_outage_and_a_notifier_restart(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory, tmp_path: Path,
) -> None:
    kafka = kafka_settings_factory(partitions=2)
    receiver = Receiver().start()
    owners = load_owners(owners_file(tmp_path / "owners.yaml", [{"kind": "webhook", "url": receiver.url,
                                                                 "secret": SECRET}]))
    state, group = tmp_path / "state", group_factory()
    first, second = incident_record(), incident_record()
    try:
        receiver.stop()  # the outage: connection refused
        publish(kafka, incidents=[first])
        with running(Notifier(kafka, notify_settings(state, group), owners)):
            time.sleep(4)  # decided and committed, retried against the closed port
            publish(kafka, lifecycle=[lifecycle_record(first["incident_id"], "resolved")], incidents=[second])
            time.sleep(2)
        assert receiver.requests == []
        receiver.start()  # same port: the receiver is back, the notifier is not yet
        with running(Notifier(kafka, notify_settings(state, group), owners)):
            got = receiver.wait_for(3)
            time.sleep(1.5)
        assert sorted((r.json["incident"]["incident_id"], r.json["type"]) for r in receiver.requests) == sorted([
            (first["incident_id"], "incident.opened"), (first["incident_id"], "incident.resolved"),
            (second["incident_id"], "incident.opened")])
        order = [r.json["type"] for r in got if r.json["incident"]["incident_id"] == first["incident_id"]]
        assert order == ["incident.opened", "incident.resolved"]
        # a third start re-reading everything from the beginning (a new group: no committed offset) still
        # sends nothing twice: the committed outbox knows every incident, state and route
        with running(Notifier(kafka, notify_settings(state, group_factory()), owners)):
            time.sleep(5)
        assert len(receiver.requests) == 3
    finally:
        receiver.stop()


def test_agentaudit_notify_killed_mid_outage_delivers_each_state_change_once_after_restart(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory, tmp_path: Path,
) -> None:
    """The CLI process, SIGKILLed while its receiver is away, then started again: nothing lost, nothing twice."""
    import json
    import os
    import signal
    import subprocess
    import sys

    kafka = kafka_settings_factory(partitions=2)
    receiver = Receiver().start()
    owners = owners_file(tmp_path / "owners.yaml", [{"kind": "slack", "url": receiver.url}])
    env = {**os.environ, "AGENTAUDIT_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
           **{f"AGENTAUDIT_TOPIC_{name.upper()}": topic for name, topic in kafka.topics.model_dump().items()},
           "AGENTAUDIT_NOTIFY_GROUP": group_factory(), "AGENTAUDIT_NOTIFY_STATE_DIR": str(tmp_path / "state"),
           "AGENTAUDIT_NOTIFY_RETRY_INITIAL_S": "0.05", "AGENTAUDIT_NOTIFY_RETRY_MAX_S": "0.5",
           "AGENTAUDIT_NOTIFY_TIMEOUT_S": "1", "AGENTAUDIT_NOTIFY_CONSUMER_CONFIG": json.dumps(test_consumer_config())}
    for name in ("AGENTAUDIT_AUTHORITY_FILE", "AGENTAUDIT_SERVICE_KEY_FILE"):
        env.pop(name, None)

    log = (tmp_path / "notify.log").open("ab")

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "agentaudit.cli", "notify", "--owners", str(owners)], env=env,
                                stdout=subprocess.DEVNULL, stderr=log)

    first, second = incident_record(), incident_record()
    receiver.stop()
    process = start()
    try:
        publish(kafka, incidents=[first])
        time.sleep(8)  # joined, decided, committed; retrying against the closed port
        assert process.poll() is None, (tmp_path / "notify.log").read_text()[-2000:]
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        publish(kafka, incidents=[second], lifecycle=[lifecycle_record(first["incident_id"], "resolved")])
        receiver.start()
        process = start()
        receiver.wait_for(3, timeout=30)
        time.sleep(2)
        texts = [r.json["text"] for r in receiver.requests]
        assert len(texts) == 3, texts
        assert sum("opened" in t for t in texts) == 2 and sum("resolved by" in t for t in texts) == 1
    finally:
        process.terminate()
        process.wait(20)
        receiver.stop()
        log.close()
