"""The inline guard: the same rule files, judged in the agent's process before an action runs.

Only rules that one event decides (rule kind ``predicate``) can run here: aggregates,
sequences, absences, ancestors and integrity checks need stream state and stay in the
consumer. The guard judges the action's *start* record, the same record the consumer will
judge later, so both reach the same verdict. Each matching rule acts by its mode:

- ``detect``: the action runs; the decision is recorded (``decision=log``);
- ``simulate``: the action runs; recorded as ``decision=would_deny``;
- ``enforce``: the action does not run (:class:`ActionBlocked`); recorded as ``decision=deny``.

The SDK records every decision as a ``guardrail`` point event (see :meth:`GuardDecision.attributes`).

>>> guard = Guard.from_paths("rules/")
>>> decisions = guard.evaluate(start_record)      # [] when no rule matches
>>> guard.enforce(decisions)                      # raises ActionBlocked on an enforce-mode match
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agentaudit.control._blocked import ActionBlocked
from agentaudit.logs import get_logger
from agentaudit.rules import CompiledRule, RuleSet, load_rule_set
from agentaudit.schemas import ActionKind, RuleMode, Severity

__all__ = ["DECISIONS", "Guard", "GuardDecision", "RuleModeLookup", "guardable"]

_log = get_logger("agentaudit.control.guard")

#: What a matching rule does to the action, by the rule's mode.
DECISIONS = {RuleMode.DETECT: "log", RuleMode.SIMULATE: "would_deny", RuleMode.ENFORCE: "deny"}

#: Where a rule's current mode comes from when promotions override the file (e.g. ``ControlListener.rule_mode``).
RuleModeLookup = Callable[[str], RuleMode | None]


def guardable(rule: CompiledRule) -> bool:
    """Whether one event decides ``rule`` without stream state: only ``predicate`` rules."""
    return rule.kind == "predicate"


@dataclass(frozen=True, slots=True)
class GuardDecision:
    """One rule matched an action about to run."""

    rule_id: str
    mode: RuleMode
    decision: str  # log | would_deny | deny
    severity: Severity
    summary: str
    rule_revision: str

    @property
    def denies(self) -> bool:
        return self.mode is RuleMode.ENFORCE

    def attributes(self, record: dict[str, Any]) -> dict[str, str]:
        """Attributes of the guardrail event recording this decision about ``record``."""
        return {"rule_id": self.rule_id, "mode": self.mode.value, "decision": self.decision,
                "severity": self.severity.value, "rule_revision": self.rule_revision,
                "guarded_action_id": str(record.get("action_id", "")), "guarded_kind": str(record.get("kind", "")),
                "guarded_name": str(record.get("name", ""))}


class Guard:
    """Judges action start records against the single-event rules of a rule set.

    :param rule_set: compiled rules (:func:`agentaudit.rules.load_rule_set`).
    :param modes: the current mode of a rule when promotions override its file, default the file's mode.
    """

    def __init__(self, rule_set: RuleSet, modes: RuleModeLookup | None = None) -> None:
        self.revision = rule_set.revision
        self.rules: tuple[CompiledRule, ...] = tuple(r for r in rule_set.rules if guardable(r))
        #: rules that need stream state, left to the consumer: (rule id, kind).
        self.skipped: tuple[tuple[str, str], ...] = tuple((r.id, r.kind) for r in rule_set.rules if not guardable(r))
        self._modes = modes
        # rules that can match each action kind, resolved once
        self._dispatch: dict[str, tuple[CompiledRule, ...]] = {
            kind.value: tuple(r for r in self.rules if r.kinds is None or kind.value in r.kinds) for kind in ActionKind}
        self.errors = 0

    @classmethod
    def from_paths(cls, paths: str | Sequence[str] | None, modes: RuleModeLookup | None = None) -> Guard:
        """Load and compile rule files (None: the default pack) and keep the guardable rules."""
        return cls(load_rule_set(paths), modes)

    def evaluate(self, record: dict[str, Any]) -> list[GuardDecision]:
        """Decisions of every rule matching ``record`` (a full action start record); [] when none match."""
        rules = self._dispatch.get(record["kind"])
        if rules is None:
            rules = self.rules
        decisions: list[GuardDecision] | None = None
        for rule in rules:
            try:
                matched = rule.predicate(record)
            except Exception as exc:  # noqa: BLE001 - an odd record must not break the agent; count and go on
                self.errors += 1
                _log.warning("guard.rule_error", rule=rule.id, error=repr(exc))
                continue
            if matched:
                if decisions is None:
                    decisions = []
                decisions.append(self._decide(rule, record))
        return decisions or []

    def _decide(self, rule: CompiledRule, record: dict[str, Any]) -> GuardDecision:
        mode = rule.mode
        if self._modes is not None:
            mode = self._modes(rule.id) or mode
        values = rule.slim(record)
        values.update(count=1, key="", window=rule.window_us // 1_000_000, rule_id=rule.id,
                      severity=rule.severity.value, detail="", within="", value=1, threshold="")
        return GuardDecision(rule_id=rule.id, mode=mode, decision=DECISIONS[mode], severity=rule.severity,
                             summary=rule.render(values), rule_revision=self.revision)

    @staticmethod
    def enforce(decisions: Sequence[GuardDecision], record: dict[str, Any]) -> None:
        """Raise :class:`ActionBlocked` for the first enforce-mode decision, if any."""
        for decision in decisions:
            if decision.denies:
                raise ActionBlocked(f"inline guard rule {decision.rule_id} denies it: {decision.summary}",
                                    code="guard_denied", rule_id=decision.rule_id,
                                    agent_id=str(record.get("agent_id", "")), tool=str(record.get("name", "")))
