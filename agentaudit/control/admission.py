"""Which control and lifecycle records are applied: the authority check at every reader.

:class:`~agentaudit.control.authority.Authority` decides one signed record. This module is how
readers use it: :class:`ControlAdmission` admits control commands in log order (agents'
listeners, the CLI, the dashboard and the consumer all fold through it), and
:func:`check_lifecycle` admits one lifecycle event (the consumer stores only those). A refused
record is never applied; it is logged with its topic, partition and offset, and becomes a
:class:`Refusal`, from which the consumer makes a deterministic integrity incident.

Beyond the signature and the grant, a control log has two more ways to lie:

- a **replay**: a record whose command id was already applied is ignored (the first authorized
  copy wins; an unauthorized copy never reserves an id, so a forgery cannot shadow a real command);
- a **clear of nothing**: a clear must name a command (``clears_command_id``) of the same tenant
  that was issued before it. Because a clear may arrive before its target (another partition),
  it is held until the target is read, then judged.

With no authority configured (``authority=None``) records are applied unchecked, as before
signing existed; :func:`warn_unauthenticated` says so once per process.

>>> admission = ControlAdmission(Authority.load("authority.yaml"))
>>> for message, command in decoded:                    # in log order
...     for ready in admission.admit(command, message):
...         state.apply(ready)
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentaudit.control.authority import Authority, Verdict
from agentaudit.logs import get_logger
from agentaudit.schemas import ControlCommand, ControlType, Incident, Severity

__all__ = [
    "CONTROL_ACTIONS",
    "LIFECYCLE_ACTIONS",
    "MAX_HELD_CLEARS",
    "MAX_REFUSALS_KEPT",
    "UNAUTHORIZED_COMMAND",
    "UNAUTHORIZED_LIFECYCLE",
    "ControlAdmission",
    "Refusal",
    "check_lifecycle",
    "issuer_of",
    "warn_unauthenticated",
]

_log = get_logger("agentaudit.control.authority")

#: Integrity rule ids of the incidents raised for refused records.
UNAUTHORIZED_COMMAND = "integrity.unauthorized-command"
UNAUTHORIZED_LIFECYCLE = "integrity.unauthorized-lifecycle"

#: The grant action each control command type needs.
CONTROL_ACTIONS: Mapping[str, str] = {
    ControlType.KILL_AGENT.value: "kill", ControlType.PAUSE_AGENT.value: "pause",
    ControlType.BLOCK_TOOL.value: "block", ControlType.REQUIRE_APPROVAL.value: "require_approval",
    ControlType.CLEAR.value: "clear", ControlType.PROMOTE_RULE.value: "promote",
}
#: The grant action each lifecycle event type needs.
LIFECYCLE_ACTIONS: Mapping[str, str] = {
    "opened": "open", "acknowledged": "acknowledge", "assigned": "assign", "resolved": "resolve",
    "reopened": "reopen", "escalated": "escalate", "commented": "comment",
    "notified": "notify",
}
#: Refusals kept in memory, at most (the newest; each is logged, and the consumer stores each as an incident).
MAX_REFUSALS_KEPT = 1_000
#: Held clears waiting for their target, at most (a flood of clears of nothing must not grow without bound).
MAX_HELD_CLEARS = 10_000

_warned = threading.Event()


class _Message(Protocol):  # what admission reads of a Kafka message
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> list[tuple[str, bytes | None]] | None: ...


def warn_unauthenticated(where: str) -> None:
    """Log once per process that control and lifecycle records are applied without an authority check."""
    if not _warned.is_set():
        _warned.set()
        _log.warning("authority.not_configured", where=where,
                     hint="no authority file (AGENTAUDIT_AUTHORITY_FILE), so control commands and lifecycle events "
                          "are NOT authenticated: anyone who can write to the control topic can kill, clear or "
                          "promote. Configure an authority file to enforce signatures.")


def issuer_of(actor: Any) -> str:
    """``type:id`` of an :class:`~agentaudit.schemas.Actor` or its Avro dict (``human:alice``)."""
    if isinstance(actor, Mapping):
        kind, ident = actor.get("type"), actor.get("id")
    else:
        kind, ident = getattr(actor, "type", None), getattr(actor, "id", None)
    return f"{getattr(kind, 'value', kind) or 'system'}:{ident or ''}"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A record that was not applied, and why; :meth:`incident` is its integrity incident."""

    purpose: str  # "control" or "lifecycle"
    record_id: str
    issuer: str
    action: str
    tenant: str
    reason: str
    topic: str
    partition: int
    offset: int
    value_sha256: str
    at_us: int
    signer: str = ""
    key_id: str = ""
    target: str = ""  # the command cleared, or the incident decided
    agent_id: str = ""

    @property
    def rule_id(self) -> str:
        return UNAUTHORIZED_COMMAND if self.purpose == "control" else UNAUTHORIZED_LIFECYCLE

    def incident(self) -> Incident:
        """The integrity incident of this refusal; its id derives from the record, so a re-read is one incident."""
        ident = "\x1f".join((self.rule_id, self.record_id, self.value_sha256))  # noqa: FLY002 - the incident id's parts joined by the unit separator, kept as reviewed
        what = "control command" if self.purpose == "control" else "lifecycle event"
        summary = (f"refused {what} {self.record_id}: {self.issuer} may not {self.action} on tenant "
                   f"{self.tenant or '*'} ({self.reason}); at {self.topic}[{self.partition}]@{self.offset}")
        attributes = {"record_id": self.record_id, "issuer": self.issuer, "action": self.action,
                      "reason": self.reason[:1000], "topic": self.topic, "partition": str(self.partition),
                      "offset": str(self.offset), "value_sha256": self.value_sha256, "signer": self.signer,
                      "key_id": self.key_id}
        if self.target:
            attributes["target"] = self.target
        return Incident(incident_id=hashlib.sha256(ident.encode()).hexdigest()[:32], tenant=self.tenant,
                        rule_id=self.rule_id, rule_revision="authority", severity=Severity.CRITICAL,
                        key=self.record_id, agent_id=self.agent_id, first_seen_us=self.at_us, last_seen_us=self.at_us,
                        window_start_us=self.at_us, window_end_us=self.at_us, summary=summary[:4096],
                        tags=("integrity", "authority"), attributes=attributes)


