"""`agentaudit migrate` over an actions table of the layout before issue 12 (no event_hash in the key).

The old layout let a re-sent event id with another body replace the first. Migrating rebuilds the
table under the current layout with every row kept as it was (ingested_at too, so the first-seen
order survives), leaves the store idempotent, and a forged copy written after it no longer replaces
anything.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agentaudit.consumers._columns import actions_hex_table, actions_table
from agentaudit.consumers.migrate import migrate, render, upgrade_actions
from agentaudit.infra.clickhouse import connect
from agentaudit.schemas import AvroCodec, StreamChain, body_hash, frame_body
from agentaudit.settings import StoreSettings
from tests.sink_support import action_record

pytestmark = pytest.mark.integration

#: ``actions`` as 0001_base.sql created it before issue 12.
OLD_ACTIONS = """CREATE TABLE IF NOT EXISTS {database}.actions
(
    event_id          String COMMENT 'UUID of the event, unique across the pipeline',
    tenant            LowCardinality(String),
    agent_id          LowCardinality(String),
    agent_version     LowCardinality(String),
    run_id            String COMMENT 'Run or session id',
    trace_id          String COMMENT 'Root of the causal tree',
    action_id         String COMMENT 'Shared by the start and end events of one action',
    parent_action_id  String COMMENT 'Causing action, empty for a trace root',
    links             Array(String) COMMENT 'Extra causal links (action ids)',
    depth             UInt16 COMMENT 'Distance from the trace root',
    stream_id         String COMMENT 'Producer stream (client instance x agent)',
    seq               UInt64 COMMENT 'Position in the producer stream, gap-free',
    prev_hash         String COMMENT 'Hex SHA-256 of the previous event body in the stream',
    event_hash        String COMMENT 'Hex SHA-256 of this event body, computed by the sink',
    kind              LowCardinality(String) COMMENT 'OpenTelemetry GenAI operation name (execute_tool, chat, ...)',
    name              LowCardinality(String) COMMENT 'Tool, model or target name',
    phase             LowCardinality(String) COMMENT 'start, end or point',
    status            LowCardinality(String) COMMENT 'unset, ok, error, cancelled, denied, timeout',
    error_type        LowCardinality(String),
    error_message     String,
    actor_type        LowCardinality(String) COMMENT 'agent, human or system',
    actor_id          LowCardinality(String),
    model             LowCardinality(String),
    input_tokens      UInt64,
    output_tokens     UInt64,
    cost_usd          Float64 COMMENT 'Cost of this event in US dollars',
    latency_us        Nullable(UInt64) COMMENT 'Set on end events',
    start_time        DateTime64(6, 'UTC'),
    end_time          Nullable(DateTime64(6, 'UTC')),
    event_time        DateTime64(6, 'UTC') COMMENT 'Event time: windows and ordering use it',
    input_digest      String,
    output_digest     String,
    input_body        String COMMENT 'Redacted, capped, only when the producer opted in',
    output_body       String,
    payload_bytes     UInt64,
    attributes        Map(LowCardinality(String), String),
    environment       LowCardinality(String) DEFAULT '' COMMENT 'Added in action schema v2',
    kafka_partition   UInt16 COMMENT 'Where the sink read it',
    kafka_offset      UInt64,
    ingested_at       DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX idx_trace trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_action action_id TYPE bloom_filter(0.001) GRANULARITY 1,
    PROJECTION by_trace (SELECT * ORDER BY tenant, trace_id, event_time)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant, agent_id, event_time, event_id)
