-- actions.signature (issue 12, signed producer streams): the sink's verdict on a checkpoint row's signature
-- (schemas/checkpoints.py): valid, bad_signature, unknown_key, not_authorized, revoked, or unchecked when the sink
-- has no keys file; empty on rows that are not checkpoints. Whether a row is covered by a valid checkpoint is
-- derived on read by the view actions_verified (0011_actions_verified.sql). 0001_base.sql creates the column;
-- this adds it to tables made before.

ALTER TABLE {database}.actions ADD COLUMN IF NOT EXISTS signature LowCardinality(String) DEFAULT ''
    COMMENT 'Checkpoint rows: the sink''s verdict on the stream signature (valid, bad_signature, unknown_key, not_authorized, revoked, unchecked); others empty' AFTER later_copy;
