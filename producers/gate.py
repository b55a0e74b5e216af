"""Everything that must say yes before an action runs, in one call for the SDK.

Order: control commands (kill, pause, tool block, approval requirement), then the approval
passed with the call (bound to the exact arguments), then the inline guard. Each refusal and
each guard decision is handed to ``record`` so the SDK writes it as a ``guardrail`` point event
before :class:`ActionBlocked` reaches the agent's code.

>>> gate = ActionGate(listener, guard)
>>> gate.before(start_record, record=emit_guardrail, args=args, approval=approval)  # raises if refused
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentaudit.producers._blocked import ActionBlocked
from agentaudit.producers.approvals import Approval, args_hash
from agentaudit.producers.control import ControlListener
from agentaudit.producers.guard import Guard

__all__ = ["ActionGate", "GuardrailCallback", "GuardrailNote"]


@dataclass(frozen=True, slots=True)
class GuardrailNote:
    """What the SDK records as a guardrail point event (kind=guardrail, phase=point), child of the action."""

    name: str  # "guard:<rule id>", "control" or "approval"
    status: str  # "denied" when the action was stopped, else "ok"
    attributes: dict[str, str] = field(default_factory=dict)


#: Records one guardrail note for the action described by the record (the SDK emits it).
GuardrailCallback = Callable[[GuardrailNote, dict[str, Any]], None]


def _refusal(source: str, error: ActionBlocked, record: dict[str, Any]) -> GuardrailNote:
    attrs = {"decision": "deny", "code": error.code, "reason": error.reason,
             "guarded_action_id": str(record.get("action_id", "")), "guarded_kind": str(record.get("kind", "")),
             "guarded_name": str(record.get("name", ""))}
    for key in ("command_id", "incident_id", "rule_id"):
        value = getattr(error, key)
        if value:
            attrs[key] = value
    return GuardrailNote(source, "denied", attrs)


class ActionGate:
    """Control listener + inline guard + approval binding, asked once per action before it runs.

    :param listener: obeys the control topic; None: no control commands.
    :param guard: judges single-event rules inline; None: no guard.
    """

    def __init__(self, listener: ControlListener | None = None, guard: Guard | None = None) -> None:
        self.listener = listener
        self.guard = guard

    def before(self, record: dict[str, Any], *, record_note: GuardrailCallback | None = None, args: Any = None,
               approval: Approval | None = None) -> None:
        """Raise :class:`ActionBlocked` if the action described by ``record`` (its start record) may not run.

        When ``args`` or ``approval`` are given, ``record["attributes"]`` gains ``args_hash`` (and
        ``approval_id``) so the stored action is bound to what was approved.
        """
        agent_id, kind, name = record["agent_id"], record["kind"], record["name"]
        digest = None
        if args is not None or approval is not None:
            digest = args_hash(args)
            record["attributes"] = {**record.get("attributes", {}), "args_hash": digest}
            if approval is not None:
                record["attributes"]["approval_id"] = approval.approval_id
        if self.listener is not None:
            try:
                self.listener.check(agent_id, kind, name, tenant=record.get("tenant"), args=args, approval=approval)
            except ActionBlocked as exc:
                if record_note is not None:
                    record_note(_refusal("control" if exc.command_id else "approval", exc, record), record)
                raise
        if approval is not None:
            try:
                approval.verify(agent_id=agent_id, tool=name, digest=digest)
            except ActionBlocked as exc:
                if record_note is not None:
                    record_note(_refusal("approval", exc, record), record)
                raise
        if self.guard is not None:
            decisions = self.guard.evaluate(record)
            if decisions:
                if record_note is not None:
                    for decision in decisions:
                        record_note(GuardrailNote(f"guard:{decision.rule_id}",
                                                  "denied" if decision.denies else "ok",
                                                  {**decision.attributes(record), "summary": decision.summary}),
                                    record)
                self.guard.enforce(decisions, record)
