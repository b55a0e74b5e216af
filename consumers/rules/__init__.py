"""The rule engine: Falco-style YAML rules compiled once into closures, judging action events.

>>> from agentaudit.consumers.rules import load_evaluator
>>> evaluator = load_evaluator(None)            # the default pack
>>> incidents = evaluator.evaluate(records)
"""

from agentaudit.consumers.rules._compile import CompiledRule, RuleSet
from agentaudit.consumers.rules._fields import FIELDS
from agentaudit.consumers.rules._spec import ENGINE_VERSION, KINDS
from agentaudit.consumers.rules.evaluator import (
    DEFAULT_LATENESS_US,
    DEFAULT_PACK,
    RuleEvaluator,
    load_evaluator,
    load_rule_set,
    rule_paths,
)

__all__ = [
    "DEFAULT_LATENESS_US",
    "DEFAULT_PACK",
    "ENGINE_VERSION",
    "FIELDS",
    "KINDS",
    "CompiledRule",
    "RuleEvaluator",
    "RuleSet",
    "load_evaluator",
    "load_rule_set",
    "rule_paths",
]
