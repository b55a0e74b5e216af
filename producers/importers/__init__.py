"""Backfill of recorded runs: OTLP JSON trace files and OpenAI-style chat transcripts become action
events through the SDK, with their real times and causal links, so they are sealed, chained, judged,
replayed and diffed like live events. ``agentaudit import otlp|transcripts FILE...`` runs them.

>>> report = ImportReport()
>>> import_transcripts([Path("runs.jsonl")], lambda tenant: audit, report, start_us=None)
>>> report.summary()
"""

from agentaudit.producers.importers._common import ClientFactory, ImportReport, parse_time_us
from agentaudit.producers.importers.exceptions import ImportInputError
from agentaudit.producers.importers.otlp_json import import_otlp_json, read_spans
from agentaudit.producers.importers.transcripts import import_transcripts, parse_run, record_run

__all__ = ["ClientFactory", "ImportInputError", "ImportReport", "import_otlp_json", "import_transcripts",
           "parse_run", "parse_time_us", "read_spans", "record_run"]
