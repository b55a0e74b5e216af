-- agentaudit base schema. Applied in file order by `agentaudit migrate`; every statement is idempotent.
-- Placeholders: {database}, {retention_days}, {incident_retention_days}.
-- Delivery is at least once: tables are ReplacingMergeTree keyed by the event or incident id, inserts carry
-- deduplication tokens, and readers use FINAL or LIMIT 1 BY <id> so no query shows a duplicate.
-- `actions` is append-only in meaning: the body hash is part of its key, so a second copy of an event with an
-- identical body merges away (the first seen is kept), while a copy with a different body is stored beside the
-- first and never replaces it; readers see the first-seen copy (views in 0010_analyst_views.sql).
-- Storage layout (issue 15): hashes are 32 raw bytes (`<name>_bin`), with the hex readers use as ALIAS columns of
-- the old names (a value that is not lowercase SHA-256 hex is kept verbatim in `<name>_text`); codecs per column;
-- trace lookups go through `by_trace`, a projection of the sort key and `_part_offset` only (an index, not a copy).
-- consumers/migrate.py rebuilds a table of the layout before into this one.

CREATE DATABASE IF NOT EXISTS {database};

CREATE TABLE IF NOT EXISTS {database}.actions
(
    event_id          String CODEC(ZSTD(3)) COMMENT 'UUID of the event, unique across the pipeline',
    tenant            LowCardinality(String),
    agent_id          LowCardinality(String),
    agent_version     LowCardinality(String),
    run_id            String CODEC(ZSTD(3)) COMMENT 'Run or session id',
    trace_id          String CODEC(ZSTD(3)) COMMENT 'Root of the causal tree',
    action_id         String CODEC(ZSTD(3)) COMMENT 'Shared by the start and end events of one action',
    parent_action_id  String CODEC(ZSTD(3)) COMMENT 'Causing action, empty for a trace root',
    links             Array(String) CODEC(ZSTD(3)) COMMENT 'Extra causal links (action ids)',
    depth             UInt16 CODEC(ZSTD(1)) COMMENT 'Distance from the trace root',
    stream_id         String CODEC(ZSTD(3)) COMMENT 'Producer stream (client instance x agent)',
    seq               UInt64 CODEC(Delta, ZSTD(1)) COMMENT 'Position in the producer stream, gap-free',
    prev_hash_bin     FixedString(32) COMMENT 'SHA-256 of the previous event body in the stream; zeros when empty or kept as text',
    prev_hash_text    String CODEC(ZSTD(3)) COMMENT 'prev_hash as sent when it is not lowercase SHA-256 hex, else empty',
    prev_hash         String ALIAS if(empty(prev_hash_bin), prev_hash_text, lower(hex(prev_hash_bin)))
                      COMMENT 'Hex SHA-256 of the previous event body in the stream (empty for seq 0)',
    event_hash_bin    FixedString(32) COMMENT 'SHA-256 of this event body, computed by the sink',
    event_hash        String ALIAS if(empty(event_hash_bin), '', lower(hex(event_hash_bin)))
                      COMMENT 'Hex SHA-256 of this event body, computed by the sink',
    kind              LowCardinality(String) COMMENT 'OpenTelemetry GenAI operation name (execute_tool, chat, ...)',
    name              LowCardinality(String) COMMENT 'Tool, model or target name',
    phase             LowCardinality(String) COMMENT 'start, end or point',
    status            LowCardinality(String) COMMENT 'unset, ok, error, cancelled, denied, timeout',
    error_type        LowCardinality(String),
    error_message     String CODEC(ZSTD(3)),
    actor_type        LowCardinality(String) COMMENT 'agent, human or system',
    actor_id          LowCardinality(String),
    model             LowCardinality(String),
    input_tokens      UInt64 CODEC(T64, ZSTD(1)),
    output_tokens     UInt64 CODEC(T64, ZSTD(1)),
    cost_usd          Float64 CODEC(ZSTD(1)) COMMENT 'Cost of this event in US dollars',
    latency_us        Nullable(UInt64) CODEC(T64, ZSTD(1)) COMMENT 'Set on end events',
    start_time        DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    end_time          Nullable(DateTime64(6, 'UTC')) CODEC(ZSTD(1)),
    event_time        DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)) COMMENT 'Event time: windows and ordering use it',
    input_digest_bin  FixedString(32) CODEC(ZSTD(1)) COMMENT 'SHA-256 of the canonical input; zeros when none or kept as text',
    input_digest_text String CODEC(ZSTD(3)) COMMENT 'input_digest as sent when it is not lowercase SHA-256 hex, else empty',
    input_digest      String ALIAS if(empty(input_digest_bin), input_digest_text, lower(hex(input_digest_bin)))
                      COMMENT 'Hex SHA-256 of the canonical input (empty when none)',
    output_digest_bin FixedString(32) CODEC(ZSTD(1)),
    output_digest_text String CODEC(ZSTD(3)),
    output_digest     String ALIAS if(empty(output_digest_bin), output_digest_text, lower(hex(output_digest_bin))),
    input_body        String CODEC(ZSTD(3)) COMMENT 'Redacted, capped, only when the producer opted in',
    output_body       String CODEC(ZSTD(3)),
    payload_bytes     UInt64 CODEC(T64, ZSTD(1)),
    attributes        Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    environment       LowCardinality(String) DEFAULT '' COMMENT 'Added in action schema v2',
    kafka_partition   UInt16 CODEC(ZSTD(1)) COMMENT 'Where the sink read it',
    kafka_offset      UInt64 CODEC(Delta, ZSTD(1)),
    later_copy        UInt8 DEFAULT 0 COMMENT '1: the sink had stored this event id with another body first; readers skip it',
    signature         LowCardinality(String) DEFAULT '' COMMENT 'Checkpoint rows: the sink''s verdict on the stream signature (valid, bad_signature, unknown_key, not_authorized, revoked, unchecked); others empty',
    ingested_at       DateTime64(6, 'UTC') DEFAULT now64(6) CODEC(Delta, ZSTD(1)) COMMENT 'When the store first took this copy',
    first_seen_rank   UInt64 MATERIALIZED bitNot(toUInt64(toUnixTimestamp64Micro(ingested_at))) CODEC(Delta, ZSTD(1))
                      COMMENT 'Larger for an earlier copy: merging identical copies keeps the first seen',
    INDEX idx_trace trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_action action_id TYPE bloom_filter(0.001) GRANULARITY 1,
    PROJECTION by_trace (SELECT _part_offset ORDER BY tenant, trace_id)
)
ENGINE = ReplacingMergeTree(first_seen_rank)
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant, agent_id, event_time, event_id, event_hash_bin)
TTL toDateTime(event_time) + INTERVAL {retention_days} DAY
SETTINGS deduplicate_merge_projection_mode = 'rebuild', non_replicated_deduplication_window = 10000
COMMENT 'Every action event, one row per distinct body of an event_id (readers: actions_first, first-seen copy)';

