-- Analyst views: the stable, documented face of the store (docs/analysts.md has example queries).
-- Views hold no data: they read the base tables of 0001_base.sql, deduplicated (an event id stored with
-- several bodies shows its first-seen copy, see action_conflicts), with the incident state
-- folded from incident_lifecycle exactly as agentaudit.schemas.IncidentState.fold does. CREATE OR REPLACE
-- keeps `agentaudit migrate` idempotent and lets a new release change a view's body; columns are only added.
-- actions_first names the hex hash columns besides `*`: they are ALIAS columns over the stored bytes, which `*` omits.
-- Owner globs ('*' any run, '?' one character) become LIKE patterns; the highest specificity wins.

CREATE OR REPLACE VIEW {database}.action_conflicts
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
    FROM {database}.actions
    WHERE (tenant, event_id) IN (
        SELECT tenant, event_id FROM {database}.actions GROUP BY tenant, event_id HAVING min(event_hash) != max(event_hash))
    GROUP BY tenant, event_id, event_hash
)
GROUP BY tenant, event_id
COMMENT 'Event ids re-sent with a different body (integrity.conflicting-duplicate): every copy is kept, the first seen is shown';

CREATE OR REPLACE VIEW {database}.actions_first
AS SELECT *, prev_hash, event_hash, input_digest, output_digest
FROM {database}.actions FINAL
WHERE later_copy = 0
COMMENT 'Every action event once: the first-seen copy of each (tenant, event_id); later copies with another body are in action_conflicts';

CREATE OR REPLACE VIEW {database}.agent_owner
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
FROM (SELECT DISTINCT toString(agent_id) AS agent_id FROM {database}.actions) AS a
CROSS JOIN (SELECT toString(team) AS team, oncall, pattern, specificity FROM {database}.owners FINAL WHERE subject_kind = 'agent') AS o
WHERE a.agent_id LIKE replaceAll(replaceAll(replaceAll(replaceAll(replaceAll(o.pattern, '\\', '\\\\'), '%', '\\%'), '_', '\\_'), '*', '%'), '?', '_')
GROUP BY a.agent_id
COMMENT 'Owning team of every agent that has acted and matches an owners pattern (agents no pattern matches are absent)';

CREATE OR REPLACE VIEW {database}.actions_owned
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
FROM {database}.actions_first AS a
LEFT JOIN {database}.agent_owner AS o ON o.agent_id = toString(a.agent_id)
SETTINGS join_use_nulls = 1
COMMENT 'Every action event once (its first-seen copy), with the owning team of its agent resolved';

CREATE OR REPLACE VIEW {database}.incident_current
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
FROM {database}.incidents AS i FINAL
LEFT JOIN
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
    FROM {database}.incident_lifecycle FINAL
    GROUP BY incident_id
) AS l ON l.incident_id = i.incident_id
COMMENT 'Every incident once, with its current state folded from the lifecycle events';

CREATE OR REPLACE VIEW {database}.cost_daily
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
FROM {database}.actions_owned
GROUP BY day, tenant, owner, agent_id, model
COMMENT 'Cost, tokens and errors per UTC day, tenant, owning team, agent and model';

CREATE OR REPLACE VIEW {database}.tta_by_team
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
FROM {database}.incident_current
GROUP BY owner
COMMENT 'Time to acknowledge per owning team, from incident_current';
