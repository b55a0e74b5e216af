"""From verdict back to agent: enforce-mode incidents become control commands.

:class:`ControlPublisher` wraps the sink's evaluator. It passes every incident through and,
by the rule's mode (a ``promote_rule`` command on the control topic overrides the file):

- ``detect``: nothing more;
- ``simulate``: records what enforcement would have done, never blocks: the incident gets
  ``control_*`` attributes, and a control command marked ``attributes["simulated"]="true"``
  (which agents ignore) is published so ``agentaudit control list`` shows it;
- ``enforce``: publishes the command (pause the agent by default; a rule tag
  ``control:block_tool``, ``control:require_approval`` or ``control:kill_agent`` picks another)
  with the reason, the incident id, an expiry and ``issuer=system``.

Command ids derive from the incident id, so a re-read batch re-publishes the same command,
which the fold treats as one; a human clear of it stays in force.

>>> evaluator = ControlPublisher(load_evaluator(paths), kafka_settings)
>>> Sink(kafka_settings, store_settings, sink_settings, evaluator).run(stop)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from agentaudit.control.authority import sign_headers
from agentaudit.control.guard import RuleModeLookup
from agentaudit.infra.kafka import KafkaProducer
from agentaudit.logs import get_logger
from agentaudit.rules.engine import BaseEvaluator
from agentaudit.schemas import (
    Actor,
    ActorType,
    AvroCodec,
    ControlCommand,
    ControlType,
    Incident,
    RuleMode,
    SigningKey,
    command_id_for,
)
from agentaudit.settings import KafkaSettings

__all__ = ["CONTROL_TAG_PREFIX", "ControlPublisher", "ControlPublisherSettings"]

_log = get_logger("agentaudit.consumers.control")

#: A rule tag ``control:<type>`` chooses the command its enforce mode publishes.
CONTROL_TAG_PREFIX = "control:"
_TOOL_TYPES = (ControlType.BLOCK_TOOL, ControlType.REQUIRE_APPROVAL)
_ACTION_TYPES = {t.value: t for t in (ControlType.PAUSE_AGENT, ControlType.BLOCK_TOOL, ControlType.REQUIRE_APPROVAL,
                                      ControlType.KILL_AGENT)}


class ControlPublisherSettings(BaseSettings):
    """How enforcement acts. ``AGENTAUDIT_CONTROL_<NAME>`` overrides each field.

    :param default_action: command of an enforce rule without a ``control:`` tag, default ``pause_agent``.
    :param ttl_s: seconds until a published command expires, default 3600; 0 means until cleared.
    :param issuer_id: the system issuer's id on published commands, default ``agentaudit-rules``.
    :param flush_timeout_s: seconds to wait for the broker to acknowledge commands, default 10.
    """

    model_config = SettingsConfigDict(env_prefix="AGENTAUDIT_CONTROL_", frozen=True, extra="ignore")

    default_action: Literal["pause_agent", "block_tool", "require_approval", "kill_agent"] = "pause_agent"
    ttl_s: float = 3600.0
    issuer_id: str = "agentaudit-rules"
    flush_timeout_s: float = 10.0


class ControlPublisher(BaseEvaluator):
    """An evaluator decorator: delegates judgement, then acts on simulate and enforce incidents.

    :param inner: the evaluator that judges (the rule engine).
    :param kafka: broker and control topic (``AGENTAUDIT_TOPIC_CONTROL``).
    :param settings: action, expiry and issuer (``AGENTAUDIT_CONTROL_*``).
    :param modes: current rule modes from promotions (e.g. ``ControlListener.rule_mode``); default the files'.
    :param producer: a producer to share; default a new one.
    :param key: the consumer's service key (``AGENTAUDIT_SERVICE_KEY_FILE``): each command is signed with it, on
        behalf of its ``system:<issuer_id>`` issuer; default None, unsigned (refused where an authority is set).
    """

    def __init__(self, inner: BaseEvaluator, kafka: KafkaSettings, settings: ControlPublisherSettings | None = None,
                 *, modes: RuleModeLookup | None = None, producer: KafkaProducer | None = None,
                 key: SigningKey | None = None) -> None:
        self.inner = inner
        self.key = key
        self.settings = settings or ControlPublisherSettings()
        self.topic = kafka.topics.control
        self._modes = modes
        self._codec = AvroCodec("control", schema_registry_url=kafka.schema_registry_url, topic=self.topic)
        self._owns_producer = producer is None  # a given producer may be shared (one publisher per partition)
        self._producer = producer if producer is not None else KafkaProducer(kafka, {"linger.ms": 0})
        self._published: set[str] = set()
        self.published: list[ControlCommand] = []  # this process's commands, newest last (status, tests)

    @property  # type: ignore[override]  # read-only here: the wrapped evaluator's revision
    def revision(self) -> str:
        return self.inner.revision

    def evaluate(self, records: Sequence[dict[str, Any]]) -> list[Incident]:
        return self._act(self.inner.evaluate(records), records)

    def on_watermark(self, watermark_us: int) -> list[Incident]:
        return self._act(self.inner.on_watermark(watermark_us), ())

    def on_quiet(self, quiet_us: dict[str, int], others_us: int | None = None) -> list[Incident]:
        return self._act(self.inner.on_quiet(quiet_us, others_us), ())

    def flush(self) -> list[Incident]:
        """Close every window of the wrapped evaluator (the end of a replay) and act on what that decides."""
        return self._act(self.inner.flush(), ())  # type: ignore[attr-defined]  # not in the Evaluator protocol

    def hold(self, ceiling_us: int | None) -> None:
        self.inner.hold(ceiling_us)

    def snapshot(self) -> bytes:
        return self.inner.snapshot()

    def restore(self, data: bytes) -> None:
        self.inner.restore(data)

    def __getattr__(self, name: str) -> Any:  # flush(), watermark_us, ... of the wrapped evaluator
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- acting ---------------------------------------------------------------------------------

    def _act(self, incidents: list[Incident], records: Sequence[dict[str, Any]]) -> list[Incident]:
        if not incidents:
            return incidents
        out: list[Incident] = []
        sent = 0
        names: dict[str, str] | None = None
        for incident in incidents:
            mode = incident.mode
            if self._modes is not None:
                mode = self._modes(incident.rule_id) or mode
            if mode is RuleMode.DETECT:
                out.append(incident if mode is incident.mode else incident.model_copy(update={"mode": mode}))
                continue
            if names is None:
                names = {r["event_id"]: r["name"] for r in records
                         if r.get("kind") == "execute_tool"} if records else {}
            command = self._command(incident, mode, names)
            if command is None:
                out.append(incident.model_copy(update={"mode": mode}))
                continue
            attributes = dict(incident.attributes)
            attributes.update(control_action=command.type.value, control_command_id=command.command_id,
                              control_simulated=str(mode is RuleMode.SIMULATE).lower(),
                              control_target=command.agent_id + (f"/{command.tool}" if command.tool else ""))
            out.append(incident.model_copy(update={"mode": mode, "attributes": attributes}))
            if command.command_id not in self._published:
                value = self._codec.encode(command.to_avro())
                headers = sign_headers(self.key, "control", self.topic, value) if self.key is not None else None
                self._producer.produce(self.topic, value, key=command.agent_id.encode(), headers=headers)
                self._published.add(command.command_id)
                self.published.append(command)
                sent += 1
                _log.info("control.simulated" if command.simulated else "control.published", command=command.command_id,
                          type=command.type.value, agent=command.agent_id, tool=command.tool,
                          incident=incident.incident_id, rule=incident.rule_id)
        if sent:
            self._flush(sent)
        return out

    def _flush(self, sent: int) -> None:
        # Enforcement that never reaches the broker is no enforcement: wait, and say so loudly.
        left = self._producer.flush(self.settings.flush_timeout_s)
        if left:
            _log.error("control.unacknowledged", commands=left, sent=sent, topic=self.topic,
                       after_s=self.settings.flush_timeout_s,
                       hint="agents are not constrained until the broker takes them")

    def _command(self, incident: Incident, mode: RuleMode, names: dict[str, str]) -> ControlCommand | None:
        if not incident.agent_id:
            _log.warning("control.no_agent", incident=incident.incident_id, rule=incident.rule_id,
                         hint="nothing to constrain")
            return None
        ctype = _ACTION_TYPES[self.settings.default_action]
        for tag in incident.tags:
            if tag.startswith(CONTROL_TAG_PREFIX) and tag[len(CONTROL_TAG_PREFIX):] in _ACTION_TYPES:
                ctype = _ACTION_TYPES[tag[len(CONTROL_TAG_PREFIX):]]
        tool = None
        if ctype in _TOOL_TYPES:
            tool = next((names[e] for e in incident.event_ids if e in names), None)
            if tool is None:  # the tool is unknown here (event of an earlier batch): stop the agent instead
                ctype = ControlType.PAUSE_AGENT
        simulated = mode is RuleMode.SIMULATE
        now = time.time_ns() // 1000
        ttl = self.settings.ttl_s
        attributes = {"rule_id": incident.rule_id, "rule_revision": incident.rule_revision,
                      "severity": incident.severity.value, "mode": mode.value}
        if simulated:
            attributes["simulated"] = "true"
        return ControlCommand(
            command_id=command_id_for(incident.incident_id, ctype.value, tool or "", "simulated" if simulated else ""),
            type=ctype, tenant=incident.tenant, agent_id=incident.agent_id, tool=tool,
            reason=f"rule {incident.rule_id} ({incident.severity.value}): {incident.summary}",
            incident_id=incident.incident_id, issuer=Actor(type=ActorType.SYSTEM, id=self.settings.issuer_id),
            issued_at_us=now, expires_at_us=now + int(ttl * 1_000_000) if ttl > 0 else None, attributes=attributes)

    def close(self) -> None:
        if self._owns_producer:
            self._producer.close(self.settings.flush_timeout_s)
        else:
            self._producer.flush(self.settings.flush_timeout_s)
