"""Just enough SQL shape-reading for the HTTP front: statement kind and an INSERT's FORMAT."""

from __future__ import annotations

import re

__all__ = ["READ_AST_ROOTS", "STREAM_SAFE_FORMATS", "is_multi_statement", "leading_keyword", "output_format",
           "split_insert"]

# Formats whose per-block outputs concatenate into one valid stream (no file header/footer).
STREAM_SAFE_FORMATS = frozenset({
    "Native", "TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw", "CSV", "RowBinary", "JSONEachRow",
    "JSONCompactEachRow", "JSONStringsEachRow", "Values",
})
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*(?:SETTINGS\b[^']*)?;?\s*\Z", re.IGNORECASE)

_COMMENTS = re.compile(r"(--[^\n]*|#[^\n]*|/\*.*?\*/)", re.DOTALL)
_KEYWORD = re.compile(r"[\s(]*([A-Za-z]+)")
# INSERT ... FORMAT <name> [inline data]; the data (if any) starts after one whitespace char.
_INSERT_FORMAT = re.compile(rb"\A(?P<head>\s*INSERT\b.*?)\bFORMAT\s+(?P<fmt>[A-Za-z0-9_]+)[ \t]*(?:\r?\n)?",
                            re.IGNORECASE | re.DOTALL)

_NOT_A_FORMAT_HEAD = re.compile(r"'|\bVALUES\b|\bSELECT\b", re.IGNORECASE)
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'", re.DOTALL)

# Roots of `EXPLAIN AST` that only read: what a read-only request may run.
READ_AST_ROOTS = frozenset({
    "SelectWithUnionQuery", "SelectIntersectExceptQuery", "SelectQuery", "ShowTables", "DescribeQuery",
    "ExistsTableQuery", "ExistsDatabaseQuery", "ExistsDictionaryQuery", "ExistsViewQuery",
    "ShowCreateTableQuery", "ShowCreateDatabaseQuery", "ShowCreateViewQuery", "ShowCreateDictionaryQuery",
    "Explain", "ShowProcesslistQuery", "ShowColumns", "ShowIndexes", "ShowSettingQuery", "ShowEnginesQuery",
    "ShowFunctionsQuery",
})


_TOKENS = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`(?:[^`\\]|\\.)*`|--[^\n]*|#[^\n]*|/\*.*?\*/|;""",
                     re.DOTALL)


def is_multi_statement(sql: str) -> bool:
    """Whether ``sql`` holds a second statement after a ``;`` (outside strings and comments).

    ClickHouse's HTTP interface refuses those; chDB would run them all on the shared session.
    """
    for match in _TOKENS.finditer(sql):
        if match.group() == ";" and _COMMENTS.sub("", sql[match.end():]).strip(" \t\r\n;"):
            return True
    return False


def leading_keyword(sql: str) -> str:
    """The statement's first keyword in upper case (comments and parentheses skipped)."""
    match = _KEYWORD.match(_COMMENTS.sub(" ", sql[:4096]))
    return match.group(1).upper() if match else ""


def output_format(sql: str, default: str) -> str:
    """The format a query's own ``FORMAT`` clause asks for, else ``default``."""
    match = _TRAILING_FORMAT.search(_COMMENTS.sub(" ", sql[-4096:]))
    return match.group(1) if match else default


def split_insert(sql: bytes) -> tuple[str, str, bytes] | None:
    """``INSERT ... FORMAT X<newline>data`` -> (``INSERT ...``, ``X``, the data bytes seen so far).

    Works on bytes because the data after the header is often binary (Native, RowBinary).
    """
    match = _INSERT_FORMAT.match(sql)
    if match is None:
        return None
    try:
        head = match.group("head").decode()
    except UnicodeDecodeError:
        return None
    if _NOT_A_FORMAT_HEAD.search(_QUOTED.sub("", head)):
        return None  # e.g. VALUES ('... FORMAT x ...'): the word sits inside data, not the header
    return head.strip(), match.group("fmt").decode(), sql[match.end():]
