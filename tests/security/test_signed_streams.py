"""Attack: forge an agent's record by re-sending its stream with benign content and a recomputed hash chain.

Issue 12: the chain is an unkeyed SHA-256, so anyone who can produce on the actions topic could re-send a
stream (``payments.refund, error, $42`` rewritten as ``crm.lookup, ok, $0``) with a recomputed chain, and it
passed every chain check. Producer streams now carry Ed25519 checkpoints signed by a key registered for
their tenant and agent (schemas/checkpoints.py). With a keys file, the sink stores each checkpoint's verdict
(``actions.signature``, view ``actions_verified``) and the integrity rules raise:

- the forged stream with its signatures stripped: ``integrity.unsigned-stream``;
- with the genuine signatures copied onto it: ``integrity.bad-signature`` (they sign the genuine chain);
- signed by the attacker's own key: ``integrity.bad-signature`` (unknown_key);
- signed with a real key registered for another agent: ``integrity.unauthorized-key`` (not_authorized);
- rotation: the old key revoked at T verifies what it signed before T; after T it raises
  ``integrity.unauthorized-key`` (revoked), while the new key verifies.

All on the real broker and store, with the real SDK, sink and rule pack.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentaudit.cli import app
from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.consumers.stream_verify import verify_stream_signatures
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.kafka import KafkaConsumer, KafkaProducer
from agentaudit.producers import AuditClient
from agentaudit.rules import DEFAULT_PACK, RuleEvaluator, load_rule_set
from agentaudit.schemas import AvroCodec, KeyRing, SigningKey, StreamChain
from agentaudit.schemas.checkpoints import KEY_ATTRIBUTE, SIG_ATTRIBUTE, checkpoint_attributes
from agentaudit.schemas.keys_file import add_key
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.sink_support import drain

pytestmark = [pytest.mark.integration, pytest.mark.broker]

SIGNATURE_RULES = ("integrity.bad-signature", "integrity.unauthorized-key", "integrity.unsigned-stream")


def _record_actions(kafka: KafkaSettings, spool: Path, key: SigningKey | str | None, actions: int,
                    agent: str = "billing-bot") -> int:
    """An agent refunding through the SDK; returns how many events its stream holds (checkpoint events too)."""
    audit = AuditClient(kafka=kafka, tenant="acme", agent=agent, spool_dir=spool, signing_key=key,
                        checkpoint_events=100)
    for i in range(actions):
        with audit.action("execute_tool", name="payments.refund") as call:
            call.set_cost(cost_usd=42.0)
            if i % 7 == 0:
                call.set_attribute("order", str(i))
    audit.close()
    stats = audit.stats()
    assert stats["delivered"] == stats["sealed"], stats
    return stats["sealed"]


def _judge(kafka: KafkaSettings, store: StoreSettings, group: str, keyring: KeyRing, messages: int) -> None:
    migrate(store)
    evaluator = RuleEvaluator(load_rule_set(str(DEFAULT_PACK / "integrity.yaml")), lateness_us=0, keyring=keyring)
    settings = SinkSettings(group=group, session_timeout_ms=6000, heartbeat_interval_ms=1000, batch_timeout_ms=300)
    with Sink(kafka, store, settings, evaluator) as sink:
        drain(sink, messages, timeout=120)


def _incidents(store: StoreSettings) -> dict[str, set[str]]:
    with connect(store) as client:
        rows = client.query("SELECT rule_id, key FROM incidents FINAL WHERE rule_id LIKE 'integrity.%'").rows
    found: dict[str, set[str]] = {}
    for rule_id, key in rows:
        found.setdefault(rule_id, set()).add(key)
    return found


def _verified(store: StoreSettings) -> dict[str, tuple[int, int]]:
    """stream -> (rows verified, rows not verified), from the actions_verified view."""
    with connect(store) as client:
        rows = client.query("SELECT stream_id, countIf(verified = 1), countIf(verified = 0) FROM actions_verified "
                            "GROUP BY stream_id").rows
    return {stream: (ok, not_ok) for stream, ok, not_ok in rows}


def _ring_file(tmp_path: Path, *entries: tuple[SigningKey, list[str]]) -> Path:
    path = tmp_path / "keys.json"
    for key, agents in entries:
        add_key(path, key_id=key.key_id, public_key=key.public_key, principal=f"agent:{agents[0]}", tenant="acme",
                agents=agents)
    return path


def _read_topic(kafka: KafkaSettings, count: int) -> list[dict[str, Any]]:
    """What an attacker with read access to the actions topic sees: every record, decoded."""
    codec = AvroCodec("action")
    out: list[dict[str, Any]] = []
    with KafkaConsumer(kafka, f"attacker-{uuid.uuid4().hex}", {"enable.partition.eof": False}) as consumer:
        consumer.assign([(kafka.topics.actions, 0, -2)])
        for _ in range(200):
            out.extend(codec.decode(m.value()) for m in consumer.consume_batch(1000, timeout=0.2))
            if len(out) >= count:
                break
    assert len(out) == count
    return sorted(out, key=lambda r: r["seq"])


def _forge(genuine: list[dict[str, Any]], stream_id: str, signatures: str, mallory: SigningKey) -> list[bytes]:
    """The genuine stream rewritten benign with a recomputed chain under a new stream id and new event ids.

    :param signatures: ``strip`` (no checkpoint), ``copy`` (the genuine checkpoint attributes kept) or
        ``mallory`` (re-signed with the attacker's own key).
    """
    codec = AvroCodec("action")
    chain = StreamChain(stream_id)
    out = []
    for record in genuine:
        forged = dict(record, event_id=str(uuid.uuid4()), name="crm.lookup", status="ok", cost_usd=0.0)
        attributes = {k: v for k, v in (record["attributes"] or {}).items() if k not in (SIG_ATTRIBUTE, KEY_ATTRIBUTE)}
        if signatures == "copy":
            attributes = dict(record["attributes"] or {})
        elif signatures == "mallory" and SIG_ATTRIBUTE in (record["attributes"] or {}):
            attributes.update(checkpoint_attributes(mallory, tenant="acme", agent=record["agent_id"],
                                                    stream_id=stream_id, seq=chain.seq, prev_hash=chain.prev_hash))
        forged["attributes"] = attributes
        out.append(chain.seal(forged, codec))
    return out


def test_a_signed_stream_is_stored_verified_and_forged_copies_raise_incidents(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory, store_settings_factory, tmp_path: Path
):
    kafka = kafka_settings_factory(partitions=1)
    store = store_settings_factory()
    key = SigningKey.generate("acme-billing-1")
    keys_file = _ring_file(tmp_path, (key, ["billing-bot"]))
    genuine_count = _record_actions(kafka, tmp_path / "spool", key, 1200)  # 2,400 actions events + checkpoints

    # The attacker reads the genuine stream and re-sends it three times, benign, chain recomputed.
    genuine = _read_topic(kafka, genuine_count)
    assert sum(1 for r in genuine if SIG_ATTRIBUTE in (r["attributes"] or {})) >= 24
    mallory = SigningKey.generate("mallory-1")
    forgeries = {f"forged-{how}/billing-bot": _forge(genuine, f"forged-{how}/billing-bot", how, mallory)
                 for how in ("strip", "copy", "mallory")}
    with KafkaProducer(kafka) as producer:
        for stream_id, values in forgeries.items():
            for value in values:
                producer.produce(kafka.topics.actions, value, key=stream_id.encode())

    _judge(kafka, store, group_factory(), KeyRing.load(keys_file), genuine_count * 4)

    genuine_stream = genuine[0]["stream_id"]
    found = _incidents(store)
    assert found == {
        "integrity.unsigned-stream": {"forged-strip/billing-bot", "forged-copy/billing-bot",
                                      "forged-mallory/billing-bot"},
        "integrity.bad-signature": {"forged-copy/billing-bot", "forged-mallory/billing-bot"},
    }, found  # and nothing about the genuine stream
    verified = _verified(store)
    # every genuine row but the final checkpoint event (covered by no later checkpoint) is verified
    assert verified[genuine_stream] == (genuine_count - 1, 1)
    for stream_id in forgeries:
        assert verified[stream_id] == (0, genuine_count), stream_id
    with connect(store) as client:
        verdicts = dict(client.query("SELECT stream_id, groupUniqArray(toString(signature)) FROM actions "
                                     "WHERE signature != '' GROUP BY stream_id").rows)
    assert verdicts[genuine_stream] == ["valid"]
    assert verdicts["forged-copy/billing-bot"] == ["bad_signature"]
    assert verdicts["forged-mallory/billing-bot"] == ["unknown_key"]
    assert "forged-strip/billing-bot" not in verdicts

    # verify --signatures re-checks from the rows, without trusting the stored verdicts
    with connect(store) as client:
        report = verify_stream_signatures(client, KeyRing.load(keys_file))
    assert report.streams == 4 and report.rows == 4 * genuine_count
    assert report.verified == genuine_count - 1 and report.tails == 1
    assert {f.stream_id for f in report.findings} == set(forgeries)
    assert {f.kind for f in report.findings} == {"unverified", "bad_signature", "unknown_key"}
    env = {"AGENTAUDIT_CLICKHOUSE_URL": store.clickhouse_url, "AGENTAUDIT_DATABASE": store.database,
           "AGENTAUDIT_KEYS_FILE": str(keys_file)}
    failed = CliRunner().invoke(app, ["verify", "--signatures", "--limit", "5"], env=env)
    assert failed.exit_code == 1, failed.output
    assert f"4 streams, {4 * genuine_count} rows, {genuine_count - 1} verified" in failed.output
    assert "FAILED signatures:" in failed.output and "forged-copy/billing-bot" in failed.output


def test_a_key_registered_for_another_agent_is_not_authorized(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory, store_settings_factory, tmp_path: Path
):
    kafka = kafka_settings_factory(partitions=1)
    store = store_settings_factory()
    support_key = SigningKey.generate("acme-support-1")
    keys_file = _ring_file(tmp_path, (support_key, ["support-bot"]))
    # billing-bot signs with support-bot's (real, registered) key
    count = _record_actions(kafka, tmp_path / "spool", support_key, 300, agent="billing-bot")
    _judge(kafka, store, group_factory(), KeyRing.load(keys_file), count)
    found = _incidents(store)
    # (unsigned-stream follows once 2,000 events or 30 s of event time pass without a valid checkpoint)
    assert len(found["integrity.unauthorized-key"]) == 1  # keyed by the stream
    assert set(found) <= {"integrity.unauthorized-key", "integrity.unsigned-stream"}
    with connect(store) as client:
        assert client.query("SELECT DISTINCT toString(signature) FROM actions WHERE signature != ''").rows == [
            ("not_authorized",)]
    assert all(ok == 0 for ok, _ in _verified(store).values())


def test_rotation_with_the_cli_old_key_verifies_before_and_is_refused_after(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory, store_settings_factory, tmp_path: Path
):
    kafka = kafka_settings_factory(partitions=1)
    store = store_settings_factory()
    keys_file, key_dir = tmp_path / "keys.json", tmp_path / "keys"
    runner = CliRunner()
    made = runner.invoke(app, ["keys", "new", "billing-1", "--dir", str(key_dir), "--keys-file", str(keys_file),
                               "--principal", "agent:billing-bot", "--tenant", "acme", "--agent", "billing-bot"])
    assert made.exit_code == 0, made.output
    old_key = key_dir / "billing-1.key"
    before = _record_actions(kafka, tmp_path / "spool-1", str(old_key), 200)

    rotated = runner.invoke(app, ["keys", "rotate", "billing-1", "billing-2", "--dir", str(key_dir),
                                  "--keys-file", str(keys_file)])
    assert rotated.exit_code == 0, rotated.output
    listed = runner.invoke(app, ["keys", "list", "--keys-file", str(keys_file)])
    assert [line.split("\t")[0] for line in listed.output.splitlines()] == ["billing-1", "billing-2"]

    after_new = _record_actions(kafka, tmp_path / "spool-2", str(key_dir / "billing-2.key"), 200)
    after_old = _record_actions(kafka, tmp_path / "spool-3", str(old_key), 200)  # the old key, after T
    _judge(kafka, store, group_factory(), KeyRing.load(keys_file), before + after_new + after_old)

    with connect(store) as client:
        verdicts = client.query("SELECT stream_id, groupUniqArray(toString(signature)), min(event_time) FROM actions "
                                "WHERE signature != '' GROUP BY stream_id ORDER BY min(event_time)").rows
    assert [v[1] for v in verdicts] == [["valid"], ["valid"], ["revoked"]]
    streams = [v[0] for v in verdicts]
    found = _incidents(store)
    assert found["integrity.unauthorized-key"] == {streams[2]}, found
    assert set(found) <= {"integrity.unauthorized-key", "integrity.unsigned-stream"}
    assert found.get("integrity.unsigned-stream", {streams[2]}) == {streams[2]}
    verified = _verified(store)
    assert verified[streams[0]] == (before - 1, 1) and verified[streams[1]] == (after_new - 1, 1)
    assert verified[streams[2]] == (0, after_old)

    env = {"AGENTAUDIT_CLICKHOUSE_URL": store.clickhouse_url, "AGENTAUDIT_DATABASE": store.database,
           "AGENTAUDIT_KEYS_FILE": str(keys_file)}
    failed = CliRunner().invoke(app, ["verify", "--signatures"], env=env)
    assert failed.exit_code == 1 and "revoked" in failed.output and streams[2] in failed.output, failed.output
    assert streams[0] not in failed.output and streams[1] not in failed.output


def test_an_idle_stream_is_covered_within_checkpoint_seconds_without_a_flush(
    kafka_settings_factory: Callable[..., KafkaSettings], tmp_path: Path
):
    """The tail of a stream that goes quiet is signed after T, so a forger cannot hide behind an idle agent."""
    kafka = kafka_settings_factory(partitions=1)
    key = SigningKey.generate("acme-idle-1")
    audit = AuditClient(kafka=kafka, tenant="acme", agent="idle-bot", spool_dir=tmp_path, signing_key=key,
                        checkpoint_seconds=0.3)
    try:
        for _ in range(3):
            with audit.action("execute_tool", name="search"):
                pass
        deadline = time.monotonic() + 5
        while audit.stats()["checkpoints"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert audit.stats()["checkpoints"] == 1  # one checkpoint event, and none after it while idle
        time.sleep(1.0)
        assert audit.stats()["checkpoints"] == 1 and audit.stats()["sealed"] == 7
    finally:
        audit.close()
    assert audit.stats()["checkpoints"] == 1  # close found the tail already covered


def test_the_rules_worker_judges_signatures_as_the_sink_does(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory, tmp_path: Path, capsys
):
    """The scale-out shape (`rules run`): each fresh per-partition evaluator gets the key ring."""
    from agentaudit.consumers.rules_worker import RulesWorker
    from tests.fixtures.broker import test_consumer_config

    kafka = kafka_settings_factory(partitions=1)
    key = SigningKey.generate("acme-billing-1")
    keys_file = _ring_file(tmp_path, (key, ["billing-bot"]))
    count = _record_actions(kafka, tmp_path / "spool", key, 300)
    genuine = _read_topic(kafka, count)
    with KafkaProducer(kafka) as producer:
        for value in _forge(genuine, "forged-copy/billing-bot", "copy", key):
            producer.produce(kafka.topics.actions, value, key=b"forged-copy/billing-bot")
    evaluator = RuleEvaluator(load_rule_set(str(DEFAULT_PACK / "integrity.yaml")), lateness_us=0,
                              keyring=KeyRing.load(keys_file))
    worker = RulesWorker(kafka, evaluator, group=group_factory(), batch_size=500,
                         consumer_config=test_consumer_config(**{"auto.offset.reset": "earliest"}))
    try:
        deadline = time.monotonic() + 90
        while worker.evaluated < 2 * count:
            worker.run_once()
            assert time.monotonic() < deadline, f"evaluated {worker.evaluated} of {2 * count}"
        worker.flush()
        found = {(i.rule_id, i.key) for i in worker.incidents.values() if i.rule_id.startswith("integrity.")}
    finally:
        worker.close()
    assert found == {("integrity.bad-signature", "forged-copy/billing-bot"),
                     ("integrity.unsigned-stream", "forged-copy/billing-bot")}

    # the topic read back by the example verifier, with the keys: the forged stream fails, the genuine one passes
    from agentaudit.producers.examples.verify import main as verify_topic

    assert verify_topic(["--bootstrap", kafka.bootstrap_servers, "--topic", kafka.topics.actions,
                         "--keys-file", str(keys_file)]) == 1
    printed = capsys.readouterr().out
    assert f"signatures: {count - 1} events verified by a signed checkpoint, 1 final checkpoint events" in printed
    assert "forged-copy/billing-bot at seq" in printed and "bad_signature" in printed
    assert genuine[0]["stream_id"] not in printed
