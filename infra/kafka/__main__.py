"""Set up an Apache Kafka with an authorizer for agentaudit, as its super user (``AGENTAUDIT_KAFKA_*``).

``python -m agentaudit.infra.kafka --scram-users --create-topics`` sets each principal's SCRAM-SHA-512
password from ``AGENTAUDIT_SCRAM_PASSWORD_<KIND>`` (``AGENT``, ``SINK``, ``RULES``, ``DASHBOARD``,
``OPERATOR``; unset ones are left alone), creates the topics and applies :func:`~agentaudit.infra.kafka.acls.grants`.
``--print`` prints the same ACLs as ``kafka-acls.sh`` arguments instead. Compose runs it as ``kafka-setup``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pydantic import SecretStr

from agentaudit.infra.exceptions import KafkaError
from agentaudit.infra.kafka.acls import CONTROL_RETENTION, Principals, grants
from agentaudit.infra.kafka.admin import KafkaAdmin
from agentaudit.settings import KafkaSettings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agentaudit.infra.kafka [--print] [--create-topics] [--scram-users]``: set up a broker as its admin."""
    parser = argparse.ArgumentParser(prog="python -m agentaudit.infra.kafka", description=main.__doc__)
    parser.add_argument("--print", action="store_true", help="print kafka-acls.sh arguments instead of applying")
    parser.add_argument("--create-topics", action="store_true",
                        help="also create agentaudit's topics (the other principals may not create them)")
    parser.add_argument("--scram-users", action="store_true",
                        help="also set each principal's SCRAM-SHA-512 password from AGENTAUDIT_SCRAM_PASSWORD_<KIND>")
    for kind in Principals.__dataclass_fields__:
        parser.add_argument(f"--{kind}", default=kind, help=f"SASL user of the {kind} clients (default {kind})")
    parser.add_argument("--sink-group", default="agentaudit-sink")
    parser.add_argument("--rules-group", default="agentaudit-rules")
    parser.add_argument("--digest-topic", default="agentaudit.digests",
                        help="the sink's signed store digests (AGENTAUDIT_SINK_DIGEST_TOPIC)")
    args = parser.parse_args(argv)
    settings = KafkaSettings()  # bootstrap and the admin's SASL/TLS from AGENTAUDIT_*
    principals = Principals(**{k: getattr(args, k) for k in Principals.__dataclass_fields__})
    wanted = grants(settings.topics, principals, sink_group=args.sink_group, rules_group=args.rules_group,
                    digest_topic=args.digest_topic)
    if args.print:
        for grant in wanted:
            print("kafka-acls.sh --add", *grant.cli_args())
        return 0
    admin = KafkaAdmin(settings)
    try:
        if args.scram_users:
            passwords = {getattr(principals, kind): SecretStr(os.environ[f"AGENTAUDIT_SCRAM_PASSWORD_{kind.upper()}"])
                         for kind in Principals.__dataclass_fields__
                         if os.environ.get(f"AGENTAUDIT_SCRAM_PASSWORD_{kind.upper()}")}
            admin.upsert_scram_users(passwords)
            print(f"SCRAM-SHA-512 users set: {sorted(passwords)}")
        if args.create_topics:
            t = settings.topics
            admin.ensure_topics([t.actions, t.incidents, t.lifecycle, t.dlq, t.repartition, args.digest_topic])
            admin.ensure_topics([t.control], config=CONTROL_RETENTION)
        admin.create_acls(wanted)
    except KafkaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(wanted)} ACLs applied on {settings.bootstrap_servers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
