"""Every ```sql example of docs/analysts.md runs against a real store with seeded data, so the docs never rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentaudit.infra.clickhouse import connect
from tests.dashboard_support import HOUR_US, NOW_US, seeded_database

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "analysts.md"
EXAMPLES = re.findall(r"^### (\d+)\. (.+?)\n.*?```sql\n(.*?)```", DOC.read_text(), re.DOTALL | re.MULTILINE)


@pytest.fixture(scope="module")
def reader(store_server):
    settings, _ = seeded_database(store_server.url)
    with connect(settings, readonly=True) as store:
        yield store


def owners_this_week(reader) -> set[str]:
    """Owners that must have seeded cost since Monday: payments' last trace starts now, support's 2 hours ago, so on a
    Monday before 02:00 (the store's time zone) support's cost belongs to last week."""
    monday = reader.query("SELECT toMonday(today())").rows[0][0]
    support_day = reader.query(f"SELECT toDate(fromUnixTimestamp64Micro({NOW_US - 2 * HOUR_US}))").rows[0][0]
    return {"team-payments"} | ({"team-support"} if support_day >= monday else set())


def test_the_document_has_at_least_ten_examples():
    assert len(EXAMPLES) >= 10
    assert len(re.findall(r"^```sql$", DOC.read_text(), re.MULTILINE)) == len(EXAMPLES)  # every block is tested


@pytest.mark.parametrize("number, title, sql", EXAMPLES, ids=[f"{n}-{t[:40]}" for n, t, _ in EXAMPLES])
def test_example_runs(reader, number, title, sql):
    result = reader.query(sql)
    rows = result.named_rows()
    checks = {
        "1": lambda: [r["incident_id"] for r in rows][:1] == ["inc-critical-open"] and len(rows) == 4,
        "2": lambda: {r["owner"] for r in rows} >= owners_this_week(reader) and all(r["cost_usd"] > 0 for r in rows),
        "4": lambda: "shell.exec" in {r["tool"] for r in rows} and all(0 < r["failure_rate"] <= 1 for r in rows),
        "5": lambda: {(r["rule_id"], r["rule_revision"]) for r in rows} >= {("cost.spend-spike", "rev-0ld"),
                                                                            ("cost.spend-spike", "rev-a1b2c3")},
        "6": lambda: {r["team"]: r["mean_tta_minutes"] for r in rows}["team-support"] == 10.0,
        "7": lambda: rows[0]["trace_id"] == "tr-pay-1" and rows[0]["actions"] == 60,
        "8": lambda: rows[0]["depth"] == 0 and rows[-1]["name"] == "shell.exec"
        and [r["depth"] for r in rows] == list(range(len(rows))),
        "10": lambda: [r["agent_id"] for r in rows] == ["shadow-bot"],
        "11": lambda: {(r["actor_id"], r["type"]) for r in rows} >= {("bob", "reopened"), ("alice", "resolved")},
        "12": lambda: [r["incident_id"] for r in rows] == ["inc-high-reopened"],
        "13": lambda: {r["rule_id"] for r in rows} == {"security.forbidden-tool", "security.unapproved-consequential-action"},
    }
    assert rows, f"example {number} ({title}) returned no rows on the seeded store"
    if number in checks:
        assert checks[number](), (number, title, rows[:5])
