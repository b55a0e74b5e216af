"""Attack: change stored evidence directly in ClickHouse, after the sink stored it.

A store client with write access (a ClickHouse operator, a leaked password) can ``ALTER TABLE actions
UPDATE``, ``ALTER TABLE actions DELETE`` or ``INSERT`` rows; the table itself keeps no trace. The sink
now writes a signed digest (Ed25519, its own key) of every partition range it stores, to
``action_digests`` and the digest topic, and ``agentaudit verify --store`` re-reads the rows.

Expected: on an untouched store, verify reports nothing; after 1,000 random updates, deletions and
insertions made with plain SQL, it reports every one of them, each as what it is, and nothing else; a
digest record that is forged, altered or deleted is reported too.
"""

from __future__ import annotations

import os
import random
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from agentaudit.cli import app
from agentaudit.consumers._columns import HASH_COLUMNS, actions_table
from agentaudit.consumers.digests import DigestChain, DigestSigner, digests_table, load_public_keys, verify_store
from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.kafka import KafkaProducer, read_all
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.sink_support import drain, framed_events

pytestmark = [pytest.mark.integration, pytest.mark.broker]

EVENTS_PER_STREAM = 1000
STREAMS = 5
TAMPERED = 1000
_HEX = ", ".join(HASH_COLUMNS)  # the hashes' hex: ALIAS columns over the stored bytes, which `*` leaves out
_SYNC = {"mutations_sync": 2}


@pytest.fixture
def stored(kafka_settings_factory: Callable[..., KafkaSettings], group_factory,
           store_settings_factory: Callable[[], StoreSettings], tmp_path: Path):
    """5,000 events stored by a sink with digests on, over 3 partitions; returns (store settings, key path, kafka)."""
    kafka = kafka_settings_factory(partitions=3)
    settings = store_settings_factory()
    migrate(settings)
    events = [e for n in range(STREAMS) for e in framed_events(EVENTS_PER_STREAM, stream_id=f"stream-{n}",
                                                                start=n * EVENTS_PER_STREAM)]
    with KafkaProducer(kafka) as producer:
        for record, data in events:
            producer.produce(kafka.topics.actions, data, key=record["stream_id"].encode())
    key = tmp_path / "keys" / "sink-digest.key"
    digest_topic = f"digests-{group_factory()}"
    sink_settings = SinkSettings(group=group_factory(), session_timeout_ms=6000, heartbeat_interval_ms=1000,
                                 batch_timeout_ms=300, batch_size=700, digest_key=key, digest_topic=digest_topic)
    with Sink(kafka, settings, sink_settings) as sink:
        drain(sink, len(events))
    return settings, key, kafka, digest_topic


