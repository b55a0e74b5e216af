-- 0001_base.sql
CREATE DATABASE IF NOT EXISTS agentaudit ON CLUSTER agentaudit;

CREATE TABLE IF NOT EXISTS agentaudit.actions_local ON CLUSTER agentaudit
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', first_seen_rank)
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant, agent_id, event_time, event_id, event_hash_bin)
TTL toDateTime(event_time) + INTERVAL 90 DAY
SETTINGS deduplicate_merge_projection_mode = 'rebuild', replicated_deduplication_window = 10000
COMMENT 'Every action event, one row per distinct body of an event_id (readers: actions_first, first-seen copy)';

CREATE TABLE IF NOT EXISTS agentaudit.actions ON CLUSTER agentaudit AS agentaudit.actions_local
ENGINE = Distributed(agentaudit, agentaudit, actions_local, cityHash64(tenant, trace_id));

CREATE TABLE IF NOT EXISTS agentaudit.incidents_local ON CLUSTER agentaudit
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', count)
PARTITION BY toYYYYMM(first_seen)
ORDER BY (tenant, incident_id)
TTL toDateTime(last_seen) + INTERVAL 365 DAY
SETTINGS replicated_deduplication_window = 10000
COMMENT 'Incidents as opened or updated by the rule engine, the row with the highest count wins';

CREATE TABLE IF NOT EXISTS agentaudit.incidents ON CLUSTER agentaudit AS agentaudit.incidents_local
ENGINE = Distributed(agentaudit, agentaudit, incidents_local, cityHash64(incident_id));

CREATE TABLE IF NOT EXISTS agentaudit.incident_lifecycle_local ON CLUSTER agentaudit
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', ingested_at)
ORDER BY (incident_id, at, event_id)
TTL toDateTime(at) + INTERVAL 365 DAY
SETTINGS replicated_deduplication_window = 10000
COMMENT 'Lifecycle events, an incident state is their fold in (at, event_id) order';

CREATE TABLE IF NOT EXISTS agentaudit.incident_lifecycle ON CLUSTER agentaudit AS agentaudit.incident_lifecycle_local
ENGINE = Distributed(agentaudit, agentaudit, incident_lifecycle_local, cityHash64(incident_id));

CREATE TABLE IF NOT EXISTS agentaudit.owners_local ON CLUSTER agentaudit
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', updated_at)
ORDER BY (subject_kind, pattern)
COMMENT 'Ownership map loaded from the owners file';

CREATE TABLE IF NOT EXISTS agentaudit.owners ON CLUSTER agentaudit AS agentaudit.owners_local
ENGINE = Distributed(agentaudit, agentaudit, owners_local, cityHash64(subject_kind, pattern));

