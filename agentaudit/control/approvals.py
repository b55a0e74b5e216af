"""Approvals bound to the exact arguments of one action.

An approval names the approver, the agent, the tool and ``args_hash``: the SHA-256 of the
RFC 8785 canonical JSON of the arguments. The SDK refuses to run the action when its arguments hash
differently, or when the approval has expired, so an approval for arguments A never
authorises arguments B.

>>> approval = Approval.grant(agent_id="billing-bot", tool="payments.refund", args={"amount": 40},
...                           approver="alice", ttl_s=600)
>>> approval.verify(agent_id="billing-bot", tool="payments.refund", args={"amount": 40})   # ok
>>> approval.verify(agent_id="billing-bot", tool="payments.refund", args={"amount": 4000})  # ActionBlocked
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentaudit.control._blocked import ActionBlocked
from agentaudit.schemas import Actor, ActorType
from agentaudit.schemas.canonical import CanonicalError
from agentaudit.schemas.canonical import canonical_json as _canonical_json

__all__ = ["APPROVAL_ATTRIBUTES", "Approval", "args_hash", "canonical_json"]

#: Attribute names an approval event carries (kind=approval, phase=point).
APPROVAL_ATTRIBUTES = ("approval_id", "args_hash", "approver_type", "approver_id", "approved_agent_id",
                       "approved_tool", "expires_at_us")


def canonical_json(args: Any) -> str:
    """Arguments in their RFC 8785 canonical form; the same value reads the same in every process.

    Strict: arguments JSON cannot hold as they are (an object, a NaN, an integer beyond 2**53, a
    non-string key) raise ``ValueError``, since converting them would let two different arguments
    share one approval.
    """
    try:
        return _canonical_json(args)
    except CanonicalError as exc:
        raise ValueError(f"action arguments must be JSON values to be approved or hashed: {exc}") from exc


def args_hash(args: Any) -> str:
    """SHA-256 hex of :func:`canonical_json` of ``args``: what an approval is bound to."""
    return hashlib.sha256(canonical_json(args).encode("utf-8")).hexdigest()


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class Approval:
    """A person's (or system's) consent to one action with exactly these arguments, until it expires."""

    approval_id: str
    agent_id: str
    tool: str
    args_hash: str
    approver: Actor
    issued_at_us: int
    expires_at_us: int
    tenant: str = ""
    reason: str = ""

    @classmethod
    def grant(cls, *, agent_id: str, tool: str, args: Any, approver: str | Actor, ttl_s: float = 900.0,
              tenant: str = "", reason: str = "", now_us: int | None = None) -> Approval:
        """Approve ``tool`` with ``args`` for ``agent_id``; a plain ``approver`` name means a human.

        :param ttl_s: seconds until the approval expires, default 900 (15 minutes).
        """
        if ttl_s <= 0:
            raise ValueError("an approval needs a positive ttl_s")
        now = _now_us() if now_us is None else now_us
        who = approver if isinstance(approver, Actor) else Actor(type=ActorType.HUMAN, id=approver)
        return cls(approval_id=str(uuid.uuid4()), agent_id=agent_id, tool=tool, args_hash=args_hash(args),
                   approver=who, issued_at_us=now, expires_at_us=now + int(ttl_s * 1_000_000), tenant=tenant,
                   reason=reason)

    def attributes(self) -> dict[str, str]:
        """The attributes of the approval event that records this approval."""
        return {"approval_id": self.approval_id, "args_hash": self.args_hash,
                "approver_type": self.approver.type.value, "approver_id": self.approver.id,
                "approved_agent_id": self.agent_id, "approved_tool": self.tool,
                "expires_at_us": str(self.expires_at_us)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Approval:
        """The approval recorded by an approval event (a decoded action record)."""
        attrs = record.get("attributes") or {}
        missing = [k for k in APPROVAL_ATTRIBUTES if k not in attrs]
        if missing:
            raise ValueError(f"event {record.get('event_id')!r} is not an approval record: missing {missing}")
        return cls(approval_id=attrs["approval_id"], agent_id=attrs["approved_agent_id"],
                   tool=attrs["approved_tool"], args_hash=attrs["args_hash"],
                   approver=Actor(type=ActorType(attrs["approver_type"]), id=attrs["approver_id"]),
                   issued_at_us=int(record.get("event_time_us") or 0), expires_at_us=int(attrs["expires_at_us"]),
                   tenant=str(record.get("tenant", "")), reason=str(record.get("input_body") or ""))

    def verify(self, *, agent_id: str, tool: str, args: Any = None, digest: str | None = None,
               now_us: int | None = None) -> None:
        """Raise :class:`ActionBlocked` unless this approval covers exactly this call now.

        :param digest: the precomputed :func:`args_hash` of ``args``, to hash only once.
        """
        now = _now_us() if now_us is None else now_us
        if self.agent_id != agent_id or self.tool != tool:
            raise ActionBlocked(f"approval {self.approval_id} is for agent {self.agent_id!r} calling "
                                f"{self.tool!r}, not this call", code="approval_mismatch", agent_id=agent_id,
                                tool=tool)
        if now >= self.expires_at_us:
            raise ActionBlocked(f"approval {self.approval_id} by {self.approver.id} expired "
                                f"{(now - self.expires_at_us) / 1e6:.1f}s ago; ask for a new one",
                                code="approval_expired", agent_id=agent_id, tool=tool)
        actual = digest if digest is not None else args_hash(args)
        if actual != self.args_hash:
            # no hash in the message: it is recorded (guardrail event), and a plain SHA-256 of short
            # arguments gives them back to whoever hashes every candidate
            raise ActionBlocked(f"arguments differ from what {self.approver.id} approved in {self.approval_id}; "
                                "ask for approval of these arguments", code="approval_mismatch",
                                agent_id=agent_id, tool=tool)
