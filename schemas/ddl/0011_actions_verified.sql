-- actions_verified (issue 12, signed producer streams): per stored row, whether a valid signed checkpoint covers it.
-- A checkpoint at seq k signs k's prev_hash, so it vouches for row s < k when every link from s up to k holds (a
-- row's event_hash is the next row's prev_hash; a seq gap of dropped events does not break a link, the gap is an
-- incident of its own). The view finds, per stream, the first checkpoint after each row and the first broken link
-- at or after it; verified = that checkpoint's stored verdict is 'valid' and no link breaks before it. Computed on
-- read with window functions over actions_first: filter by tenant and stream_id (or agent_id) when the store is
-- large. A checkpoint row itself (and a stream's last rows) is covered only by the next checkpoint.

CREATE OR REPLACE VIEW {database}.actions_verified
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
        FROM {database}.actions_first
        WINDOW next_one AS (PARTITION BY tenant, stream_id ORDER BY seq ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING)
    )
    WINDOW after AS (PARTITION BY tenant, stream_id ORDER BY seq ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING),
           from_here AS (PARTITION BY tenant, stream_id ORDER BY seq ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING)
)
COMMENT 'Every action event once, with whether a valid signed checkpoint of its stream covers it (signed producer streams)';