TTL toDateTime(event_time) + INTERVAL {retention_days} DAY
SETTINGS deduplicate_merge_projection_mode = 'rebuild', non_replicated_deduplication_window = 10000
COMMENT 'Every action event, one row per event_id (query with FINAL or LIMIT 1 BY event_id)'"""


def _old_rows(records: list[dict]):
    """Rows as the sink wrote them before issue 12 (no later_copy or signature column)."""
    return actions_hex_table(records).drop_columns(["later_copy", "signature"])


def _records(count: int) -> list[dict]:
    codec = AvroCodec("action")
    chain = StreamChain("old-stream")
    out = []
    for n in range(count):
        record = action_record(n)
        data = chain.seal(record, codec)
        out.append(dict(record, event_hash=body_hash(frame_body(data)), _partition=0, _offset=n))
    return out


def test_migrate_upgrades_an_old_actions_table_keeping_every_row(store_settings_factory: Callable[[], StoreSettings]):
    settings = store_settings_factory()
    records = _records(500)
    with connect(settings) as store:
        store.command(render(OLD_ACTIONS, settings))
        store.insert_arrow("actions", _old_rows(records))
        before = store.query("SELECT event_id, event_hash, name, cost_usd, ingested_at, kafka_offset FROM actions "
                             "ORDER BY event_id").rows
        assert "event_hash" not in store.query("SELECT sorting_key FROM system.tables WHERE database = {d:String} "
                                               "AND name = 'actions'", {"d": settings.database}).rows[0][0]
    migrate(settings)
    with connect(settings) as store:
        key = store.query("SELECT sorting_key FROM system.tables WHERE database = {d:String} AND name = 'actions'",
                          {"d": settings.database}).rows[0][0]
        assert key == "tenant, agent_id, event_time, event_id, event_hash_bin"
        after = store.query("SELECT event_id, event_hash, name, cost_usd, ingested_at, kafka_offset FROM actions "
                            "ORDER BY event_id").rows
        assert after == before
        assert store.query("SELECT count() FROM actions_first").rows[0][0] == 500
        assert store.query("SELECT name FROM system.tables WHERE database = {d:String} AND name LIKE 'actions\\_\\_%'",
                           {"d": settings.database}).rows == []
        schema = store.query(f"SHOW CREATE TABLE {settings.database}.actions").rows[0][0]
        # A second run changes nothing.
        assert upgrade_actions(store, settings) is False
    migrate(settings)
    with connect(settings) as store:
        assert store.query(f"SHOW CREATE TABLE {settings.database}.actions").rows[0][0] == schema
        assert store.query("SELECT count() FROM actions").rows[0][0] == 500
        # After the upgrade a forged copy is kept beside the first, and readers still show the first.
        victim = records[7]
        store.insert_arrow("actions", actions_table([dict(victim, name="crm.lookup", event_hash="f" * 64,
                                                          _offset=999)]))
        store.command("OPTIMIZE TABLE actions FINAL")
        assert store.query("SELECT count() FROM actions WHERE event_id = {id:String}",
                           {"id": victim["event_id"]}).rows[0][0] == 2
        assert store.query("SELECT name FROM actions WHERE event_id = {id:String} "
                           "ORDER BY ingested_at, kafka_partition, kafka_offset LIMIT 1 BY event_id",
                           {"id": victim["event_id"]}).rows == [(victim["name"],)]
        assert store.query("SELECT event_id, copies FROM action_conflicts").rows == [(victim["event_id"], 2)]


def test_an_interrupted_upgrade_is_redone(store_settings_factory: Callable[[], StoreSettings]):
    settings = store_settings_factory()
    with connect(settings) as store:
        store.command(render(OLD_ACTIONS, settings))
        store.insert_arrow("actions", _old_rows(_records(50)))
        # What a crash between the copy and the swap leaves: a half-filled actions__upgrade.
        store.command(f"CREATE TABLE {settings.database}.actions__upgrade AS {settings.database}.actions")
        store.command(f"INSERT INTO {settings.database}.actions__upgrade SELECT * FROM {settings.database}.actions "
                      "LIMIT 10")
    migrate(settings)
    with connect(settings) as store:
        assert store.query("SELECT count() FROM actions").rows[0][0] == 50
        assert "event_hash" in store.query("SELECT sorting_key FROM system.tables WHERE database = {d:String} "
                                           "AND name = 'actions'", {"d": settings.database}).rows[0][0]
        assert store.query(f"EXISTS TABLE {settings.database}.actions__upgrade").rows == [(0,)]
