"""How events are judged and stored: the sink, migrations, dead letters, replay and the rules worker.

The judging itself is the rule engine, :mod:`agentaudit.rules`; this package runs it over Kafka
and writes what it decides to ClickHouse.
"""

from agentaudit.consumers.exceptions import ConsumerError, MigrationError
from agentaudit.consumers.settings import SinkSettings, StreamKeysSettings
from agentaudit.consumers.sink import AfterInsertCallback, BatchResult, Sink

__all__ = [
    "AfterInsertCallback",
    "BatchResult",
    "ConsumerError",
    "MigrationError",
    "Sink",
    "SinkSettings",
    "StreamKeysSettings",
]
