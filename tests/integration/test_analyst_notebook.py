"""The notebook path of docs/analysts.md, run as written: clickhouse_connect -> pandas frames over the views.

The store is filled the way production fills it: the SDK emits to the real broker, the real sink decodes,
judges with the default pack and inserts; the documented block then reads ``incident_current`` and
``cost_daily`` with a read-only session. Only host, port and database are substituted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest

from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.producers import AuditClient
from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.sink_support import drain

pytestmark = [pytest.mark.integration]

DOC = Path(__file__).resolve().parents[2] / "docs" / "analysts.md"


def notebook_snippet() -> str:
    match = re.search(r"<!-- notebook-snippet -->\n```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert match, "docs/analysts.md lost its <!-- notebook-snippet --> block"
    return match.group(1)


def _point_at(snippet: str, store: StoreSettings) -> str:
    url = urlsplit(store.clickhouse_url)
    replaced, count = re.subn(r'host="[^"]*", port=\d+, database="[^"]*"',
                              f'host="{url.hostname}", port={url.port}, database="{store.database}"', snippet)
    assert count == 1, "the snippet's get_client(host=..., port=..., database=...) call changed shape"
    return replaced


def _emit(kafka: KafkaSettings, spool: Path) -> int:
    """Two tenants' agents: model calls with cost, a failing tool, and one forbidden tool call."""
    sent = 0
    for tenant, agent, calls in (("acme", "support-bot", 6), ("globex", "billing-bot", 3)):
        with AuditClient(kafka=kafka, tenant=tenant, agent=agent, spool_dir=spool / tenant) as audit:
            for i in range(calls):
                with audit.action("chat", name="gpt-4o") as call:
                    call.set_cost(input_tokens=800 + i, output_tokens=90, cost_usd=0.003, model="gpt-4o")
            with pytest.raises(TimeoutError), audit.action("execute_tool", name="crm.lookup", input={"id": 7}):
                raise TimeoutError("crm did not answer")
            if tenant == "acme":
                with audit.action("execute_tool", name="shell.exec", input={"cmd": "rm -rf /tmp/x"}):
                    pass
            assert audit.flush(30), audit.stats()
            sent += audit.stats()["delivered"]
    return sent


def test_the_documented_notebook_block_reads_sink_written_rows_into_pandas(
        kafka_settings_factory: Callable[..., KafkaSettings], store_settings_factory: Callable[[], StoreSettings],
        group_factory: Callable[..., str], tmp_path: Path) -> None:
    kafka, store = kafka_settings_factory(partitions=1), store_settings_factory()
    migrate(store)
    delivered = _emit(kafka, tmp_path)
    settings = SinkSettings(group=group_factory(), session_timeout_ms=6000, heartbeat_interval_ms=1000,
                            batch_timeout_ms=300)
    with Sink(kafka, store, settings, RuleEvaluator(load_rule_set(), lateness_us=0)) as sink:
        drain(sink, delivered, timeout=60)

    namespace: dict[str, object] = {}
    exec(compile(_point_at(notebook_snippet(), store), str(DOC), "exec"), namespace)  # noqa: S102 - the doc's own block

    incidents, cost = namespace["incidents"], namespace["cost"]
    assert isinstance(incidents, pd.DataFrame) and isinstance(cost, pd.DataFrame)
    forbidden = incidents[incidents["rule_id"] == "security.forbidden-tool"]
    assert list(forbidden["agent_id"]) == ["support-bot"] and set(forbidden["status"]) == {"open"}
    assert pd.api.types.is_datetime64_any_dtype(incidents["first_seen"])
    spend = namespace["spend"]
    assert spend.loc[("acme", "support-bot")] == pytest.approx(6 * 0.003)
    assert spend.loc[("globex", "billing-bot")] == pytest.approx(3 * 0.003)
    errors = cost.groupby("tenant")["errors"].sum()
    assert errors["acme"] == 1 and errors["globex"] == 1  # the timed-out crm.lookup of each agent
    assert namespace["by_severity"].sum() == len(incidents)
    print(f"\n[notebook] {delivered} events via SDK+sink; incidents frame {incidents.shape}, cost frame {cost.shape}, "
          f"rules {sorted(set(incidents['rule_id']))}")