-- 0002_digests.sql
CREATE TABLE IF NOT EXISTS agentaudit.action_digests_local ON CLUSTER agentaudit
(
    digest_id         String COMMENT 'Hex SHA-256 of the signed header',
    topic             LowCardinality(String) COMMENT 'Kafka topic the rows were read from',
    kafka_partition   UInt16,
    first_offset      UInt64 COMMENT 'First offset of the range (inclusive)',
    last_offset       UInt64 COMMENT 'Last offset of the range (inclusive)',
    rows              UInt32 COMMENT 'Rows stored from the range (dead-lettered offsets are absent)',
    min_event_time    DateTime64(6, 'UTC') COMMENT 'Earliest event time of the rows (retention may drop them after)',
    max_event_time    DateTime64(6, 'UTC'),
    offsets           Array(UInt64) CODEC(Delta, ZSTD(1)) COMMENT 'Kafka offset of each stored row, ascending',
    leaves_bin        Array(FixedString(16)) COMMENT 'The first 16 bytes of SHA-256 over each row''s content',
    leaves            Array(String) ALIAS arrayMap(x -> lower(hex(x)), leaves_bin)
                      COMMENT 'Hex of the first 16 bytes of SHA-256 over each row''s content',
    root              String COMMENT 'Hex SHA-256 over (offset, leaf) pairs in order',
    prev_digest       String COMMENT 'digest_id of the previous record of this sink run and partition, empty first',
    sink_run          String COMMENT 'Random id of the sink process that wrote it',
    created_at        DateTime64(6, 'UTC'),
    key_id            String COMMENT 'Signing key: first 16 hex of SHA-256 of the Ed25519 public key',
    signature         String COMMENT 'Hex Ed25519 signature over the canonical header'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
ORDER BY (topic, kafka_partition, first_offset, digest_id)
TTL toDateTime(max_event_time) + INTERVAL 90 DAY
SETTINGS replicated_deduplication_window = 10000
COMMENT 'Signed digests over what the sink stored in actions, per partition range';

CREATE TABLE IF NOT EXISTS agentaudit.action_digests ON CLUSTER agentaudit AS agentaudit.action_digests_local
ENGINE = Distributed(agentaudit, agentaudit, action_digests_local, cityHash64(topic, kafka_partition));

-- 0003_later_copy.sql
ALTER TABLE agentaudit.actions_local ON CLUSTER agentaudit ADD COLUMN IF NOT EXISTS later_copy UInt8 DEFAULT 0
    COMMENT '1: the sink had stored this event id with another body first; readers skip it' AFTER kafka_offset;

ALTER TABLE agentaudit.actions ON CLUSTER agentaudit ADD COLUMN IF NOT EXISTS later_copy UInt8 DEFAULT 0
    COMMENT '1: the sink had stored this event id with another body first; readers skip it' AFTER kafka_offset;

-- 0004_signatures.sql
ALTER TABLE agentaudit.actions_local ON CLUSTER agentaudit ADD COLUMN IF NOT EXISTS signature LowCardinality(String) DEFAULT ''
    COMMENT 'Checkpoint rows: the sink''s verdict on the stream signature (valid, bad_signature, unknown_key, not_authorized, revoked, unchecked); others empty' AFTER later_copy;

ALTER TABLE agentaudit.actions ON CLUSTER agentaudit ADD COLUMN IF NOT EXISTS signature LowCardinality(String) DEFAULT ''
    COMMENT 'Checkpoint rows: the sink''s verdict on the stream signature (valid, bad_signature, unknown_key, not_authorized, revoked, unchecked); others empty' AFTER later_copy;

-- 0010_analyst_views.sql
CREATE OR REPLACE VIEW agentaudit.action_conflicts ON CLUSTER agentaudit
(
    tenant            String,
    event_id          String COMMENT 'An event id stored with more than one body',
    copies            UInt64 COMMENT 'Distinct bodies stored under it',
    first_hash        String COMMENT 'Body hash of the first-seen copy: the one every reader shows',
    later_hashes      Array(String) COMMENT 'Body hashes of the later copies, in the order the store took them',
    first_ingested_at DateTime64(6, 'UTC') COMMENT 'When the store took the first copy',
    last_ingested_at  DateTime64(6, 'UTC') COMMENT 'When it took the latest copy'
)
AS SELECT
    tenant, event_id, count() AS copies,
    arraySort(x -> x.2, groupArray((event_hash, first)))[1].1 AS first_hash,
    arrayMap(x -> x.1, arrayPopFront(arraySort(x -> x.2, groupArray((event_hash, first))))) AS later_hashes,
    min(first.1) AS first_ingested_at, max(first.1) AS last_ingested_at
FROM
(
    SELECT toString(tenant) AS tenant, event_id, event_hash, min((ingested_at, kafka_partition, kafka_offset)) AS first
    FROM agentaudit.actions
    WHERE (tenant, event_id) GLOBAL IN (
        SELECT tenant, event_id FROM agentaudit.actions GROUP BY tenant, event_id HAVING min(event_hash) != max(event_hash))
    GROUP BY tenant, event_id, event_hash
)
GROUP BY tenant, event_id
COMMENT 'Event ids re-sent with a different body (integrity.conflicting-duplicate): every copy is kept, the first seen is shown';

CREATE OR REPLACE VIEW agentaudit.actions_first ON CLUSTER agentaudit
AS SELECT *, prev_hash, event_hash, input_digest, output_digest
FROM agentaudit.actions FINAL
WHERE later_copy = 0
COMMENT 'Every action event once: the first-seen copy of each (tenant, event_id); later copies with another body are in action_conflicts';

CREATE OR REPLACE VIEW agentaudit.agent_owner ON CLUSTER agentaudit
(
    agent_id          String COMMENT 'Agent id seen in actions',
    team              String COMMENT 'Owning team from the owners table, empty when no pattern matches',
    oncall            Array(String) COMMENT 'On-call contacts of the owning team mapping',
    pattern           String COMMENT 'The owners pattern that won'
)
AS SELECT
    a.agent_id AS agent_id,
    argMax(o.team, o.specificity) AS team,
    argMax(o.oncall, o.specificity) AS oncall,
    argMax(o.pattern, o.specificity) AS pattern
FROM (SELECT DISTINCT toString(agent_id) AS agent_id FROM agentaudit.actions) AS a
GLOBAL CROSS JOIN (SELECT toString(team) AS team, oncall, pattern, specificity FROM agentaudit.owners FINAL WHERE subject_kind = 'agent') AS o
WHERE a.agent_id LIKE replaceAll(replaceAll(replaceAll(replaceAll(replaceAll(o.pattern, '\\', '\\\\'), '%', '\\%'), '_', '\\_'), '*', '%'), '?', '_')
GROUP BY a.agent_id
COMMENT 'Owning team of every agent that has acted and matches an owners pattern (agents no pattern matches are absent)';

CREATE OR REPLACE VIEW agentaudit.actions_owned ON CLUSTER agentaudit
(
    event_id          String COMMENT 'UUID of the event',
    tenant            String,
    agent_id          String,
    owner             String COMMENT 'Owning team of the agent (agent_owner), empty when unowned',
    run_id            String,
    trace_id          String COMMENT 'Root of the causal tree',
    action_id         String COMMENT 'Shared by the start and end events of one action',
    parent_action_id  String COMMENT 'Causing action, empty for a trace root',
    depth             UInt16 COMMENT 'Distance from the trace root',
    kind              String COMMENT 'execute_tool, chat, invoke_agent, ...',
    name              String COMMENT 'Tool, model or target name',
    phase             String COMMENT 'start, end or point',
    status            String COMMENT 'unset, ok, error, cancelled, denied, timeout',
    error_type        String,
    actor_type        String,
    actor_id          String,
    model             String,
    input_tokens      UInt64,
    output_tokens     UInt64,
    cost_usd          Float64 COMMENT 'Cost of this event in US dollars',
    latency_us        Nullable(UInt64) COMMENT 'Set on end events',
    event_time        DateTime64(6, 'UTC') COMMENT 'Event time',
    environment       String
)
AS SELECT
    a.event_id AS event_id, toString(a.tenant) AS tenant, toString(a.agent_id) AS agent_id, ifNull(o.team, '') AS owner,
    a.run_id AS run_id, a.trace_id AS trace_id, a.action_id AS action_id, a.parent_action_id AS parent_action_id,
    a.depth AS depth, toString(a.kind) AS kind, toString(a.name) AS name, toString(a.phase) AS phase,
    toString(a.status) AS status, toString(a.error_type) AS error_type, toString(a.actor_type) AS actor_type,
    toString(a.actor_id) AS actor_id, toString(a.model) AS model, a.input_tokens AS input_tokens,
    a.output_tokens AS output_tokens, a.cost_usd AS cost_usd, a.latency_us AS latency_us, a.event_time AS event_time,
    toString(a.environment) AS environment
FROM agentaudit.actions_first AS a
GLOBAL LEFT JOIN agentaudit.agent_owner AS o ON o.agent_id = toString(a.agent_id)
SETTINGS join_use_nulls = 1
COMMENT 'Every action event once (its first-seen copy), with the owning team of its agent resolved';

CREATE OR REPLACE VIEW agentaudit.incident_current ON CLUSTER agentaudit
(
    incident_id       String COMMENT 'Deterministic id: rule id, revision, key and window',
    tenant            String,
    rule_id           String,
    rule_revision     String COMMENT 'Content hash of the rule set that opened it',
    severity          String COMMENT 'info, low, medium, high, critical',
    severity_rank     UInt8 COMMENT '0 info .. 4 critical',
    mode              String COMMENT 'detect, simulate or enforce',
    owner             String COMMENT 'Owning team named by the rule or the owners map',
    key               String COMMENT 'Grouping key of the rule',
    agent_id          String,
    trace_id          String COMMENT 'Trace of the violating action',
    event_ids         Array(String) COMMENT 'Triggering event ids',
    first_seen        DateTime64(6, 'UTC'),
    last_seen         DateTime64(6, 'UTC'),
    count             UInt64 COMMENT 'Hits folded into the incident',
    summary           String,
    tags              Array(String),
    attributes        Map(String, String) COMMENT 'Rule output fields',
    window_start      DateTime64(6, 'UTC') COMMENT 'Rule window the incident covers',
    window_end        DateTime64(6, 'UTC'),
    status            String COMMENT 'open, acknowledged or resolved: the fold of the lifecycle events',
    assignee          String COMMENT 'Last assignee (person or team), empty when never assigned',
    acknowledged_by   String COMMENT 'Who acknowledged first, empty when never acknowledged',
    acknowledged_at   Nullable(DateTime64(6, 'UTC')),
    resolved_by       String COMMENT 'Who resolved it, empty unless resolved',
    resolved_at       Nullable(DateTime64(6, 'UTC')),
    escalation_level  UInt64 COMMENT 'How many times it was escalated',
    last_note         String COMMENT 'The latest note of any lifecycle event',
    lifecycle_events  UInt64 COMMENT 'Lifecycle events folded',
    tta_seconds       Nullable(Float64) COMMENT 'Time to acknowledge: first ack minus first_seen, in seconds'
)
AS SELECT
    i.incident_id AS incident_id, toString(i.tenant) AS tenant, toString(i.rule_id) AS rule_id,
    toString(i.rule_revision) AS rule_revision, toString(i.severity) AS severity, i.severity_rank AS severity_rank,
    toString(i.mode) AS mode, toString(i.owner) AS owner, i.key AS key, toString(i.agent_id) AS agent_id,
    i.trace_id AS trace_id, i.event_ids AS event_ids, i.first_seen AS first_seen, i.last_seen AS last_seen,
    i.count AS count, i.summary AS summary, arrayMap(t -> toString(t), i.tags) AS tags,
    CAST(i.attributes, 'Map(String, String)') AS attributes, i.window_start AS window_start, i.window_end AS window_end,
    if(l.events = 0, 'open', l.status) AS status,
    l.assignee AS assignee,
    l.acknowledged_by AS acknowledged_by,
    if(l.acknowledged_by = '', NULL, l.acknowledged_at) AS acknowledged_at,
    if(l.status = 'resolved', l.resolved_by, '') AS resolved_by,
    if(l.status = 'resolved', l.resolved_at, NULL) AS resolved_at,
    l.escalations AS escalation_level,
    l.last_note AS last_note,
    l.events AS lifecycle_events,
    if(l.acknowledged_by = '', NULL, dateDiff('microsecond', i.first_seen, l.acknowledged_at) / 1e6) AS tta_seconds
FROM agentaudit.incidents AS i FINAL
GLOBAL LEFT JOIN
(
    SELECT
        incident_id,
        multiIf(argMaxIf(type, (at, event_id), type IN ('resolved', 'reopened')) = 'resolved', 'resolved',
                maxIf(at, type = 'acknowledged') > maxIf(at, type IN ('resolved', 'reopened')), 'acknowledged',
                'open') AS status,
        argMaxIf(assignee, (at, event_id), type = 'assigned') AS assignee,
        toString(argMinIf(actor_id, (at, event_id), type = 'acknowledged')) AS acknowledged_by,
        minIf(at, type = 'acknowledged') AS acknowledged_at,
        toString(argMaxIf(actor_id, (at, event_id), type = 'resolved')) AS resolved_by,
        maxIf(at, type = 'resolved') AS resolved_at,
        countIf(type = 'escalated') AS escalations,
        argMaxIf(note, (at, event_id), note != '') AS last_note,
        count() AS events
    FROM agentaudit.incident_lifecycle FINAL
    GROUP BY incident_id
) AS l ON l.incident_id = i.incident_id
COMMENT 'Every incident once, with its current state folded from the lifecycle events';

CREATE OR REPLACE VIEW agentaudit.cost_daily ON CLUSTER agentaudit
(
    day               Date COMMENT 'UTC day of the event time',
    tenant            String,
    owner             String COMMENT 'Owning team of the agent, empty when unowned',
    agent_id          String,
    model             String COMMENT 'Model name, empty for events without a model',
    events            UInt64,
    errors            UInt64 COMMENT 'Events with status error or timeout',
    input_tokens      UInt64,
    output_tokens     UInt64,
    cost_usd          Float64 COMMENT 'Sum of cost_usd'
)
AS SELECT
    toDate(event_time) AS day, tenant, owner, agent_id, model,
    count() AS events,
    countIf(status IN ('error', 'timeout')) AS errors,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cost_usd) AS cost_usd
