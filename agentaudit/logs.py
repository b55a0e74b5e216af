"""Process logging: an event name with real fields, rendered as readable text or one JSON object per line.

Call sites log an event and its fields, ``_log.warning("sdk.spooling", reason=reason, spool=path)``,
through :func:`get_logger`: a thin wrapper of a standard-library logger, so the SDK stays a good guest
in other people's processes (it configures nothing and does not import structlog). The record's message
is the readable ``sdk.spooling reason=... spool=...``; the event and the fields travel beside it.

The long-running commands call :func:`configure_logging` once (the CLI's entry point). With
``AGENTAUDIT_LOG_FORMAT=json`` structlog's ``ProcessorFormatter`` renders every record, ours and the
libraries' (confluent-kafka, uvicorn, ...), as one JSON object per line: ``event``, ``level``, ``logger``,
``timestamp`` (UTC, ISO 8601), the call's fields, and ``exception`` when there is one. Any other value
keeps the text format.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import IO, Any

__all__ = ["FieldLogger", "configure_logging", "get_logger"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

#: The LogRecord attribute that carries ``(event, fields)`` from :class:`FieldLogger` to the JSON renderer.
FIELDS_ATTR = "agentaudit_fields"


class FieldLogger:
    """A standard-library logger that takes an event name and keyword fields.

    >>> _log = get_logger(__name__)
    >>> _log.info("sink.assigned", partitions=[0, 1], group="agentaudit-sink")

    Fields are formatted only when the level is enabled; keep calls off per-event paths all the same.
    """

    __slots__ = ("logger",)

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def _log(self, level: int, event: str, fields: dict[str, Any], exc_info: bool = False) -> None:
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        message = event if not fields else event + " " + " ".join(f"{key}={value}" for key, value in fields.items())
        logger.log(level, message, exc_info=exc_info, extra={FIELDS_ATTR: (event, fields)}, stacklevel=3)

    def isEnabledFor(self, level: int) -> bool:
        """Whether a record of ``level`` would be handled."""
        return self.logger.isEnabledFor(level)

    def debug(self, event: str, **fields: Any) -> None:
        """Log ``event`` at DEBUG with ``fields``."""
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        """Log ``event`` at INFO with ``fields``."""
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Log ``event`` at WARNING with ``fields``."""
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        """Log ``event`` at ERROR with ``fields``."""
        self._log(logging.ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """Log ``event`` at ERROR with ``fields`` and the exception being handled."""
        self._log(logging.ERROR, event, fields, exc_info=True)


def get_logger(name: str) -> FieldLogger:
    """The :class:`FieldLogger` of the standard-library logger ``name`` (usually ``__name__``)."""
    return FieldLogger(logging.getLogger(name))


def _lift_fields(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Make a FieldLogger record's event and fields the JSON object's own keys (the message is their text)."""
    carried = getattr(event_dict.get("_record"), FIELDS_ATTR, None)
    if carried is not None:
        event, fields = carried
        event_dict["event"] = event
        for key, value in fields.items():
            event_dict.setdefault(key, value)
    return event_dict


def _json_line(event_dict: dict[str, Any], **_: Any) -> str:
    return json.dumps(event_dict, ensure_ascii=False, default=str)


class _StandardError(logging.StreamHandler):  # type: ignore[type-arg]  # the stream is looked up, not stored
    """Writes to ``sys.stderr`` as it is when a line is written, not as it was at set-up: a host that swaps
    standard error for a while (a test runner's CLI invocation) and closes it leaves no handler on a closed file."""

    @property  # type: ignore[override]  # StreamHandler's stream is a plain attribute; here it is looked up
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: IO[str]) -> None:
        pass


def configure_logging(level: int = logging.INFO, log_format: str | None = None, *,
                      stream: IO[str] | None = None) -> None:
    """Root logging for a command: ``log_format`` (default ``AGENTAUDIT_LOG_FORMAT``) ``json`` or text.

    Replaces the root handlers, so a second call (``up`` starting its parts) leaves one handler.

    :param level: the root level, default INFO.
    :param log_format: ``json`` or anything else for text; default the ``AGENTAUDIT_LOG_FORMAT`` variable.
    :param stream: where lines go, default standard error (standard output stays the command's own).
    """
    fmt = (log_format if log_format is not None else os.environ.get("AGENTAUDIT_LOG_FORMAT", "text")).lower()
    handler = logging.StreamHandler(stream) if stream is not None else _StandardError()
    if fmt == "json":
        import structlog

        handler.setFormatter(structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
                _lift_fields,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(serializer=_json_line),
            ],
            pass_foreign_args=False,
        ))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
