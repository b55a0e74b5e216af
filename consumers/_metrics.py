"""The sink's Prometheus metrics, in a registry of their own (no hidden global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["SinkMetrics"]

_BATCH_BUCKETS = (1, 10, 100, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000)
_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class SinkMetrics:
    """Counters and histograms the sink updates once per batch."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events_in = Counter("agentaudit_sink_events_in", "Messages consumed", registry=r)
        self.events_out = Counter("agentaudit_sink_events_out", "Action events inserted into the store", registry=r)
        self.dlq = Counter("agentaudit_sink_dlq", "Messages sent to the dead-letter topic", ["reason"], registry=r)
        self.dlq_cut = Counter("agentaudit_sink_dlq_cut", "Dead letters whose key or value was cut to fit the "
                               "broker's limit (original size and SHA-256 in headers)", registry=r)
        self.quarantined = Counter("agentaudit_sink_quarantined", "Dead letters the broker refused after every try, "
                                   "written to the local quarantine file instead", ["reason"], registry=r)
        self.incidents = Counter("agentaudit_sink_incidents", "Incidents written", ["rule_id"], registry=r)
        self.lifecycle = Counter("agentaudit_sink_lifecycle_events", "Incident lifecycle events stored", registry=r)
        self.retries = Counter("agentaudit_sink_retries", "Batches retried after a store or broker failure", registry=r)
        self.batch_size = Histogram("agentaudit_sink_batch_size", "Messages per batch", buckets=_BATCH_BUCKETS, registry=r)
        self.latency = Histogram("agentaudit_sink_latency_seconds", "Time to process one batch", buckets=_SECONDS, registry=r)
        self.rule_eval = Histogram("agentaudit_sink_rule_eval_seconds", "Evaluator time per batch", buckets=_SECONDS, registry=r)
        self.committed = Gauge("agentaudit_sink_committed_offset", "Next offset committed", ["topic", "partition"], registry=r)
        self.lag = Gauge("agentaudit_sink_lag", "Messages not yet committed: high watermark (cached from the last "
                         "fetch) minus committed offset. On the embedded tansu broker the high watermark is wrong "
                         "(last batch base offset + 1), so there this can under-count by up to one producer batch",
                         ["topic", "partition"], registry=r)

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` over HTTP on ``port`` (a daemon thread)."""
        start_http_server(port, addr=addr, registry=self.registry)
