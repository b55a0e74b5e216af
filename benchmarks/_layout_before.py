"""The ``actions`` table as main created it before issue 15 (hex hashes, the full-copy ``by_trace``), for the
storage and dashboard benchmarks to measure beside the current layout in one run.

It is the first statement of ``tests/fixtures/layout_v1/tables.sql``, the frozen DDL the upgrade test migrates,
without its TTL: the simulator's events are dated at the start of 2026, and a benchmark keeps what it stores.
"""

from __future__ import annotations

import re
from pathlib import Path

from agentaudit.consumers.migrate import render, split_statements
from agentaudit.settings import StoreSettings

_V1 = Path(__file__).parents[1] / "tests" / "fixtures" / "layout_v1" / "tables.sql"


def actions_before_ddl(settings: StoreSettings, table: str) -> str:
    """``CREATE TABLE`` of main's actions layout, named ``table`` in the settings' database."""
    create = split_statements(render(_V1.read_text(encoding="utf-8"), settings))[0]
    create = re.sub(r"\nTTL [^\n]*", "", create, count=1)
    return create.replace(f"{settings.database}.actions\n", f"{settings.database}.{table}\n", 1)
