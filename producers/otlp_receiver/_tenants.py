"""One SDK client per tenant, made when its first sender arrives: the receiver's events go through the SDK
path (sealed, chained, redacted, digested, spooled) exactly as an agent's own would."""

from __future__ import annotations

import hashlib
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agentaudit.producers.client import AuditClient
from agentaudit.producers.settings import SdkSettings, default_spool_dir
from agentaudit.settings import KafkaSettings

__all__ = ["TenantClients"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class TenantClients:
    """``clients.get(tenant)``: that tenant's :class:`AuditClient`, each spooling under its own directory (a
    spool left by one tenant is never adopted by another's client after a restart)."""

    def __init__(self, kafka: KafkaSettings, sdk: SdkSettings, *, agent: str, spool_root: Path | None = None,
                 topic: str | None = None) -> None:
        self.kafka, self.sdk, self.agent, self.topic = kafka, sdk, agent, topic
        self.spool_root = spool_root or sdk.spool_dir or default_spool_dir()
        self._clients: dict[str, AuditClient] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str) -> AuditClient:
        client = self._clients.get(tenant)
        if client is None:
            with self._lock:
                client = self._clients.get(tenant)
                if client is None:
                    safe = _UNSAFE.sub("_", tenant)[:40]
                    folder = f"otlp-{safe}-{hashlib.sha256(tenant.encode()).hexdigest()[:12]}"
                    client = AuditClient(kafka=self.kafka, settings=self.sdk, tenant=tenant, agent=self.agent,
                                         topic=self.topic, spool_dir=Path(self.spool_root) / folder)
                    self._clients[tenant] = client
        return client

    def flush(self, timeout: float = 10.0) -> bool:
        return all(c.flush(timeout) for c in list(self._clients.values()))

    def close(self, timeout: float = 10.0) -> None:
        """Close every tenant's client at once: with the broker away each takes its whole ``timeout``."""
        clients = list(self._clients.values())
        if clients:
            with ThreadPoolExecutor(min(len(clients), 32), thread_name_prefix="agentaudit-otlp-close") as pool:
                list(pool.map(lambda c: c.close(timeout), clients))
        self._clients.clear()
