"""Turning clickhouse-connect and chDB failures into :class:`StoreError` with the ClickHouse code."""

from __future__ import annotations

import re

from agentaudit.infra.exceptions import StoreError

__all__ = ["first_line", "parse_code", "store_error"]

# "Code: 60. DB::Exception: ..." (server text) or "received ClickHouse error code 60" (HTTP driver).
_CODE_RE = re.compile(r"(?:\bCode:\s*|error code\s+)(\d+)")


def parse_code(text: str) -> int | None:
    """The ClickHouse exception code in an error text, e.g. ``"Code: 60. DB::..."`` -> 60."""
    match = _CODE_RE.search(text)
    return int(match.group(1)) if match else None


def first_line(sql: str, limit: int = 120) -> str:
    """The statement's first non-blank line, shortened, to name it in messages."""
    for line in sql.strip().splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return "<empty statement>"


def store_error(exc: BaseException, *, action: str, where: str, sql: str | None = None) -> StoreError:
    """Build the :class:`StoreError` that replaces ``exc`` (the caller raises it ``from exc``)."""
    text = str(exc).strip() or type(exc).__name__
    code = getattr(exc, "code", None)
    if not isinstance(code, int):
        code = parse_code(text)
    # The server text repeats itself behind the driver's preamble; keep the ClickHouse part.
    idx = text.find("Code: ")
    detail = text[idx:] if idx > 0 else text
    detail = detail.splitlines()[0] if detail else detail
    stmt = f" [{first_line(sql)}]" if sql else ""
    hint = _hint(code)
    return StoreError(f"ClickHouse {action} failed on {where}{stmt}: {detail}{hint}", code=code)


def _hint(code: int | None) -> str:
    if code is None:
        return " (is the store reachable? start it with `agentaudit store` or check AGENTAUDIT_CLICKHOUSE_URL)"
    if code == 60:
        return " (run `agentaudit migrate` to create the tables)"
    if code == 81:
        return " (database missing: run `agentaudit migrate` or check AGENTAUDIT_DATABASE)"
    if code == 164:
        return " (the session is read-only)"
    if code in (192, 193, 516):
        return " (check AGENTAUDIT_CLICKHOUSE_USER / AGENTAUDIT_CLICKHOUSE_PASSWORD)"
    return ""
