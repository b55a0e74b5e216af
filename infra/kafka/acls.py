"""Who may do what on agentaudit's topics: the ACLs for a broker with an authorizer (StandardAuthorizer).

One principal per kind of client, each with the least it needs. The point is that an agent, which
runs code the operator does not control, can write its own actions but never a control command or
a lifecycle event: it cannot clear its own kill, kill others, or resolve an incident.

==========  ================================================  =====================================
principal   writes                                             reads
==========  ================================================  =====================================
agent       actions                                            actions (SDK read-back), control
sink        incidents, control (inline rules), dlq, digests    actions, lifecycle, incidents, control
rules       repartition, incidents, control                    actions, repartition, control
dashboard   control, lifecycle                                 control
operator    control, lifecycle, actions (simulate)             every topic; creates topics
==========  ================================================  =====================================

:func:`grants` lists them as plain records; :meth:`KafkaAdmin.create_acls` applies them and
:meth:`Grant.cli_args` renders them for ``kafka-acls.sh``. ``python -m agentaudit.infra.kafka``
applies them with the admin credentials in ``AGENTAUDIT_KAFKA_*``; with ``--create-topics`` it creates
the topics, and with ``--scram-users`` it sets the SCRAM-SHA-512 password of each principal from
``AGENTAUDIT_SCRAM_PASSWORD_<KIND>`` (``..._AGENT``, ``..._SINK``, ``..._RULES``, ``..._DASHBOARD``, ``..._OPERATOR``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from agentaudit.settings import TopicNames

__all__ = ["CONTROL_RETENTION", "Grant", "Principals", "grants"]

Operation = Literal["READ", "WRITE", "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS"]

#: The control topic keeps every command forever (same as ``agentaudit.control.CONTROL_TOPIC_CONFIG``;
#: a unit test keeps the two equal, since infra may not import the control plane).
CONTROL_RETENTION: Final[dict[str, str]] = {"retention.ms": "-1"}


@dataclass(frozen=True, slots=True)
class Principals:
    """SASL user names of each kind of client (``User:<name>`` on the broker)."""

    agent: str = "agent"
    sink: str = "sink"
    rules: str = "rules"
    dashboard: str = "dashboard"
    operator: str = "operator"


@dataclass(frozen=True, slots=True)
class Grant:
    """One ALLOW rule: ``principal`` may ``operation`` on a topic or group (``prefixed`` matches names starting so)."""

    principal: str
    resource: Literal["topic", "group"]
    name: str
    operation: Operation
    prefixed: bool = False

    def cli_args(self) -> list[str]:
        """Arguments of ``kafka-acls.sh --add`` (bootstrap and auth options not included)."""
        args = ["--allow-principal", f"User:{self.principal}", "--operation", _CLI_OPERATION[self.operation],
                f"--{self.resource}", self.name]
        if self.prefixed:
            args += ["--resource-pattern-type", "prefixed"]
        return args


_CLI_OPERATION: Final[dict[str, str]] = {"READ": "Read", "WRITE": "Write", "CREATE": "Create",
                                         "DESCRIBE": "Describe", "DESCRIBE_CONFIGS": "DescribeConfigs"}


def grants(topics: TopicNames, principals: Principals | None = None, *, sink_group: str = "agentaudit-sink",
           rules_group: str = "agentaudit-rules", digest_topic: str = "agentaudit.digests") -> list[Grant]:
    """The ACLs of the table above for these topic names.

    :param digest_topic: where the sink publishes its signed store digests (``AGENTAUDIT_SINK_DIGEST_TOPIC``).
    :param sink_group: the sink's consumer group (``AGENTAUDIT_SINK_GROUP``), default ``agentaudit-sink``.
    :param rules_group: the rules worker's group; its re-key loop uses ``<group>-rekey``, so prefixed.
    """
    p = principals or Principals()
    t = topics
    out: list[Grant] = []

    def topic(who: str, op: Operation, *names: str) -> None:
        out.extend(Grant(who, "topic", name, op) for name in names)

    def group(who: str, name: str, *, prefixed: bool = True) -> None:
        out.append(Grant(who, "group", name, "READ", prefixed))

    # Groups with a uuid tail (control listeners, read-backs, read_all) are granted by prefix.
    topic(p.agent, "WRITE", t.actions)
    topic(p.agent, "READ", t.actions, t.control)
    group(p.agent, "agentaudit-sdk-readback-")
    group(p.agent, "agentaudit-control-")

    # The sink and rules workers read the control topic too: promotions set rule modes, and with an
    # authority file the sink turns refused commands into integrity incidents.
    topic(p.sink, "READ", t.actions, t.lifecycle, t.incidents, t.control)
    topic(p.sink, "WRITE", t.incidents, t.control, t.dlq, digest_topic)
    group(p.sink, sink_group, prefixed=False)
    group(p.sink, "agentaudit-control-")

    topic(p.rules, "READ", t.actions, t.repartition, t.control)
    topic(p.rules, "WRITE", t.repartition, t.incidents, t.control)
    group(p.rules, rules_group)
    group(p.rules, "agentaudit-control-")

    topic(p.dashboard, "WRITE", t.control, t.lifecycle)
    topic(p.dashboard, "READ", t.control)
    group(p.dashboard, "agentaudit-read-")
    group(p.dashboard, "agentaudit-control-")

    every = (t.actions, t.incidents, t.lifecycle, t.control, t.dlq, t.repartition, digest_topic)
    topic(p.operator, "READ", *every)
    topic(p.operator, "CREATE", *every)
    topic(p.operator, "DESCRIBE_CONFIGS", *every)
    topic(p.operator, "WRITE", t.control, t.lifecycle, t.actions)
    group(p.operator, "agentaudit-")
    return out