FROM agentaudit.actions_owned
GROUP BY day, tenant, owner, agent_id, model
COMMENT 'Cost, tokens and errors per UTC day, tenant, owning team, agent and model';

CREATE OR REPLACE VIEW agentaudit.tta_by_team ON CLUSTER agentaudit
(
    team              String COMMENT 'Owning team of the incidents (incident owner), empty when unowned',
    incidents         UInt64 COMMENT 'Incidents the team owns',
    open              UInt64 COMMENT 'Of which open (not acknowledged, not resolved)',
    acknowledged      UInt64 COMMENT 'Of which ever acknowledged',
    mean_tta_seconds  Nullable(Float64) COMMENT 'Mean time to acknowledge, seconds',
    p50_tta_seconds   Nullable(Float64) COMMENT 'Median time to acknowledge, seconds',
    p90_tta_seconds   Nullable(Float64) COMMENT '90th percentile time to acknowledge, seconds'
)
AS SELECT
    owner AS team,
    count() AS incidents,
    countIf(status = 'open') AS open,
    countIf(acknowledged_by != '') AS acknowledged,
    avg(tta_seconds) AS mean_tta_seconds,
    quantile(0.5)(tta_seconds) AS p50_tta_seconds,
    quantile(0.9)(tta_seconds) AS p90_tta_seconds
