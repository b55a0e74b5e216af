"""``agentaudit status``: the health of every component at a glance."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agentaudit.settings import KafkaSettings, StoreSettings

__all__ = ["Check", "check_all"]


@dataclass(frozen=True, slots=True)
class Check:
    """One component's health: ``ok`` with a detail, or not ok with the reason."""

    component: str
    target: str
    ok: bool
    detail: str
    millis: float


def _timed(component: str, target: str, probe: Callable[[], str]) -> Check:
    began = time.perf_counter()
    try:
        detail, ok = probe(), True
    except Exception as exc:  # noqa: BLE001 - a status page reports failures, it does not raise them
        detail, ok = f"{type(exc).__name__}: {exc}".splitlines()[0][:200], False
    return Check(component, target, ok, detail, (time.perf_counter() - began) * 1000)


def _http(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - our own loopback URLs
        return f"HTTP {response.status}"


def check_all(kafka: KafkaSettings, store: StoreSettings, *, dashboard_url: str | None = None,
              metrics_url: str | None = None) -> list[Check]:
    """Probe the broker, the store, and (when known) the consumer's metrics and the dashboard."""
    from agentaudit.infra.clickhouse import connect
    from agentaudit.infra.kafka import KafkaAdmin

    def broker() -> str:
        topics = KafkaAdmin(kafka).list_topics(timeout=3)
        ours = sorted(t for t in topics if t.startswith("agentaudit."))
        return f"{len(topics)} topics ({', '.join(ours) or 'none of ours yet'})"

    def clickhouse() -> str:
        with connect(store) as client:
            rows = client.query(
                "SELECT name, total_rows FROM system.tables WHERE database = {db:String} "
                "AND name IN ('actions', 'incidents') ORDER BY name",
                parameters={"db": store.database},
            ).rows
        return ", ".join(f"{name}: {count or 0} rows" for name, count in rows) or "reachable, not migrated"

    checks = [_timed("broker", kafka.bootstrap_servers, broker),
              _timed("store", store.redacted_url(), clickhouse)]
    if metrics_url:
        checks.append(_timed("consumer", metrics_url, lambda: _http(metrics_url)))
    if dashboard_url:
        checks.append(_timed("dashboard", dashboard_url, lambda: _http(dashboard_url)))
    return checks


def stack_urls(home: Path) -> dict[str, str]:
    """URLs a running ``agentaudit up`` recorded under ``home``, if any."""
    from agentaudit.infra.stack import read_state

    state = read_state(home) or {}
    return dict(state.get("urls", {}))
