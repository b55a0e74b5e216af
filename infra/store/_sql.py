"""Just enough SQL shape-reading for the HTTP front: statement kind and an INSERT's FORMAT."""

from __future__ import annotations

import re

__all__ = ["STREAM_SAFE_FORMATS", "leading_keyword", "output_format", "split_insert"]

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

# INSERT ... VALUES <rows>: the rows go through the Values input format, never the SQL executor.
_INSERT_VALUES = re.compile(rb"\A(?P<head>\s*INSERT\b[^'\"]*?)\bVALUES\b[ \t\r\n]*", re.IGNORECASE | re.DOTALL)
_NOT_A_FORMAT_HEAD = re.compile(r"'|\bVALUES\b|\bSELECT\b", re.IGNORECASE)
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'", re.DOTALL)


def leading_keyword(sql: str) -> str:
    """The statement's first keyword in upper case (comments and parentheses skipped)."""
    match = _KEYWORD.match(_COMMENTS.sub(" ", sql[:4096]))
    return match.group(1).upper() if match else ""


def output_format(sql: str, default: str) -> str:
    """The format a query's own ``FORMAT`` clause asks for, else ``default``."""
    match = _TRAILING_FORMAT.search(_COMMENTS.sub(" ", sql[-4096:]))
    return match.group(1) if match else default


def split_insert(sql: bytes) -> tuple[str, str, bytes] | None:
    """``INSERT ... FORMAT X<newline>data`` -> (``INSERT ...``, ``X``, the data bytes seen so far);
    ``INSERT ... VALUES rows`` -> (``INSERT ...``, ``Values``, the rows). The head is then checked
    by ClickHouse's parser (``Engine.check_insert_head``), so a wrong split is refused, never run.

    Works on bytes because the data after the header is often binary (Native, RowBinary).
    """
    match = _INSERT_FORMAT.match(sql)
    if match is None or _NOT_A_FORMAT_HEAD.search(_QUOTED.sub("", match.group("head").decode(errors="replace"))):
        values = _INSERT_VALUES.match(sql)
        if values is None:
            return None
        try:
            head = values.group("head").decode()
        except UnicodeDecodeError:
            return None
        if re.search(r"\bSELECT\b", head, re.IGNORECASE):
            return None
        return head.strip(), "Values", sql[values.end():]
    try:
        head = match.group("head").decode()
    except UnicodeDecodeError:
        return None
    if _NOT_A_FORMAT_HEAD.search(_QUOTED.sub("", head)):
        return None  # e.g. VALUES ('... FORMAT x ...'): the word sits inside data, not the header
    return head.strip(), match.group("fmt").decode(), sql[match.end():]
