-- Store-side digests (CloudTrail's digest files as the model): after every batch the sink writes, per Kafka
-- partition range of the actions topic it stored, one signed record listing a 16-byte leaf hash of each row's
-- content by offset. `agentaudit verify --store` re-reads `actions`, recomputes the leaves and reports rows
-- modified, deleted or added after the fact. Records are chained per sink run and partition (prev_digest), so
-- a deleted digest record breaks its chain. consumers/digests.py defines the leaf, the root and the signature.
-- Leaves are stored as bytes (`leaves_bin`, issue 15) and read as hex through the ALIAS `leaves`; consumers/migrate.py
-- rebuilds a table of the layout before (hex leaves) into this one.

CREATE TABLE IF NOT EXISTS {database}.action_digests
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
ENGINE = ReplacingMergeTree
ORDER BY (topic, kafka_partition, first_offset, digest_id)
TTL toDateTime(max_event_time) + INTERVAL {retention_days} DAY
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Signed digests over what the sink stored in actions, per partition range';
