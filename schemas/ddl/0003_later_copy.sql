-- actions.later_copy (issue 12): the sink marks a copy of an event id whose body differs from the copy it stored
-- first, so that readers show the first-seen copy with a plain filter (actions_first: FINAL + later_copy = 0)
-- instead of grouping the whole table. 0001_base.sql creates the column; this adds it to tables made before.

ALTER TABLE {database}.actions ADD COLUMN IF NOT EXISTS later_copy UInt8 DEFAULT 0
    COMMENT '1: the sink had stored this event id with another body first; readers skip it' AFTER kafka_offset;
