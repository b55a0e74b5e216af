"""Everything that must say yes before an action runs, in one call for the SDK.

Order: control commands (kill, pause, tool block, approval requirement), then the approval
passed with the call (bound to the exact arguments), then the inline guard. Each refusal and
each guard decision is handed to ``record`` so the SDK writes it as a ``guardrail`` point event
before :class:`ActionBlocked` reaches the agent's code.

>>> gate = ActionGate(listener, guard)
>>> gate.before(start_record, record=emit_guardrail, args=args, approval=approval)  # raises if refused
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentaudit.control import ActionBlocked, ControlListener
from agentaudit.control.approvals import Approval, args_hash
from agentaudit.control.authority import Authority
from agentaudit.control.guard import Guard
from agentaudit.control.settings import AuthoritySettings

if TYPE_CHECKING:
    from agentaudit.producers.client import Action, AuditClient

__all__ = ["ActionGate", "ClientGate", "GuardrailCallback", "GuardrailNote"]


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
        bound = None
        if approval is not None:  # hashing costs; only an approval needs the exact-argument binding
            bound = args_hash(args)
            record["attributes"] = {**record.get("attributes", {}), "args_hash": bound,
                                    "approval_id": approval.approval_id}
        if self.listener is not None:
            try:
                self.listener.check(agent_id, kind, name, tenant=record.get("tenant"), args=args, approval=approval)
            except ActionBlocked as exc:
                if record_note is not None:
                    record_note(_refusal("control" if exc.command_id else "approval", exc, record), record)
                raise
        if approval is not None:
            try:
                approval.verify(agent_id=agent_id, tool=name, digest=bound)
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


class ClientGate:
    """The SDK's side of the gate: builds an action's start record, asks :class:`ActionGate`, and writes
    each guardrail note through the client as a ``guardrail`` point event.

    Built by :class:`~agentaudit.producers.AuditClient` only when ``control=True`` or ``guard_rules``
    is given; otherwise the client pays one ``is None`` test per action.
    """

    def __init__(self, client: AuditClient, gate: ActionGate) -> None:
        self._client = client
        self.gate = gate

    @classmethod
    def create(cls, client: AuditClient, *, control: bool = False,
               guard_rules: str | Sequence[str] | None = None,
               control_config: Mapping[str, Any] | None = None,
               authority: Authority | AuthoritySettings | None = None) -> ClientGate | None:
        """None when neither control nor guard is wanted. The listener starts on the first action.

        :param authority: the listener obeys only commands it authorizes; default the file named by
            ``AGENTAUDIT_AUTHORITY_FILE`` (read here, as the client's constructor is the SDK's entry point),
            and with none configured every command is obeyed (a warning says so once).
        """
        if not control and guard_rules is None:
            return None
        listener = None
        if control:
            if authority is None:
                authority = AuthoritySettings()
            if isinstance(authority, AuthoritySettings):
                authority = authority.load_authority()
            listener = ControlListener(client.kafka, tenant=client.settings.tenant, config=control_config,
                                       authority=authority)
        guard = None
        if guard_rules is not None:
            guard = Guard.from_paths(guard_rules, modes=listener.rule_mode if listener is not None else None)
        return cls(client, ActionGate(listener, guard))

    def before_action(self, action: Action, args: Any, approval: Approval | None) -> None:
        """Raise :class:`ActionBlocked` if ``action`` may not start; refusals and decisions are recorded."""
        client = self._client
        settings = client.settings
        now = time.time_ns() // 1000
        in_digest = None
        if args is not None and self.gate.guard is not None:
            in_digest = client.digest(args)  # keyed, as the event records it: guard and consumer rules agree
        record: dict[str, Any] = {
            "event_id": "", "tenant": settings.tenant, "agent_id": action.agent, "agent_version": settings.agent_version,
            "run_id": action._frame_run, "trace_id": action.trace_id, "action_id": action.action_id,
            "parent_action_id": action.parent_action_id, "links": list(action._links or ()), "depth": action.depth,
            "stream_id": "", "seq": 0, "prev_hash": "", "kind": action.kind, "name": action.name, "phase": "start",
            "status": "unset", "error_type": None, "error_message": None,
            "actor": {"type": "agent", "id": action.agent}, "model": action.model, "input_tokens": 0,
            "output_tokens": 0, "cost_usd": 0.0, "latency_us": None, "start_time_us": now, "end_time_us": None,
            "event_time_us": now, "input_digest": in_digest, "output_digest": None, "input_body": None,
            "output_body": None, "payload_bytes": 0, "attributes": dict(action._attributes or {}),
            "environment": settings.environment,
        }
        notes: list[GuardrailNote] = []
        try:
            self.gate.before(record, record_note=lambda note, _r: notes.append(note), args=args, approval=approval)
        finally:
            for note in notes:  # a sibling of the guarded action (which may never start), in the same trace
                client.event("guardrail", note.name, agent=action.agent, parent=action.parent_action_id,
                             attributes=note.attributes, status=note.status)
        if approval is not None:  # the stored action carries what was approved
            action._attributes = {**(action._attributes or {}), "args_hash": record["attributes"]["args_hash"],
                                  "approval_id": approval.approval_id}

    def close(self) -> None:
        if self.gate.listener is not None:
            self.gate.listener.close()