CREATE TABLE IF NOT EXISTS {database}.incidents
(
    incident_id       String COMMENT 'Derived from rule id, rule revision, key and window',
    tenant            LowCardinality(String),
    rule_id           LowCardinality(String),
    rule_revision     LowCardinality(String) COMMENT 'Content hash of the rule set',
    severity          LowCardinality(String) COMMENT 'info, low, medium, high, critical',
    severity_rank     UInt8 COMMENT '0 info .. 4 critical, for sorting',
    mode              LowCardinality(String) COMMENT 'detect, simulate or enforce',
    owner             LowCardinality(String) COMMENT 'Owning team',
    key               String COMMENT 'Grouping key of the rule',
    window_start      DateTime64(6, 'UTC'),
    window_end        DateTime64(6, 'UTC'),
    agent_id          LowCardinality(String),
    trace_id          String,
    event_ids         Array(String) COMMENT 'Triggering event ids',
    first_seen        DateTime64(6, 'UTC'),
    last_seen         DateTime64(6, 'UTC'),
    count             UInt64 COMMENT 'Hits folded into this incident',
    summary           String,
    tags              Array(LowCardinality(String)),
    attributes        Map(LowCardinality(String), String),
    ingested_at       DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX idx_trace trace_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(count)
PARTITION BY toYYYYMM(first_seen)
ORDER BY (tenant, incident_id)
TTL toDateTime(last_seen) + INTERVAL {incident_retention_days} DAY
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Incidents as opened or updated by the rule engine, the row with the highest count wins';

CREATE TABLE IF NOT EXISTS {database}.incident_lifecycle
(
    event_id          String,
    incident_id       String,
    tenant            LowCardinality(String),
    type              LowCardinality(String) COMMENT 'opened, acknowledged, assigned, resolved, reopened, escalated, commented',
    actor_type        LowCardinality(String),
    actor_id          LowCardinality(String) COMMENT 'Who did it: a signed-in human, an agent or the system',
    assignee          String,
    note              String,
    at                DateTime64(6, 'UTC'),
    attributes        Map(LowCardinality(String), String),
    ingested_at       DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY (incident_id, at, event_id)
TTL toDateTime(at) + INTERVAL {incident_retention_days} DAY
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Lifecycle events, an incident state is their fold in (at, event_id) order';

CREATE TABLE IF NOT EXISTS {database}.owners
(
    subject_kind      LowCardinality(String) COMMENT 'agent, tool, tenant or rule',
    pattern           String COMMENT 'Glob, the most specific match wins',
    team              LowCardinality(String),
    oncall            Array(String) COMMENT 'On-call contacts',
    escalation        Array(String) COMMENT 'Escalation chain, first to last',
    specificity       UInt32 COMMENT 'Higher wins when several patterns match',
    source            String COMMENT 'File the mapping came from',
    updated_at        DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (subject_kind, pattern)
COMMENT 'Ownership map loaded from the owners file';
