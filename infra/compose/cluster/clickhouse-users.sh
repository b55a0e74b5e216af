#!/bin/bash
# Creates the agentaudit users on first start of each ClickHouse server of the cluster (users are local to a
# server; every server needs them, since a Distributed query runs as its sender on every shard):
#   agentaudit_writer: the consumers and `agentaudit migrate --cluster` (ON CLUSTER DDL needs GRANT CLUSTER).
#     Its profile makes Distributed inserts synchronous (distributed_foreground_insert = 1): an insert is
#     acknowledged once every shard's replica has it, so the sink commits Kafka offsets only after that, and a
#     retried insert reaches the shards with its insert_deduplication_token.
#   agentaudit_reader: the dashboard and analysts, read-only (readonly = 2 lets a client set query settings);
#     optimize_skip_unused_shards sends a query that names tenant and trace_id to the one shard holding the trace.
set -euo pipefail
clickhouse client --password "${CLICKHOUSE_PASSWORD}" -n <<SQL
CREATE DATABASE IF NOT EXISTS agentaudit;
CREATE SETTINGS PROFILE IF NOT EXISTS agentaudit_writing SETTINGS distributed_foreground_insert = 1;
CREATE USER IF NOT EXISTS agentaudit_writer IDENTIFIED WITH sha256_password BY '${AGENTAUDIT_WRITER_PASSWORD}' SETTINGS PROFILE agentaudit_writing;
GRANT CREATE DATABASE, CREATE TABLE, CREATE VIEW, ALTER, DROP VIEW, INSERT, SELECT, OPTIMIZE ON agentaudit.* TO agentaudit_writer;
GRANT CLUSTER ON *.* TO agentaudit_writer;
CREATE SETTINGS PROFILE IF NOT EXISTS agentaudit_readonly SETTINGS readonly = 2, max_execution_time = 30, max_result_rows = 1000000, optimize_skip_unused_shards = 1;
CREATE USER IF NOT EXISTS agentaudit_reader IDENTIFIED WITH sha256_password BY '${AGENTAUDIT_READER_PASSWORD}' SETTINGS PROFILE agentaudit_readonly;
GRANT SELECT ON agentaudit.* TO agentaudit_reader;
SQL
