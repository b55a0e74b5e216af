"""Prometheus metrics of one store server, in its own registry (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["StoreMetrics"]


class StoreMetrics:
    """Requests by kind, errors by ClickHouse code, latency, bytes in/out and rows inserted."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("agentaudit_store_requests", "HTTP requests by kind (query, insert, command, ping)",
                                ["kind"], registry=self.registry)
        self.errors = Counter("agentaudit_store_errors", "Failed requests by ClickHouse exception code",
                              ["code"], registry=self.registry)
        self.latency = Histogram("agentaudit_store_query_seconds", "Time to run a request, lock wait included",
                                 ["kind"], registry=self.registry,
                                 buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30))
        self.bytes_in = Counter("agentaudit_store_request_bytes", "Request body bytes received (as sent, compressed)",
                                registry=self.registry)
        self.bytes_out = Counter("agentaudit_store_response_bytes", "Response body bytes sent (before compression)",
                                 registry=self.registry)
        self.rows_inserted = Counter("agentaudit_store_inserted_rows", "Rows written by INSERT requests",
                                     registry=self.registry)
