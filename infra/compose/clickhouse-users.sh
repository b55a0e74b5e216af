#!/bin/bash
# Creates the two agentaudit users on first start of the ClickHouse server:
#   agentaudit_writer: the consumer and `agentaudit migrate` (DDL + inserts on the agentaudit database);
#   agentaudit_reader: the dashboard and analysts, read-only (readonly = 2 lets a client set query settings).
set -euo pipefail
clickhouse client --password "${CLICKHOUSE_PASSWORD}" -n <<SQL
CREATE DATABASE IF NOT EXISTS agentaudit;
CREATE USER IF NOT EXISTS agentaudit_writer IDENTIFIED WITH sha256_password BY '${AGENTAUDIT_WRITER_PASSWORD}';
GRANT CREATE DATABASE, CREATE TABLE, CREATE VIEW, ALTER, DROP VIEW, INSERT, SELECT, OPTIMIZE ON agentaudit.* TO agentaudit_writer;
CREATE SETTINGS PROFILE IF NOT EXISTS agentaudit_readonly SETTINGS readonly = 2, max_execution_time = 30, max_result_rows = 1000000;
CREATE USER IF NOT EXISTS agentaudit_reader IDENTIFIED WITH sha256_password BY '${AGENTAUDIT_READER_PASSWORD}' SETTINGS PROFILE agentaudit_readonly;
GRANT SELECT ON agentaudit.* TO agentaudit_reader;
SQL
