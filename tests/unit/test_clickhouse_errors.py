"""Error translation of the ClickHouse wrapper: codes survive, statements are named."""

from __future__ import annotations

import agentaudit.infra.clickhouse as ch
from agentaudit.infra.clickhouse._errors import first_line, parse_code, store_error
from agentaudit.infra.exceptions import StoreError


def test_all_is_complete() -> None:
    public = {name for name in dir(ch) if not name.startswith("_") and name != "store"}
    assert set(ch.__all__) == public


def test_parse_code_from_server_text_and_driver_preamble() -> None:
    assert parse_code("Code: 60. DB::Exception: Unknown table expression identifier 'nope'") == 60
    assert parse_code("HTTPDriver for http://x:8123 received ClickHouse error code 164\n Code: 164. DB") == 164
    assert parse_code("connection refused") is None


def test_first_line_skips_blank_lines_and_shortens() -> None:
    assert first_line("\n\n  CREATE TABLE x\n(a UInt8)") == "CREATE TABLE x"
    assert len(first_line("SELECT " + "a, " * 100)) == 120
    assert first_line("  ") == "<empty statement>"


def test_store_error_keeps_code_statement_and_hint() -> None:
    err = store_error(RuntimeError("boom: Code: 60. DB::Exception: no table t\nstack"), action="query",
                      where="http://h:8123", sql="SELECT *\nFROM t")
    assert isinstance(err, StoreError)
    assert err.code == 60
    assert "[SELECT *]" in str(err) and "http://h:8123" in str(err) and "migrate" in str(err)
    assert "stack" not in str(err)


def test_store_error_without_code_says_to_check_reachability() -> None:
    err = store_error(ConnectionRefusedError("refused"), action="connect", where="http://h:8123")
    assert err.code is None
    assert "AGENTAUDIT_CLICKHOUSE_URL" in str(err)
