"""Control commands (schemas/avro/control.v1.avsc) and the fold that turns them into current constraints.

The control topic is a log: an agent's constraints at any moment are the fold of every command
so far, honouring expiry and clears. Both the SDK (which obeys) and the CLI (which lists) fold
the same way through :class:`ControlState`.

>>> state = ControlState()
>>> for command in commands:          # in log order
...     state.apply(command)
>>> state.blocking("acme", "agent-7", "shell.exec", now_us)   # the command that blocks, or None
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from pydantic import Field

from agentaudit.schemas.models import Actor, ActorType, RuleMode, _AvroModel

__all__ = ["ANY_AGENT", "ControlCommand", "ControlState", "ControlType", "command_id_for"]

#: ``agent_id`` of a command that applies to every agent of its tenant.
ANY_AGENT = "*"

_NAMESPACE = uuid.UUID("5b0f3c52-8d3e-4d0e-9a57-9f7e8d1c2a10")


class ControlType(StrEnum):
    """What a command does. ``clear`` lifts an earlier command; ``promote_rule`` changes a rule's mode."""

    PAUSE_AGENT = "pause_agent"
    BLOCK_TOOL = "block_tool"
    REQUIRE_APPROVAL = "require_approval"
    KILL_AGENT = "kill_agent"
    CLEAR = "clear"
    PROMOTE_RULE = "promote_rule"


#: Types that stop actions outright, strongest first (a kill outranks a pause outranks a tool block).
_BLOCKING = (ControlType.KILL_AGENT, ControlType.PAUSE_AGENT, ControlType.BLOCK_TOOL)


def command_id_for(*parts: str) -> str:
    """A deterministic command id from its origin (e.g. incident id and type): re-publishing is idempotent."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))


class ControlCommand(_AvroModel):
    """One control command, as published on the control topic."""

    command_id: str
    type: ControlType
    tenant: str = ""
    agent_id: str = ""
    tool: str | None = None
    reason: str = ""
    incident_id: str | None = None
    issuer: Actor = Field(default_factory=lambda: Actor(type=ActorType.SYSTEM, id="agentaudit"))
    issued_at_us: int
    expires_at_us: int | None = None
    clears_command_id: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)

    @property
    def simulated(self) -> bool:
        """A record of what enforcement *would* have done; never obeyed."""
        return self.attributes.get("simulated") == "true"

    def expired(self, now_us: int) -> bool:
        return self.expires_at_us is not None and now_us >= self.expires_at_us

    def applies_to(self, tenant: str, agent_id: str, tool: str | None) -> bool:
        """Whether this constraint covers ``agent_id`` (of ``tenant``) calling ``tool``."""
        if self.tenant and tenant and self.tenant != tenant:
            return False
        if self.agent_id not in (ANY_AGENT, agent_id):
            return False
        if self.type in (ControlType.BLOCK_TOOL, ControlType.REQUIRE_APPROVAL):
            return self.tool is not None and self.tool == tool
        return True


class ControlState:
    """The current constraints: the fold of control commands in log order.

    Not thread-safe by itself; :class:`agentaudit.control.ControlListener` guards it.
    A clear may arrive before the command it lifts (another partition): it still wins.
    """

    __slots__ = ("_active", "_by_agent", "_cleared", "rule_modes", "history", "applied")

    def __init__(self) -> None:
        self._active: dict[str, ControlCommand] = {}
        self._by_agent: dict[str, list[ControlCommand]] = {}
        self._cleared: dict[str, ControlCommand] = {}
        #: rule id -> mode, from promote_rule commands (the last one wins).
        self.rule_modes: dict[str, RuleMode] = {}
        #: every command seen, in order (for listing and audits).
        self.history: list[ControlCommand] = []
        self.applied = 0

    def apply(self, command: ControlCommand) -> None:
        """Fold one command in."""
        self.applied += 1
        self.history.append(command)
        if command.simulated:
            return
        match command.type:
            case ControlType.CLEAR:
                self._clear(command)
            case ControlType.PROMOTE_RULE:
                rule_id, to_mode = command.attributes.get("rule_id"), command.attributes.get("to_mode")
                if rule_id and to_mode is not None and to_mode in RuleMode.__members__.values():
                    self.rule_modes[rule_id] = RuleMode(to_mode)
            case _:
                if command.command_id in self._cleared or command.command_id in self._active:
                    return
                self._active[command.command_id] = command
                self._by_agent.setdefault(command.agent_id, []).append(command)

    def apply_all(self, commands: Iterable[ControlCommand]) -> ControlState:
        for command in commands:
            self.apply(command)
        return self

    def _clear(self, clear: ControlCommand) -> None:
        if clear.clears_command_id:
            targets = [clear.clears_command_id]
        else:  # no id: lift everything on that agent (and tool, if named)
            targets = [c.command_id for c in self._by_agent.get(clear.agent_id, ())
                       if clear.tool is None or c.tool == clear.tool]
        for command_id in targets:
            self._cleared[command_id] = clear
            command = self._active.pop(command_id, None)
            if command is not None:
                bucket = self._by_agent.get(command.agent_id, [])
                bucket[:] = [c for c in bucket if c.command_id != command_id]
                if not bucket:
                    self._by_agent.pop(command.agent_id, None)

    def active(self, now_us: int) -> list[ControlCommand]:
        """Constraints in force at ``now_us`` (not cleared, not expired), oldest first."""
        return [c for c in self._active.values() if not c.expired(now_us)]

    def cleared_by(self, command_id: str) -> ControlCommand | None:
        """The clear that lifted ``command_id``, if any."""
        return self._cleared.get(command_id)

    def blocking(self, tenant: str, agent_id: str, tool: str | None, now_us: int) -> ControlCommand | None:
        """The strongest command that stops ``agent_id`` from running ``tool`` now, or None.

        Cheap when nothing is active for the agent: two dict lookups.
        """
        if not self._by_agent:
            return None
        found: ControlCommand | None = None
        for bucket in (self._by_agent.get(agent_id), self._by_agent.get(ANY_AGENT)):
            for command in bucket or ():
                if command.type is ControlType.REQUIRE_APPROVAL or command.expired(now_us):
                    continue
                if command.applies_to(tenant, agent_id, tool) and (
                        found is None or _BLOCKING.index(command.type) < _BLOCKING.index(found.type)):
                    found = command
        return found

    def approval_required(self, tenant: str, agent_id: str, tool: str | None, now_us: int) -> ControlCommand | None:
        """The require_approval command covering ``agent_id`` calling ``tool`` now, or None."""
        if not self._by_agent:
            return None
        for bucket in (self._by_agent.get(agent_id), self._by_agent.get(ANY_AGENT)):
            for command in bucket or ():
                if (command.type is ControlType.REQUIRE_APPROVAL and not command.expired(now_us)
                        and command.applies_to(tenant, agent_id, tool)):
                    return command
        return None

    def to_dict(self) -> dict[str, Any]:  # for `agentaudit control list --json`
        return {"active": [c.to_avro() for c in self._active.values()],
                "rule_modes": {k: v.value for k, v in self.rule_modes.items()}}
