"""Deterministic replay from the recorded actions table of a real store."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentaudit.cli import app
from agentaudit.consumers._columns import actions_table
from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.replay import diff_incidents, read_actions, replay_range
from agentaudit.rules import DEFAULT_PACK, RuleEvaluator, load_rule_set
from agentaudit.rules.harness import replay
from tests.synthetic_fleet import fleet_records

pytestmark = pytest.mark.integration


def digest(incidents) -> str:
    return hashlib.sha256("\n".join(sorted(i.model_dump_json() for i in incidents)).encode()).hexdigest()


@pytest.fixture
def recorded(store_settings_factory, store_factory):
    settings = store_settings_factory()
    migrate(settings)
    store = store_factory(settings)
    hour = 3_600_000_000
    recent = (time.time_ns() // 1000 // hour - 24) * hour  # inside the table's retention
    records = fleet_records(3000, agents=10, seed=11, base_us=recent)
    store.insert_arrow("actions", actions_table(records))
    store.insert_arrow("actions", actions_table(records[:500]))  # a redelivered batch: deduplicated on read
    return settings, store, records


def test_replay_from_the_store_matches_live_evaluation(recorded) -> None:
    _, store, records = recorded
    assert sum(len(b) for b in read_actions(store, batch_size=700)) == len(records)
    live = replay(RuleEvaluator(load_rule_set(None)), records, batch_size=500)
    first = replay_range(store, None)
    second = replay_range(store, None)
    assert live and digest(first) == digest(second) == digest(live)


def test_replay_of_a_time_range(recorded) -> None:
    _, store, records = recorded
    middle = records[len(records) // 2]["event_time_us"]
    part = replay_range(store, None, start_us=middle)
    expected = replay(RuleEvaluator(load_rule_set(None)), [r for r in records if r["event_time_us"] >= middle])
    assert digest(part) == digest(expected)


def test_cli_replay_into_another_database_and_diff(recorded, tmp_path: Path) -> None:
    settings, store, _ = recorded
    env = {"AGENTAUDIT_CLICKHOUSE_URL": settings.clickhouse_url, "AGENTAUDIT_DATABASE": settings.database}
    target = settings.database + "_replay"
    result = CliRunner().invoke(app, ["replay", "--rules", str(DEFAULT_PACK), "--into", target], env=env)
    assert result.exit_code == 0, result.output
    expected = len(replay_range(store, None))
    assert f"{expected} incidents" in result.output
    count = store.query(f"SELECT count() FROM {target}.incidents FINAL").rows[0][0]
    assert count == expected
    # a longer forbidden-tools list: incidents appear; nothing vanishes
    stricter = tmp_path / "pack"
    stricter.mkdir()
    for path in DEFAULT_PACK.glob("*.yaml"):
        text = path.read_text()
        if path.name == "00_base.yaml":
            text = text.replace("items: [shell.exec,", "items: [search, shell.exec,")
        (stricter / path.name).write_text(text)
    old, new = replay_range(store, None), replay_range(store, [str(stricter)])
    appeared, vanished = diff_incidents(old, new)
    assert appeared and not vanished
    assert {i.rule_id for i in appeared} == {"security.forbidden-tool"}
    shown = CliRunner().invoke(app, ["rules", "diff", str(DEFAULT_PACK), str(stricter)], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"{len(appeared)} appear, 0 vanish" in shown.output
