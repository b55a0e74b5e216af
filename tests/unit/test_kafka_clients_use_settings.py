"""Every Kafka client gets SASL/TLS from KafkaSettings: nothing outside infra/kafka builds a raw confluent-kafka client.

A module that imported ``confluent_kafka.Producer`` itself would connect without the credentials in
``AGENTAUDIT_KAFKA_*`` (and, under ACLs, fail or need the listener reopened). The schema registry client
(HTTP, not Kafka) is the one allowed import.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agentaudit", "benchmarks", "consumers", "dashboard", "infra", "producers", "schemas")
ALLOWED = {"confluent_kafka.schema_registry"}


def _raw_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names
                  if n.split(".")[0] == "confluent_kafka" and n not in ALLOWED]
    return found


def test_only_infra_kafka_imports_confluent_kafka() -> None:
    offenders = [hit for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
                 if "infra/kafka" not in path.relative_to(ROOT).as_posix() for hit in _raw_imports(path)]
    assert offenders == [], "build Kafka clients with agentaudit.infra.kafka (KafkaSettings carries SASL/TLS): " + \
        "; ".join(offenders)


def test_the_wrappers_build_their_config_from_the_settings() -> None:
    for module in ("producer.py", "consumer.py", "admin.py"):
        source = (ROOT / "infra" / "kafka" / module).read_text()
        assert "build_config(settings" in source, module
