"""``agentaudit otlp`` end to end (real tansu broker, real sink, real chDB store): an agent run of GenAI spans
sent by each language's stock OpenTelemetry SDK and OTLP/HTTP exporter (Python: protobuf with gzip; Node:
JSON) arrives as actions with the span tree as the causal tree, in the tenant of the sender's token, and the
rules raise the forbidden-tool incident."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentaudit.settings import KafkaSettings, StoreSettings
from tests.otlp_support import (
    RUN_EVENTS,
    TOKENS,
    assert_run_stored,
    node_modules,
    receiver,
    send_node_run,
    send_python_run,
    store_and_judge,
)

pytestmark = [pytest.mark.integration, pytest.mark.broker]


@pytest.mark.parametrize("sender", ["python", "node"])
def test_an_agent_run_from_a_stock_exporter_is_stored_as_its_causal_tree_and_judged(
        sender: str, kafka_settings_factory: Callable[..., KafkaSettings],
        store_settings_factory: Callable[[], StoreSettings], store_factory: Callable[..., Any],
        group_factory: Callable[..., str], tmp_path: Path) -> None:
    modules = None
    if sender == "node":
        modules = node_modules()
        if modules is None:
            pytest.skip("node/npm missing or the npm registry unreachable: cannot install @opentelemetry/"
                        "sdk-trace-node and @opentelemetry/exporter-trace-otlp-http into .ci/cache/otlp-node")
    kafka = kafka_settings_factory(partitions=1)
    with receiver(tmp_path, kafka) as otlp:
        if sender == "python":
            trace_id = send_python_run(otlp.url, TOKENS["acme"])
        else:
            trace_id = send_node_run(otlp.url, TOKENS["acme"], modules)  # type: ignore[arg-type]  # a str once the skip above passed
        assert otlp.clients.flush(30)
        stats = otlp.clients.get("acme").stats()
    assert stats["delivered"] == RUN_EVENTS, stats
    store = store_settings_factory()
    client = store_factory(store)
    store_and_judge(kafka, store, client, group_factory(), RUN_EVENTS)
    assert_run_stored(client, trace_id, "acme")
