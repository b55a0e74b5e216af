"""How agentaudit runs: the Kafka and ClickHouse wrappers and the embedded stack."""

# One import path: this folder is the package agentaudit.infra (setup.py maps it); importing it as
# `infra` from the repository root would load every module twice, with two of each class.
if __name__ != "agentaudit.infra":
    raise ImportError(f"import agentaudit.infra, not {__name__}: the infra/ folder is the agentaudit.infra package")

from agentaudit.infra.exceptions import InfraError, KafkaError, ProcessStartError, StoreError

__all__ = ["InfraError", "KafkaError", "ProcessStartError", "StoreError"]
