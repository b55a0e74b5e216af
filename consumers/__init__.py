"""How events are judged and stored: the sink, migrations, dead letters and the evaluator protocol."""

from agentaudit.consumers.builtin_rules import BuiltinEvaluator
from agentaudit.consumers.engine import BaseEvaluator
from agentaudit.consumers.exceptions import ConsumerError, MigrationError, RuleError
from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import AfterInsertCallback, BatchResult, Sink

__all__ = [
    "AfterInsertCallback",
    "BatchResult",
    "BaseEvaluator",
    "BuiltinEvaluator",
    "ConsumerError",
    "MigrationError",
    "RuleError",
    "Sink",
    "SinkSettings",
]