def _refusal(purpose: str, message: _Message, *, record_id: str, issuer: str, action: str, tenant: str,
             reason: str, at_us: int, verdict: Verdict | None = None, target: str = "", agent_id: str = "") -> Refusal:
    refusal = Refusal(purpose=purpose, record_id=record_id, issuer=issuer, action=action, tenant=tenant,
                      reason=reason, topic=message.topic() or "", partition=message.partition() or 0,
                      offset=message.offset() or 0, value_sha256=hashlib.sha256(message.value() or b"").hexdigest(),
                      at_us=at_us, signer=verdict.signer if verdict else "", key_id=verdict.key_id if verdict else "",
                      target=target, agent_id=agent_id)
    _log.warning("authority.refused", purpose=purpose, topic=refusal.topic, partition=refusal.partition,
                 offset=refusal.offset, id=record_id, issuer=issuer, action=action, tenant=tenant or "*",
                 reason=reason)
    return refusal


@dataclass(slots=True)
class _Held:
    clear: ControlCommand
    message: _Message


@dataclass
class ControlAdmission:
    """Admits control commands in log order: signature and grant, replays, and clears of real commands.

    :param authority: the keys and grants; None applies every record unchecked (see :func:`warn_unauthenticated`).
    :param record_refusals: keep :class:`Refusal` objects in :attr:`refusals` (the consumer turns them into
        incidents); default True.

    Not thread-safe; callers hold their own lock.
    """

    authority: Authority | None
    record_refusals: bool = True
    refusals: list[Refusal] = field(default_factory=list)
    #: every authorized command (not clears), by id: the targets clears may name.
    _commands: dict[str, ControlCommand] = field(default_factory=dict)
    _applied: set[str] = field(default_factory=set)
    _held: dict[str, list[_Held]] = field(default_factory=dict)
    _held_count: int = 0
    #: records refused so far (all of them, even those no longer kept in :attr:`refusals`).
    refused: int = 0

    def admit(self, command: ControlCommand, message: _Message) -> list[ControlCommand]:
        """The commands to apply now, in order: ``command`` if admitted, and any held clear it releases."""
        if self.authority is None:  # unchecked: the fold's own rules (duplicates fold as one, a clear may precede)
            return [command]
        if command.command_id in self._applied:
            _log.debug("authority.replay", topic=message.topic(), partition=message.partition(),
                       offset=message.offset(), command=command.command_id)
            return []
        verdict = self.authority.check(purpose="control", topic=message.topic() or "", value=message.value() or b"",
                                       headers=message.headers(), action=CONTROL_ACTIONS[command.type.value],
                                       tenant=command.tenant or "*", issuer=issuer_of(command.issuer),
                                       at_us=command.issued_at_us)
        if not verdict.ok:
            self._refuse(command, message, verdict.reason, verdict)
            return []
        if command.type is ControlType.CLEAR:
            return self._admit_clear(command, message)
        self._applied.add(command.command_id)
        self._commands.setdefault(command.command_id, command)
        out = [command]
        for held in self._held.pop(command.command_id, ()):
            self._held_count -= 1
            out.extend(self._judge_clear(held.clear, held.message, command))
        return out

    @property
    def held(self) -> int:
        """Clears waiting for the command they name."""
        return self._held_count

    def _admit_clear(self, clear: ControlCommand, message: _Message) -> list[ControlCommand]:
        target_id = clear.clears_command_id
        if not target_id:
            self._refuse(clear, message, "a clear must name the command it lifts (clears_command_id)")
            return []
        target = self._commands.get(target_id)
        if target is None:  # perhaps on another partition, not read yet: hold it
            if self._held_count >= MAX_HELD_CLEARS:
                self._refuse(clear, message, f"names command {target_id}, not seen, and {MAX_HELD_CLEARS} clears "
                                             "already wait for theirs")
                return []
            self._held.setdefault(target_id, []).append(_Held(clear, message))
            self._held_count += 1
            return []
        return self._judge_clear(clear, message, target)

    def _judge_clear(self, clear: ControlCommand, message: _Message, target: ControlCommand) -> list[ControlCommand]:
        if clear.command_id in self._applied:
            return []
        if target.issued_at_us >= clear.issued_at_us:
            self._refuse(clear, message, f"clears command {target.command_id}, issued at {target.issued_at_us}, not "
                                         f"before the clear ({clear.issued_at_us})")
            return []
        if (target.tenant or "") != (clear.tenant or ""):
            self._refuse(clear, message, f"clears command {target.command_id} of tenant {target.tenant or '*'!r}, "
                                         f"not of the clear's tenant {clear.tenant or '*'!r}")
            return []
        self._applied.add(clear.command_id)
        return [clear]

    def _refuse(self, command: ControlCommand, message: _Message, reason: str, verdict: Verdict | None = None) -> None:
        refusal = _refusal("control", message, record_id=command.command_id, issuer=issuer_of(command.issuer),
                           action=CONTROL_ACTIONS[command.type.value], tenant=command.tenant, reason=reason,
                           at_us=command.issued_at_us, verdict=verdict, target=command.clears_command_id or "",
                           agent_id=command.agent_id)
        self.refused += 1
        if self.record_refusals:
            self.refusals.append(refusal)
            if len(self.refusals) > MAX_REFUSALS_KEPT:
                del self.refusals[0]

    def take_refusals(self) -> list[Refusal]:
        """The refusals kept so far, and forget them (the consumer writes them as incidents once)."""
        out, self.refusals = self.refusals, []
        return out

    def pending(self) -> Iterable[ControlCommand]:
        """Clears still held (their target never arrived)."""
        return [held.clear for bucket in self._held.values() for held in bucket]


def check_lifecycle(authority: Authority, record: Mapping[str, Any], message: _Message) -> Refusal | None:
    """None when the lifecycle event ``record`` (its Avro dict) is authorized, else its :class:`Refusal`."""
    kind = str(record.get("type") or "")
    action = LIFECYCLE_ACTIONS.get(kind, kind)
    issuer = issuer_of(record.get("actor") or {})
    tenant = str(record.get("tenant") or "")
    at_us = int(record.get("at_us") or 0)
    verdict = authority.check(purpose="lifecycle", topic=message.topic() or "", value=message.value() or b"",
                              headers=message.headers(), action=action, tenant=tenant or "*", issuer=issuer,
                              at_us=at_us)
    if verdict.ok:
        return None
    return _refusal("lifecycle", message, record_id=str(record.get("event_id") or ""), issuer=issuer, action=action,
                    tenant=tenant, reason=verdict.reason, at_us=at_us, verdict=verdict,
                    target=str(record.get("incident_id") or ""))
