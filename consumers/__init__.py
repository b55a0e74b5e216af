"""How events are judged and stored: the sink, migrations, dead letters, replay and the rules worker.

The judging itself is the rule engine, :mod:`agentaudit.rules`; this package runs it over Kafka
and writes what it decides to ClickHouse.
"""

# One import path: this folder is the package agentaudit.consumers (setup.py maps it); importing it as
# `consumers` from the repository root would load every module twice, with two of each class.
if __name__ != "agentaudit.consumers":
    raise ImportError(f"import agentaudit.consumers, not {__name__}: the consumers/ folder is the agentaudit.consumers package")

from agentaudit.consumers.exceptions import ConsumerError, DeliveryError, MigrationError, NotifyError, RouteConfigError
from agentaudit.consumers.settings import SinkSettings, StreamKeysSettings
from agentaudit.consumers.sink import AfterInsertCallback, BatchResult, Sink

__all__ = [
    "AfterInsertCallback",
    "BatchResult",
    "ConsumerError",
    "DeliveryError",
    "MigrationError",
    "NotifyError",
    "RouteConfigError",
    "Sink",
    "SinkSettings",
    "StreamKeysSettings",
]
