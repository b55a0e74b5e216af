-- The actions table as main wrote it before issue 15 (hashes as hex strings, the full-copy by_trace projection),
-- frozen here so that `python -m benchmarks storage` measures the layout before beside the current one in one run.
-- TTL dropped: the benchmark keeps whatever it stores.
CREATE TABLE IF NOT EXISTS {database}.actions_before
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
    later_copy        UInt8 DEFAULT 0 COMMENT '1: the sink had stored this event id with another body first; readers skip it',
    signature         LowCardinality(String) DEFAULT '' COMMENT 'Checkpoint rows: the sink''s verdict on the stream signature (valid, bad_signature, unknown_key, not_authorized, revoked, unchecked); others empty',
    ingested_at       DateTime64(6, 'UTC') DEFAULT now64(6) COMMENT 'When the store first took this copy',
    first_seen_rank   UInt64 MATERIALIZED bitNot(toUInt64(toUnixTimestamp64Micro(ingested_at)))
                      COMMENT 'Larger for an earlier copy: merging identical copies keeps the first seen',
    INDEX idx_trace trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_action action_id TYPE bloom_filter(0.001) GRANULARITY 1,
    PROJECTION by_trace (SELECT * ORDER BY tenant, trace_id, event_time)
)
ENGINE = ReplacingMergeTree(first_seen_rank)
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant, agent_id, event_time, event_id, event_hash)
SETTINGS deduplicate_merge_projection_mode = 'rebuild', non_replicated_deduplication_window = 10000
COMMENT 'Every action event, one row per distinct body of an event_id (readers: actions_first, first-seen copy)';
