"""Replay of a Kafka offset range from the recorded actions table of a real store."""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest
from typer.testing import CliRunner

from agentaudit.cli import app
from agentaudit.consumers._columns import actions_table
from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.replay import parse_range, read_actions, replay_range
from agentaudit.rules import DEFAULT_PACK
from agentaudit.rules.exceptions import RuleError
from tests.synthetic_fleet import fleet_records

pytestmark = pytest.mark.integration

LOOP = "autonomy.repeated-call"  # default pack: the same tool and input in one trace, counted per 10 minutes
CALLS = 40


def loop_calls(base_us: int) -> list[dict]:
    """CALLS identical tool calls in one trace, 1 s apart, alternating partitions 0 and 1 (offsets 100, 101, ...)."""
    template = next(r for r in fleet_records(200, agents=2, seed=5, base_us=base_us)
                    if r["kind"] == "execute_tool" and r["input_digest"])
    trace, stream = str(uuid.UUID(int=7)), "tenant-0/agent-loop"
    return [{**template, "event_id": str(uuid.UUID(int=1000 + i)), "action_id": str(uuid.UUID(int=5000 + i)),
             "trace_id": trace, "stream_id": stream, "seq": i, "prev_hash": "", "event_hash": "",
             "name": "loop.tool", "input_digest": "same-input", "event_time_us": base_us + i * 1_000_000,
             "start_time_us": base_us + i * 1_000_000, "_partition": i % 2, "_offset": 100 + i // 2}
            for i in range(CALLS)]


@pytest.fixture
def recorded(store_settings_factory, store_factory):
    settings = store_settings_factory()
    migrate(settings)
    store = store_factory(settings)
    hour = 3_600_000_000
    calls = loop_calls((time.time_ns() // 1000 // hour - 24) * hour)  # inside retention, at a window start
    store.insert_arrow("actions", actions_table(calls))
    return settings, store, calls


def loop_count(incidents) -> int:
    loops = [i for i in incidents if i.rule_id == LOOP]
    assert len(loops) == 1, loops
    return loops[0].count


def digest(incidents) -> str:
    return hashlib.sha256("\n".join(i.model_dump_json() for i in incidents).encode()).hexdigest()


def test_an_offset_range_judges_exactly_the_events_inside_it(recorded) -> None:
    _, store, calls = recorded
    bounds = parse_range("0:105,1:110", "0:115")  # partition 1 has no end
    inside = [c for c in calls if (c["_partition"] == 0 and 105 <= c["_offset"] < 115)
              or (c["_partition"] == 1 and c["_offset"] >= 110)]
    assert 0 < len(inside) < CALLS
    read = [r for batch in read_actions(store, batch_size=7, **bounds) for r in batch]
    assert sorted(r["event_id"] for r in read) == sorted(c["event_id"] for c in inside)
    first = replay_range(store, None, **bounds)
    assert loop_count(first) == len(inside)
    assert digest(replay_range(store, None, **bounds)) == digest(first)  # same range, same rules: same bytes
    # all:OFFSET bounds every partition; offsets and times combine
    assert loop_count(replay_range(store, None, **parse_range("all:110", None))) == CALLS - 2 * 10
    t10 = calls[10]["event_time_us"]
    both = parse_range("all:103", str(t10 + 20_000_000))  # offsets 103.. and the first 30 calls
    assert loop_count(replay_range(store, None, **both)) == 30 - 6


def test_a_redelivered_event_counts_at_the_copy_the_table_keeps(recorded) -> None:
    _, store, calls = recorded
    bounds = parse_range("0:105,1:110", "0:115")
    before = loop_count(replay_range(store, None, **bounds))
    moved = [{**calls[20], "_offset": 900}]  # partition 0, offset 110 (inside) stored again later at 900 (outside)
    assert calls[20]["_partition"] == 0 and calls[20]["_offset"] == 110
    store.insert_arrow("actions", actions_table(moved))
    after = replay_range(store, None, **bounds)
    assert loop_count(after) == before  # the table keeps the first-seen copy (issue 12): still at offset 110
    store.command("OPTIMIZE TABLE actions FINAL")  # merged or not: the same answer
    assert digest(replay_range(store, None, **bounds)) == digest(after)


def test_cli_replay_and_diff_take_offsets(recorded) -> None:
    settings, store, _ = recorded
    env = {"AGENTAUDIT_CLICKHOUSE_URL": settings.clickhouse_url, "AGENTAUDIT_DATABASE": settings.database}
    target = settings.database + "_offsets"
    result = CliRunner().invoke(app, ["replay", "--rules", str(DEFAULT_PACK), "--from", "0:105,1:110",
                                      "--to", "0:115", "--into", target], env=env)
    assert result.exit_code == 0, result.output
    rows = store.query(f"SELECT count FROM {target}.incidents FINAL WHERE rule_id = {{r:String}}", {"r": LOOP}).rows
    assert rows == [(20,)]
    shown = CliRunner().invoke(app, ["rules", "diff", str(DEFAULT_PACK), str(DEFAULT_PACK), "--from", "all:110"],
                               env=env)
    assert shown.exit_code == 0, shown.output
    assert "0 appear, 0 vanish" in shown.output
    bad = CliRunner().invoke(app, ["rules", "diff", str(DEFAULT_PACK), str(DEFAULT_PACK), "--to", "0:5,1:x"],
                             env=env)
    assert bad.exit_code == 1
    assert "--to: bad token '1:x'" in bad.output and "all:OFFSET" in bad.output


def test_a_partition_never_recorded_is_refused_by_name(recorded) -> None:
    """``12:30`` meant as a time reads as partition 12, offset 30: refused, not a silent replay of the rest."""
    settings, store, _ = recorded
    with pytest.raises(RuleError, match=r"partition\(s\) 12 of the offset range have no recorded actions "
                                        r"\(recorded: 0, 1\)"):
        replay_range(store, DEFAULT_PACK, **parse_range("12:30", None))
    env = {"AGENTAUDIT_CLICKHOUSE_URL": settings.clickhouse_url, "AGENTAUDIT_DATABASE": settings.database}
    refused = CliRunner().invoke(app, ["replay", "--rules", str(DEFAULT_PACK), "--from", "12:30",
                                       "--into", settings.database + "_refused"], env=env)
    assert refused.exit_code == 1
    assert "ISO 8601 with the date" in refused.output
