"""What every importer shares: the report of what was imported and rejected, the dead-letter file,
the clients per tenant, and reading times and JSON lines with the file and line of each record."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from agentaudit.producers.client import AuditClient
from agentaudit.producers.importers.exceptions import ImportInputError
from agentaudit.schemas.validation import MAX_EVENT_TIME_US, MIN_EVENT_TIME_US

__all__ = ["ClientFactory", "ImportReport", "iter_json_lines", "parse_time_us"]

#: ``tenant -> client`` (None: the default tenant): the importers ask for one client per tenant.
ClientFactory = Callable[[str | None], AuditClient]


@dataclass
class ImportReport:
    """What an import did: runs (transcript lines, OTLP traces) and events handed to the SDK, and every
    rejected record with its reason. With ``dead_letter`` open, each rejected line is also written there
    as JSON (``file``, ``line``, ``field``, ``reason``, ``record``: the line as it was)."""

    files: int = 0
    runs: int = 0
    events: int = 0
    rejected: list[ImportInputError] = field(default_factory=list)
    dead_letter: IO[str] | None = None

    def reject(self, error: ImportInputError, raw: str | None = None) -> None:
        self.rejected.append(error)
        if self.dead_letter is not None:
            self.dead_letter.write(json.dumps({"file": error.path, "line": error.line, "field": error.field,
                                               "reason": error.reason, "record": raw}, ensure_ascii=False) + "\n")

    def reasons(self) -> Counter[str]:
        """Rejections counted by field and reason."""
        return Counter(f"{e.field}: {e.reason}" for e in self.rejected)

    def summary(self) -> str:
        text = (f"imported {self.runs} run(s), {self.events} event(s) from {self.files} file(s); "
                f"rejected {len(self.rejected)}")
        return text + (":" if self.rejected else "")


def iter_json_lines(path: Path) -> Iterator[tuple[int, str, Any | ImportInputError]]:
    """``(line number, raw line, parsed value or the error)`` of each non-blank line of a JSON-lines file."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                yield number, raw.rstrip("\n"), json.loads(raw)
            except ValueError as exc:
                yield number, raw.rstrip("\n"), ImportInputError(str(path), number, "(line)", f"not JSON: {exc}")


def parse_time_us(value: Any, where: str, *, path: str, line: int, unit: str = "s") -> int:
    """A time as epoch microseconds: an ISO 8601 string with a zone (``2026-03-01T09:30:00Z``) or a number
    of epoch ``unit`` (``s`` seconds, as OpenAI's ``created``; ``ns`` nanoseconds, as OTLP), which may be
    a string of digits. Raises :class:`ImportInputError` naming ``where``."""
    def bad(reason: str) -> ImportInputError:
        return ImportInputError(path, line, where, reason)

    if type(value) is bool or value is None:
        raise bad(f"expected a time, got {json.dumps(value)}")
    if isinstance(value, str) and not value.strip().isdigit():
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise bad(f"{value!r} is not an ISO 8601 time (e.g. 2026-03-01T09:30:00Z)") from None
        if parsed.tzinfo is None:
            raise bad(f"{value!r} has no time zone; add Z or an offset such as +02:00")
        us = int(parsed.timestamp()) * 1_000_000 + parsed.microsecond
    else:
        try:
            number = int(value) if isinstance(value, str) else value
            if unit == "ns":
                us = int(number) // 1000
            else:
                us = round(float(number) * 1_000_000)
        except (TypeError, ValueError, OverflowError):
            raise bad(f"expected a time, got {json.dumps(value)[:80]}") from None
    if not MIN_EVENT_TIME_US <= us < MAX_EVENT_TIME_US:
        hint = "epoch seconds" if unit == "s" else "epoch nanoseconds"
        raise bad(f"{value!r} is outside 2001..2100 (expected {hint} or an ISO 8601 time)")
    return us