def test_an_untouched_store_verifies_and_1000_changes_are_all_found(stored):
    settings, key, kafka, digest_topic = stored
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    keys = load_public_keys([key.with_name(key.name + ".pub")])
    total = STREAMS * EVENTS_PER_STREAM
    with connect(settings) as store:
        clean = verify_store(store, keys)
        assert clean.findings == [] and clean.covered == clean.rows == total and clean.digests > 0
        digests_in_store = store.query("SELECT count() FROM action_digests").rows[0][0]
        positions = store.query("SELECT kafka_partition, kafka_offset FROM actions ORDER BY 1, 2").rows
    # The digests are on the topic too, signed by the same key.
    published = read_all(kafka, digest_topic, expected=digests_in_store, timeout=20, idle=3)
    assert len(published) == digests_in_store
    assert {orjson.loads(m.value())["key_id"] for m in published} == set(keys)

    env = {"AGENTAUDIT_CLICKHOUSE_URL": settings.clickhouse_url, "AGENTAUDIT_DATABASE": settings.database,
           "AGENTAUDIT_SINK_DIGEST_KEY": str(key)}
    ok = CliRunner().invoke(app, ["verify", "--store"], env=env)
    assert ok.exit_code == 0, ok.output
    assert "ok: nothing was modified, deleted or added" in ok.output

    # The attack: 1,000 random changes with plain SQL, each on a row of its own.
    rng = random.Random(12)
    chosen = rng.sample(positions, 2 * TAMPERED // 3 + 1)
    updated, deleted = chosen[: TAMPERED // 3], chosen[TAMPERED // 3: 2 * TAMPERED // 3]
    victims = chosen[2 * TAMPERED // 3:]  # rows whose content the inserted rows copy
    inserts = TAMPERED - len(updated) - len(deleted)
    changes = {"cost_usd": "cost_usd + 1", "status": "if(status = 'ok', 'error', 'ok')",
               "name": "concat(toString(name), '!')", "error_message": "'forged'", "input_tokens": "input_tokens + 7",
               "prev_hash_bin": "toFixedString(unhex(repeat('ab', 32)), 32)"}  # the stored bytes behind the hex
    by_column: dict[str, list[tuple[int, int]]] = {}
    for pos in updated:
        by_column.setdefault(rng.choice(sorted(changes)), []).append(pos)
    added: set[tuple[int, int]] = set()
    with connect(settings) as store:
        for column, where in by_column.items():
            store.command(f"ALTER TABLE actions UPDATE {column} = {changes[column]} "
                          f"WHERE (kafka_partition, kafka_offset) IN {_tuples(where)}", settings=_SYNC)
        store.command(f"ALTER TABLE actions DELETE WHERE (kafka_partition, kafka_offset) IN {_tuples(deleted)}",
                      settings=_SYNC)
        source = store.query(f"SELECT * EXCEPT (ingested_at), {_HEX} FROM actions WHERE (kafka_partition, kafka_offset) "
                             f"IN {_tuples(victims[:1])}").named_rows()[0]
        rows = []
        untouched = sorted(set(positions) - set(chosen))
        claimed = iter(rng.sample(untouched, inserts // 3 + 1))
        for n in range(inserts):
            row = dict(source, event_id=f"forged-{n}", cost_usd=float(n))
            if n % 3 == 0:  # claims the position of a stored row that is otherwise left alone
                partition, offset = next(claimed)
            else:  # a fresh position
                partition, offset = rng.randrange(3), 10_000_000 + n
            row.update(kafka_partition=partition, kafka_offset=offset)
            added.add((partition, offset))
            rows.append(row)
        store.insert_arrow("actions", _arrow(rows))
        report = verify_store(store, keys)

    found = {kind: {(f.partition, f.offset) for f in report.findings if f.kind == kind}
             for kind in ("modified", "deleted", "added")}
    assert found["modified"] == set(updated)
    assert found["deleted"] == set(deleted)
    assert found["added"] == added
    assert len([f for f in report.findings if f.kind == "added"]) == inserts
    assert report.counts() == {"modified": len(updated), "deleted": len(deleted), "added": inserts}
    assert len(updated) + len(deleted) + inserts == TAMPERED

    failed = CliRunner().invoke(app, ["verify", "--store", "--limit", "3"], env=env)
    assert failed.exit_code == 1
    assert f"FAILED: {inserts} added, {len(deleted)} deleted, {len(updated)} modified (first 3 shown)" in failed.output


def test_forged_altered_or_deleted_digest_records_are_reported(stored, tmp_path: Path):
    settings, key, _, _ = stored
    keys = load_public_keys([key])
    with connect(settings) as store:
        digests = store.query("SELECT digest_id, kafka_partition, first_offset, prev_digest FROM action_digests "
                              "ORDER BY kafka_partition, first_offset").rows
        # Delete a digest in the middle of a chain (with the rows it covers, so no row is reported twice).
        middle = next(d for d in digests if d[3] and any(o[3] == d[0] for o in digests))
        store.command("ALTER TABLE action_digests DELETE WHERE digest_id = {id:String}", {"id": middle[0]},
                      settings=_SYNC)
        # Alter another digest's leaves so that an updated row would match it.
        altered = next(d for d in digests if d[0] != middle[0])
        store.command("ALTER TABLE action_digests UPDATE leaves_bin = arrayMap(x -> toFixedString(unhex(repeat('ff', 16)), "
                      "16), leaves_bin) WHERE digest_id = {id:String}", {"id": altered[0]}, settings=_SYNC)
        # Forge a digest with an attacker's key over a row the attacker inserts.
        intruder = DigestChain(DigestSigner(Ed25519PrivateKey.generate()), "agentaudit.actions")
        source = store.query(f"SELECT * EXCEPT (ingested_at), {_HEX} FROM actions LIMIT 1").named_rows()[0]
        row = dict(source, event_id="forged", kafka_partition=2, kafka_offset=20_000_000)
        store.insert_arrow("actions", _arrow([row]))
        record = dict(_record(row), _partition=2, _offset=20_000_000)
        store.insert_arrow("action_digests", digests_table(intruder.build([record])))
        report = verify_store(store, keys)
    kinds = report.counts()
    assert kinds["chain_break"] == 1
    assert kinds["bad_digest"] == 2  # the altered one (bad root or id) and the one signed by an unknown key
    assert any("not one of the trusted keys" in f.detail for f in report.findings)
    assert {(f.partition, f.offset) for f in report.findings if f.kind == "added"} >= {(2, 20_000_000)}


def _tuples(positions: list[tuple[int, int]]) -> str:
    return "(" + ", ".join(f"({int(p)}, {int(o)})" for p, o in positions) + ")"


def _record(row: dict) -> dict:
    """A stored row back as the decoded record the sink had (for building a forged digest)."""
    record = dict(row)
    record["actor"] = {"type": row["actor_type"], "id": row["actor_id"]}
    for name in ("start_time", "end_time", "event_time"):
        value = row[name]
        record[f"{name}_us"] = None if value is None else _us(value)
    record["links"] = list(row["links"])
    record["attributes"] = dict(row["attributes"])
    return record


def _us(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _arrow(rows: list[dict]):
    records = []
    for row in rows:
        record = _record(row)
        record["_partition"], record["_offset"] = row["kafka_partition"], row["kafka_offset"]
        records.append(record)
    return actions_table(records)
