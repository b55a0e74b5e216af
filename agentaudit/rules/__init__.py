"""The rule engine: Falco-style YAML rules compiled once into closures, judging action events.

A rule is ``id``, ``desc``, ``severity``, ``tags`` (first tag: stable | incubating | sandbox),
``output`` (a template over event fields and value/threshold/count/key/within/detail),
optional ``owner``, ``mode`` (detect | simulate | enforce), ``exceptions``, ``by`` (key fields,
the tenant is always part of the key) and ``window``, a ``condition`` (see ``_condition``) and
at most one kind block:

- none: a single-event predicate; hits are grouped per ``by`` (default agent_id) and ``window`` (1h);
- ``aggregate: {fn: count|sum|avg|min|max|distinct|rate|ratio, field, where, op, threshold, slide, min_count}``;
- ``sequence: {then: <condition>, within: 15m}``: the condition, then ``then``, in one trace;
- ``absence: {within: 5m, end: <condition>}``: a start without its end (same action_id);
- ``ancestor: {approval: <condition>, within: 1h}``: the action needs an approval in its causal chain;
- ``integrity: {checks: [gap, reorder, duplicate, hash_mismatch, bad_start]}``: per producer stream;
  with ``bad_signature, unknown_key, not_authorized, revoked, unsigned`` (and ``max_unsigned_events``,
  ``max_unsigned_for``) it judges the stream's signed checkpoints when the evaluator has a key ring.

Each rule implies a *key class* (``CompiledRule.key_class``: its trace, its ``by:`` fields, its
stream...), the events that must meet to judge it; :class:`KeyRouter` and :class:`KeyedEvaluator`
let the rules worker judge one tenant's rules in many places (``agentaudit.rules.key_class``).

The default pack lives in ``pack/`` (fixtures in ``pack/fixtures/``); ``agentaudit rules lint``
and ``agentaudit rules test`` check rule files and run fixtures.

>>> from agentaudit.rules import load_evaluator
>>> evaluator = load_evaluator(None)            # the default pack
>>> incidents = evaluator.evaluate(records)
"""

from agentaudit.rules._compile import CompiledRule, RuleSet
from agentaudit.rules._fields import FIELDS
from agentaudit.rules._spec import ENGINE_VERSION, KINDS
from agentaudit.rules.builtin import BuiltinEvaluator
from agentaudit.rules.engine import BaseEvaluator
from agentaudit.rules.evaluator import (
    DEFAULT_LATENESS_US,
    DEFAULT_PACK,
    RuleEvaluator,
    load_evaluator,
    load_rule_set,
    rule_paths,
)
from agentaudit.rules.exceptions import RuleEngineError, RuleError
from agentaudit.rules.key_class import KeyClass, KeyRouter
from agentaudit.rules.keyed import KeyedEvaluator
from agentaudit.rules.owners import Owner, OwnersError, OwnershipMap, load_owners
from agentaudit.rules.settings import RulesSettings

__all__ = [
    "DEFAULT_LATENESS_US",
    "DEFAULT_PACK",
    "ENGINE_VERSION",
    "FIELDS",
    "KINDS",
    "BaseEvaluator",
    "BuiltinEvaluator",
    "CompiledRule",
    "KeyClass",
    "KeyRouter",
    "KeyedEvaluator",
    "Owner",
    "OwnersError",
    "OwnershipMap",
    "RuleEngineError",
    "RuleError",
    "RuleEvaluator",
    "RuleSet",
    "RulesSettings",
    "load_evaluator",
    "load_owners",
    "load_rule_set",
    "rule_paths",
]
