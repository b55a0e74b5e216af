"""Who may do what on agentaudit's topics: the ACLs for a broker with an authorizer (StandardAuthorizer).

One principal per kind of client, each with the least it needs. The point is that an agent, which
runs code the operator does not control, can write its own actions but never a control command or
a lifecycle event: it cannot clear its own kill, kill others, or resolve an incident.

==========  ===========================================  =====================================
principal   writes                                        reads
==========  ===========================================  =====================================
agent       actions                                       actions (SDK read-back), control
sink        incidents, control (inline rules), dlq        actions, lifecycle, incidents
rules       repartition, incidents, control               actions, repartition
dashboard   control, lifecycle                            control
operator    control, lifecycle, actions (simulate)        every topic; creates topics
==========  ===========================================  =====================================

:func:`grants` lists them as plain records; :meth:`KafkaAdmin.create_acls` applies them and
:meth:`Grant.cli_args` renders them for ``kafka-acls.sh``. ``python -m agentaudit.infra.kafka.acls``
applies them (and creates the topics) with the admin credentials in ``AGENTAUDIT_KAFKA_*``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from agentaudit.settings import KafkaSettings, TopicNames

__all__ = ["CONTROL_RETENTION", "Grant", "Principals", "grants", "main"]

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
           rules_group: str = "agentaudit-rules") -> list[Grant]:
    """The ACLs of the table above for these topic names.

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

    topic(p.sink, "READ", t.actions, t.lifecycle, t.incidents)
    topic(p.sink, "WRITE", t.incidents, t.control, t.dlq)
    group(p.sink, sink_group, prefixed=False)

    topic(p.rules, "READ", t.actions, t.repartition)
    topic(p.rules, "WRITE", t.repartition, t.incidents, t.control)
    group(p.rules, rules_group)

    topic(p.dashboard, "WRITE", t.control, t.lifecycle)
    topic(p.dashboard, "READ", t.control)
    group(p.dashboard, "agentaudit-read-")
    group(p.dashboard, "agentaudit-control-")

    every = (t.actions, t.incidents, t.lifecycle, t.control, t.dlq, t.repartition)
    topic(p.operator, "READ", *every)
    topic(p.operator, "CREATE", *every)
    topic(p.operator, "DESCRIBE_CONFIGS", *every)
    topic(p.operator, "WRITE", t.control, t.lifecycle, t.actions)
    group(p.operator, "agentaudit-")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agentaudit.infra.kafka.acls [--print] [--create-topics]``: apply the ACLs as an admin."""
    from agentaudit.infra.exceptions import KafkaError
    from agentaudit.infra.kafka.admin import KafkaAdmin

    parser = argparse.ArgumentParser(prog="python -m agentaudit.infra.kafka.acls", description=main.__doc__)
    parser.add_argument("--print", action="store_true", help="print kafka-acls.sh arguments instead of applying")
    parser.add_argument("--create-topics", action="store_true",
                        help="also create agentaudit's topics (the other principals may not create them)")
    for kind in Principals.__dataclass_fields__:
        parser.add_argument(f"--{kind}", default=kind, help=f"SASL user of the {kind} clients (default {kind})")
    parser.add_argument("--sink-group", default="agentaudit-sink")
    parser.add_argument("--rules-group", default="agentaudit-rules")
    args = parser.parse_args(argv)
    settings = KafkaSettings()  # bootstrap and the admin's SASL/TLS from AGENTAUDIT_*
    principals = Principals(**{k: getattr(args, k) for k in Principals.__dataclass_fields__})
    wanted = grants(settings.topics, principals, sink_group=args.sink_group, rules_group=args.rules_group)
    if args.print:
        for grant in wanted:
            print("kafka-acls.sh --add", *grant.cli_args())
        return 0
    admin = KafkaAdmin(settings)
    try:
        if args.create_topics:
            t = settings.topics
            admin.ensure_topics([t.actions, t.incidents, t.lifecycle, t.dlq, t.repartition])
            admin.ensure_topics([t.control], config=CONTROL_RETENTION)
        admin.create_acls(wanted)
    except KafkaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(wanted)} ACLs applied on {settings.bootstrap_servers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
