"""infra/docker-compose.yml runs Kafka with SASL and ACLs (no Docker here: the file itself is checked).

Attack this guards against: a compose edit that quietly reopens an unauthenticated listener, drops the
authorizer, or starts a client without credentials (which then needs the listener reopened).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from agentaudit.infra.kafka.acls import Principals

COMPOSE = Path(__file__).resolve().parents[2] / "infra" / "docker-compose.yml"


def _services() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())["services"]  # type: ignore[no-any-return]  # parsed YAML


def test_broker_has_no_unauthenticated_listener_and_an_authorizer() -> None:
    env = _services()["kafka"]["environment"]
    protocols = {pair.split(":", 1)[1] for pair in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")}
    assert protocols <= {"SASL_PLAINTEXT", "SASL_SSL"}, protocols
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert env["KAFKA_SUPER_USERS"] == "User:admin"
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert not any("PASSWORD" in key and key.startswith("KAFKA_") for key in env), \
        "KAFKA_* variables become broker properties (and land in server.properties)"


def test_every_kafka_client_logs_in_as_its_own_principal() -> None:
    principals = {getattr(Principals(), kind) for kind in Principals.__dataclass_fields__}
    users = {}
    for name, service in _services().items():
        env = service.get("environment") or {}
        if "AGENTAUDIT_BOOTSTRAP_SERVERS" not in env or name == "migrate":  # migrate talks to ClickHouse only
            continue
        assert env.get("AGENTAUDIT_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").startswith("SASL_"), name
        assert env.get("AGENTAUDIT_KAFKA_SASL_PASSWORD", "").startswith("${"), f"{name}: password not from the env"
        users[name] = env["AGENTAUDIT_KAFKA_SASL_USERNAME"]
    assert users == {"kafka-setup": "admin", "consumer": "sink", "rules": "rules", "dashboard": "dashboard"}
    assert set(users.values()) - {"admin"} <= principals


def test_setup_sets_a_password_for_every_principal() -> None:
    env = _services()["kafka-setup"]["environment"]
    for kind in Principals.__dataclass_fields__:
        assert env[f"AGENTAUDIT_SCRAM_PASSWORD_{kind.upper()}"].startswith("${KAFKA_"), kind
