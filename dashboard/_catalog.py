"""Rule descriptions for the pages: the rule files the consumer judges with, read once.

The store knows which rules hit (incidents carry rule id, revision and mode); the rule files know
what a rule means. The engine is optional for the dashboard: without it, pages show ids only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

__all__ = ["RuleInfo", "load_catalog"]

_log = logging.getLogger("agentaudit.dashboard")


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What the rule files say about one rule."""

    id: str
    desc: str
    severity: str
    mode: str
    kind: str
    owner: str
    tags: tuple[str, ...]


def load_catalog(paths: str | None = None) -> tuple[dict[str, RuleInfo], str]:
    """``({rule id: RuleInfo}, revision)`` of the rule files (default the shipped pack); empty when unavailable."""
    try:
        from agentaudit.rules import load_rule_set
    except ImportError:
        return {}, ""
    try:
        rule_set = load_rule_set(paths)
    except Exception as exc:  # noqa: BLE001 - descriptions are a nicety; a bad path must not take the page down
        _log.warning("rule descriptions unavailable (%s): %s", paths or "shipped pack", exc)
        return {}, ""
    catalog = {
        rule.id: RuleInfo(rule.id, " ".join(rule.desc.split()), str(rule.severity), str(rule.mode), rule.kind,
                          rule.owner, tuple(rule.tags))
        for rule in rule_set.rules
    }
    return catalog, rule_set.revision
