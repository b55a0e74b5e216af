"""Grafana's side of infra/grafana, done by hand: load the dashboard and expand its SQL as Grafana would.

The expansions follow the grafana-clickhouse-datasource plugin (v4, pkg/macros): ``$__timeFilter(c)`` is
``c >= toDateTime(from) AND c <= toDateTime(to)`` in whole seconds, ``$__timeInterval(c)`` is
``toStartOfInterval(toDateTime(c), INTERVAL n second)``, ``$__interval_s`` is ``n``, ``$__dateFilter(c)`` compares
``toDate('YYYY-MM-DD')``. A multi-value variable with ``:singlequote`` becomes ``'a','b'`` with each ``'``
escaped as ``\\'`` (Grafana's formatter).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GRAFANA = ROOT / "infra" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "agentaudit.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "clickhouse.yaml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "agentaudit.yaml"


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str, int]]:
    """``(panel title, rawSql, format)`` for every target of every panel."""
    return [(panel["title"], target["rawSql"], target.get("format", 1))
            for panel in board["panels"] for target in panel["targets"]]


def singlequote(values: list[str]) -> str:
    return ",".join("'" + value.replace("'", "\\'") + "'" for value in values)


def expand(sql: str, *, start: datetime, end: datetime, interval_s: int, variables: dict[str, list[str]]) -> str:
    """The SQL Grafana would send for a time range, interval and variable values."""
    def seconds(moment: datetime) -> str:
        return f"toDateTime({int(moment.timestamp())})"

    def day(moment: datetime) -> str:
        return f"toDate('{moment.astimezone(UTC):%Y-%m-%d}')"

    sql = re.sub(r"\$__timeFilter\(([^)]+)\)",
                 lambda m: f"{m[1]} >= {seconds(start)} AND {m[1]} <= {seconds(end)}", sql)
    sql = re.sub(r"\$__dateFilter\(([^)]+)\)", lambda m: f"{m[1]} >= {day(start)} AND {m[1]} <= {day(end)}", sql)
    sql = re.sub(r"\$__timeInterval\(([^)]+)\)",
                 lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {max(interval_s, 1)} second)", sql)
    sql = sql.replace("$__interval_s", str(max(interval_s, 1)))
    sql = sql.replace("$__fromTime", seconds(start)).replace("$__toTime", seconds(end))
    for name, values in variables.items():
        sql = sql.replace("${" + name + ":singlequote}", singlequote(values))
    leftover = re.findall(r"\$\{?__?\w+", sql)
    assert not leftover, f"unexpanded Grafana macros or variables: {leftover}"
    return sql
