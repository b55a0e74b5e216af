"""Process logging for the long-running commands: plain text, or one JSON object per line.

``AGENTAUDIT_LOG_FORMAT=json`` makes every record a JSON line (``ts``, ``level``, ``logger``,
``msg``, plus ``exc`` for exceptions) for log shippers; anything else keeps the readable text
format. Read at the entry point only (``configure_logging`` is called by the CLI).
"""

from __future__ import annotations

import json
import logging
import os
import time

__all__ = ["JsonFormatter", "configure_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; the message is rendered with its arguments first."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: int = logging.INFO, log_format: str | None = None) -> None:
    """Root logging for a command: ``log_format`` (default ``AGENTAUDIT_LOG_FORMAT``) ``json`` or text."""
    fmt = (log_format if log_format is not None else os.environ.get("AGENTAUDIT_LOG_FORMAT", "text")).lower()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
