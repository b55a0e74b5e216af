"""The store server's SQL shape-reading: INSERT headers, output formats, statement kinds."""

from __future__ import annotations

import agentaudit.infra.store as store_pkg
from agentaudit.infra.store._codecs import compressor, decompress_stream, pick_encoding
from agentaudit.infra.store._sql import leading_keyword, output_format, split_insert


def test_store_all_is_complete() -> None:
    public = {n for n in dir(store_pkg) if not n.startswith("_") and n not in {"exceptions", "server"}}
    assert set(store_pkg.__all__) == public


def test_split_insert_keeps_binary_data_after_the_header() -> None:
    assert split_insert(b"INSERT INTO db.t (`a`, `b`) FORMAT Native\n\x01\x02FORMAT\xff") == (
        "INSERT INTO db.t (`a`, `b`)", "Native", b"\x01\x02FORMAT\xff")
    assert split_insert(b"  insert into t format CSV") == ("insert into t", "CSV", b"")
    assert split_insert(b"INSERT INTO t SETTINGS insert_deduplication_token='a\\'b' FORMAT Arrow\n") == (
        "INSERT INTO t SETTINGS insert_deduplication_token='a\\'b'", "Arrow", b"")


def test_split_insert_ignores_format_inside_values_and_selects() -> None:
    # VALUES rows go to the Values input format, never to the SQL executor
    assert split_insert(b"INSERT INTO t VALUES ('FORMAT x')") == ("INSERT INTO t", "Values", b"('FORMAT x')")
    assert split_insert(b"INSERT INTO t (`a`) VALUES (1); DROP TABLE t") == (
        "INSERT INTO t (`a`)", "Values", b"(1); DROP TABLE t")
    assert split_insert(b"INSERT INTO t SELECT 'FORMAT' FROM numbers(1)") is None
    assert split_insert(b"SELECT 1 FORMAT Native") is None


def test_output_format_reads_the_trailing_clause() -> None:
    assert output_format("SELECT 1 FORMAT JSONEachRow", "TSV") == "JSONEachRow"
    assert output_format("SELECT 1 FORMAT Arrow SETTINGS max_threads = 1;", "TSV") == "Arrow"
    assert output_format("SELECT 'FORMAT CSV' AS x", "Native") == "Native"


def test_leading_keyword_skips_comments_and_parentheses() -> None:
    assert leading_keyword("-- hi\n/* x */ ((SELECT 1))") == "SELECT"
    assert leading_keyword("  with 1 as x select x") == "WITH"
    assert leading_keyword("") == ""


def test_codecs_round_trip_in_pieces() -> None:
    data = b"0123456789" * 10_000
    for encoding in ("gzip", "deflate", "lz4", "zstd"):
        codec = compressor(encoding)
        packed = b"".join([codec.compress(data[:50_000]), codec.compress(data[50_000:]), codec.flush()])
        pieces = [packed[i:i + 777] for i in range(0, len(packed), 777)]
        assert b"".join(decompress_stream(pieces, encoding)) == data, encoding
    assert pick_encoding("gzip, lz4;q=0.5") == "gzip"
    assert pick_encoding("br") is None


def test_parse_set_and_use() -> None:
    from agentaudit.infra.store._sessions import parse_set, parse_use

    assert parse_set("SET max_threads = 2, x = 'a\\'b, c';") == {"max_threads": "2", "x": "a'b, c"}
    assert parse_set("set readonly=1") == {"readonly": "1"}
    assert parse_set("SET ROLE admin") is None
    assert parse_set("SET a = 1 garbage") is None
    assert parse_use("USE `my db`") == "my db"
    assert parse_use("use analytics;") == "analytics"
    assert parse_use("USE a; DROP TABLE b") is None
