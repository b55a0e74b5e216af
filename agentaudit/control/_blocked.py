"""The one error the SDK lets through to agent code on purpose: a control decision said no."""

from __future__ import annotations

from agentaudit.exceptions import AgentAuditError

__all__ = ["ActionBlocked"]


class ActionBlocked(AgentAuditError):
    """An action was stopped before it ran, by a control command, the inline guard or an approval check.

    Not telemetry trouble: the SDK raises it into the agent's code so the agent does not run the action.

    :param reason: why, in words a person can act on.
    :param incident_id: the incident behind the decision, when there is one.
    :param command_id: the control command that blocked, when there is one (clear it to resume).
    :param code: what kind of stop: ``killed``, ``paused``, ``tool_blocked``, ``approval_required``,
        ``approval_mismatch``, ``approval_expired``, ``guard_denied``.
    :param rule_id: the rule behind the decision, when there is one.
    """

    def __init__(self, reason: str, *, incident_id: str | None = None, command_id: str | None = None,
                 code: str = "blocked", rule_id: str | None = None, agent_id: str = "",
                 tool: str | None = None) -> None:
        self.reason = reason
        self.incident_id = incident_id
        self.command_id = command_id
        self.code = code
        self.rule_id = rule_id
        self.agent_id = agent_id
        self.tool = tool
        where = f"agent {agent_id!r}" + (f" calling {tool!r}" if tool else "")
        refs = ", ".join(f"{k}={v}" for k, v in (("incident", incident_id), ("command", command_id),
                                                  ("rule", rule_id)) if v)
        hint = (f"; a human can lift it with `agentaudit control clear --command {command_id}`"
                if command_id else "")
        super().__init__(f"{code}: {where} blocked: {reason}" + (f" ({refs})" if refs else "") + hint)
