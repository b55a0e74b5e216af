"""Errors of the importers of recorded runs::

    AgentAuditError
    └── ProducerError
        └── ImportInputError      a record of an import file cannot be read: names the file, line and field

An importer does not stop at a bad record: it rejects that record (the whole run for a transcript line,
the span for OTLP), counts it with its reason in the :class:`~agentaudit.producers.importers.ImportReport`
and goes on; the command line prints every rejection and can keep the bad lines in a dead-letter file.
"""

from __future__ import annotations

from agentaudit.producers.exceptions import ProducerError

__all__ = ["ImportInputError"]


class ImportInputError(ProducerError):
    """A record that cannot be imported.

    :param path: the file. :param line: its 1-based line. :param field: the field, as a JSON path
        (``messages[3].tool_calls[0].function.arguments``). :param reason: what is wrong and what would do.
    """

    def __init__(self, path: str, line: int, field: str, reason: str) -> None:
        self.path, self.line, self.field, self.reason = path, line, field, reason
        super().__init__(f"{path}:{line}: {field}: {reason}")
