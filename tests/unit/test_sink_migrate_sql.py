"""DDL file handling of `agentaudit migrate`: placeholder rendering and statement splitting."""

from __future__ import annotations

from agentaudit.consumers.migrate import ddl_files, render, split_statements
from agentaudit.settings import StoreSettings


def test_packaged_ddl_renders_without_leftover_placeholders():
    settings = StoreSettings(database="audit_x", retention_days=7, incident_retention_days=30)
    files = ddl_files()
    assert files and files[0].name == "0001_base.sql"
    statements = [s for f in files for s in split_statements(render(f.read_text(), settings))]
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS audit_x"
    assert all("{" not in s.split("COMMENT")[0] for s in statements)
    assert any("INTERVAL 7 DAY" in s for s in statements) and any("INTERVAL 30 DAY" in s for s in statements)
    assert not any(s.rstrip().endswith(";") or s.lstrip().startswith("--") for s in statements)


def test_split_drops_comments_and_keeps_multiline_statements():
    sql = "-- header\nCREATE TABLE t\n(\n  a String -- trailing\n);\n\n-- between\nSELECT 1;\nSELECT {x}"
    assert split_statements(sql) == ["CREATE TABLE t\n(\n  a String -- trailing\n)", "SELECT 1", "SELECT {x}"]