FROM agentaudit.incident_current
GROUP BY owner
COMMENT 'Time to acknowledge per owning team, from incident_current';

-- 0011_actions_verified.sql
CREATE OR REPLACE VIEW agentaudit.actions_verified ON CLUSTER agentaudit
(
    event_id             String,
    tenant               String,
    agent_id             String,
    stream_id            String,
    seq                  UInt64,
    event_time           DateTime64(6, 'UTC'),
    kind                 String,
    name                 String,
    signature            String COMMENT 'This row''s own verdict when it is a checkpoint, else empty',
    checkpoint_seq       Nullable(UInt64) COMMENT 'The first checkpoint after this row in its stream, NULL when none',
    checkpoint_signature String COMMENT 'That checkpoint''s verdict (actions.signature)',
    verified             UInt8 COMMENT '1: covered by a valid checkpoint through an unbroken chain'
)
AS SELECT
    event_id, toString(tenant) AS tenant, toString(agent_id) AS agent_id, stream_id, seq, event_time,
    toString(kind) AS kind, toString(name) AS name, toString(signature) AS signature,
    if(next_checkpoint = 18446744073709551615, NULL, next_checkpoint) AS checkpoint_seq,
    checkpoint_signature,
    toUInt8(checkpoint_signature = 'valid' AND first_break >= next_checkpoint) AS verified
FROM
(
    SELECT
        event_id, tenant, agent_id, stream_id, seq, event_time, kind, name, signature,
        min(if(signature != '', seq, 18446744073709551615)) OVER after AS next_checkpoint,
        toString(argMin(signature, if(signature != '', seq, 18446744073709551615)) OVER after) AS checkpoint_signature,
        min(if(link_ok, 18446744073709551615, seq)) OVER from_here AS first_break
    FROM
    (
        SELECT
            event_id, tenant, agent_id, stream_id, seq, event_time, kind, name, signature,
            leadInFrame(prev_hash) OVER next_one = event_hash AS link_ok
        FROM agentaudit.actions_first
        WINDOW next_one AS (PARTITION BY tenant, stream_id ORDER BY seq ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING)
    )
    WINDOW after AS (PARTITION BY tenant, stream_id ORDER BY seq ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING),
           from_here AS (PARTITION BY tenant, stream_id ORDER BY seq ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING)
)
COMMENT 'Every action event once, with whether a valid signed checkpoint of its stream covers it (signed producer streams)';
