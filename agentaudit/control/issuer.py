"""How people write to the control plane: kill, clear and promote, each naming its issuer.

The CLI (``agentaudit control ...``) and the dashboard publish through :class:`ControlIssuer`
and read the current state back with :func:`~agentaudit.control.topic.read_control_state`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from types import TracebackType

from agentaudit.control.authority import sign_headers
from agentaudit.control.topic import wall_clock_us
from agentaudit.exceptions import AgentAuditError
from agentaudit.infra.kafka import (
    KafkaProducer,
)
from agentaudit.schemas import (
    Actor,
    ActorType,
    AvroCodec,
    ControlCommand,
    ControlType,
    RuleMode,
    SigningKey,
)
from agentaudit.settings import KafkaSettings

__all__ = ["ControlIssuer"]

_log = logging.getLogger("agentaudit.control")


class ControlIssuer:
    """Publishes control commands, each a recorded event naming who issued it.

    :param settings: broker and control topic.
    :param producer: an existing producer to share; default a new one, closed by :meth:`close`.
    :param key: the operator's (CLI, ``AGENTAUDIT_OPERATOR_KEY_FILE``) or a service's (dashboard, consumer) key;
        every command is signed with it (:func:`~agentaudit.control.authority.sign_headers`). Default None:
        unsigned, which readers with an authority file refuse.

    Example::

        with ControlIssuer(settings) as issuer:
            kill = issuer.kill("billing-bot", actor="alice", reason="runaway refunds")
            issuer.clear(kill, actor="alice", note="root cause fixed")
    """

    def __init__(self, settings: KafkaSettings, producer: KafkaProducer | None = None, *,
                 key: SigningKey | None = None) -> None:
        self.settings = settings
        self.key = key
        self.topic = settings.topics.control
        self._codec = AvroCodec("control", schema_registry_url=settings.schema_registry_url, topic=self.topic)
        self._own = producer is None
        self._producer = producer if producer is not None else KafkaProducer(settings, {"linger.ms": 0})

    def publish(self, command: ControlCommand, *, flush: bool = True, timeout: float = 10.0) -> ControlCommand:
        """Publish ``command`` keyed by its agent (rule for promotions), so an agent's commands stay ordered."""
        key = command.attributes.get("rule_id", "") if command.type is ControlType.PROMOTE_RULE else command.agent_id
        value = self._codec.encode(command.to_avro())
        headers = sign_headers(self.key, "control", self.topic, value) if self.key is not None else None
        self._producer.produce(self.topic, value, key=key.encode(), headers=headers)
        if flush and self._producer.flush(timeout):
            raise AgentAuditError(f"control command {command.command_id} was not acknowledged by the broker within "
                                  f"{timeout}s on topic {self.topic!r}; check that the broker is reachable")
        return command

    def command(self, type: ControlType, *, agent_id: str, actor: str | Actor, reason: str = "",
                tenant: str = "", tool: str | None = None, ttl_s: float | None = None,
                incident_id: str | None = None, attributes: Mapping[str, str] | None = None,
                command_id: str | None = None) -> ControlCommand:
        """Build a command issued now by ``actor`` (a plain name means a human)."""
        now = wall_clock_us()
        issuer = actor if isinstance(actor, Actor) else Actor(type=ActorType.HUMAN, id=actor)
        return ControlCommand(
            command_id=command_id or str(uuid.uuid4()), type=type, tenant=tenant, agent_id=agent_id, tool=tool,
            reason=reason, incident_id=incident_id, issuer=issuer, issued_at_us=now,
            expires_at_us=None if ttl_s is None else now + int(ttl_s * 1_000_000),
            attributes=dict(attributes or {}))

    def kill(self, agent_id: str, *, actor: str | Actor, reason: str, tenant: str = "",
             ttl_s: float | None = None) -> ControlCommand:
        """The kill switch: every action of ``agent_id`` (``*``: every agent) is refused until cleared."""
        return self.publish(self.command(ControlType.KILL_AGENT, agent_id=agent_id, actor=actor, reason=reason,
                                         tenant=tenant, ttl_s=ttl_s))

    def pause(self, agent_id: str, *, actor: str | Actor, reason: str, tenant: str = "",
              ttl_s: float | None = None) -> ControlCommand:
        return self.publish(self.command(ControlType.PAUSE_AGENT, agent_id=agent_id, actor=actor, reason=reason,
                                         tenant=tenant, ttl_s=ttl_s))

    def clear(self, target: ControlCommand, *, actor: str | Actor, note: str = "") -> ControlCommand:
        """Lift ``target``; the clear is itself a command naming who lifted it and why."""
        return self.publish(self.command(
            ControlType.CLEAR, agent_id=target.agent_id, tenant=target.tenant, tool=target.tool, actor=actor,
            reason=note, incident_id=target.incident_id,
            attributes={"note": note, "cleared_type": target.type.value}).model_copy(
                update={"clears_command_id": target.command_id}))

    def promote(self, rule_id: str, *, to: RuleMode | str, actor: str | Actor, note: str = "",
                from_mode: RuleMode | str | None = None) -> ControlCommand:
        """Record that ``rule_id`` now runs in mode ``to``; consumers and guards that read the topic obey."""
        to_mode = RuleMode(to)
        attributes = {"rule_id": rule_id, "to_mode": to_mode.value, "note": note}
        if from_mode is not None:
            attributes["from_mode"] = RuleMode(from_mode).value
        return self.publish(self.command(ControlType.PROMOTE_RULE, agent_id="", actor=actor,
                                         reason=note or f"promote {rule_id} to {to_mode.value}",
                                         attributes=attributes))

    def close(self) -> None:
        if self._own:
            self._producer.close()

    def __enter__(self) -> ControlIssuer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

