"""How agentaudit runs: the Kafka and ClickHouse wrappers and the embedded stack."""

from agentaudit.infra.exceptions import InfraError, KafkaError, ProcessStartError, StoreError

__all__ = ["InfraError", "KafkaError", "ProcessStartError", "StoreError"]
