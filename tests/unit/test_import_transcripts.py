"""OpenAI-style transcripts become the action events a live SDK-instrumented loop records; bad lines are
rejected with their file, line and field, and the rest are imported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentaudit.cli import app
from agentaudit.producers.importers import ImportInputError, ImportReport, import_transcripts, parse_run
from agentaudit.schemas import verify_streams
from tests.import_support import iso, send_transcript_live, transcript_runs
from tests.sdk_support import offline_client, records_of, spooled

BASE_US = 1_772_355_600_000_000  # 2026-03-01T09:00:00Z
_VOLATILE = ("event_id", "stream_id", "seq", "prev_hash", "action_id", "trace_id", "parent_action_id", "links")


def _comparable(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Records without the random ids, in (time, kind, phase, name) order, ids replaced by positions."""
    order = {r["action_id"]: i for i, r in enumerate(sorted(
        {r["action_id"]: r for r in records}.values(), key=lambda r: (r["start_time_us"] or r["event_time_us"],
                                                                        r["kind"], r["name"])))}
    rows = []
    for r in records:
        rest = tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in r.items() if k not in _VOLATILE))
        rows.append((r["event_time_us"], r["kind"], r["phase"], r["name"], order[r["action_id"]],
                     order.get(r["parent_action_id"]), order[r["trace_id"]],
                     tuple(order[x] for x in r["links"]), rest))
    return sorted(rows)


def _write(path: Path, runs: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in runs))
    return path


def test_an_imported_transcript_is_what_the_live_sdk_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTAUDIT_DIGEST_KEY", "one key for the live agent and the importer")
    runs = transcript_runs(BASE_US, runs=4)
    live = offline_client(tmp_path / "live")
    for run in runs:
        send_transcript_live(live, run)
    live.close(timeout=0.5)
    imported = offline_client(tmp_path / "imported")
    report = import_transcripts([_write(tmp_path / "runs.jsonl", runs)], lambda tenant: imported, ImportReport())
    imported.close(timeout=0.5)
    assert (report.runs, report.files, report.rejected) == (4, 1, [])
    got, want = records_of(tmp_path / "imported"), records_of(tmp_path / "live")
    assert report.events == len(got) == len(want) == 4 * 11 + 2 * 2  # 11 per run; two runs call a second tool
    assert verify_streams(spooled(tmp_path / "imported")) == []
    assert _comparable(got) == _comparable(want)

    # the shape: one root per run, everything else its child, tools linked to the chat turn that asked
    roots = [r for r in got if r["kind"] == "invoke_agent" and r["phase"] == "start"]
    assert [r["run_id"] for r in roots] == [r["run_id"] for r in runs]
    by_id = {r["action_id"]: r for r in got}
    for r in got:
        if r["kind"] != "invoke_agent":
            assert r["depth"] == 1 and r["parent_action_id"] == r["trace_id"]
            assert by_id[r["trace_id"]]["kind"] == "invoke_agent"
    tools = [r for r in got if r["kind"] == "execute_tool" and r["phase"] == "start"]
    assert all(by_id[r["links"][0]]["kind"] == "chat" for r in tools)
    refund = next(r for r in tools if r["name"] == "payments.refund")
    assert refund["attributes"]["args_hash"] == imported.args_hash({"order_id": 1002, "amount": 22})
    assert refund["event_time_us"] == BASE_US + 2 * 5 * 60_000_000 + 3_000_000  # when the lookup before it answered
    user = next(r for r in got if r["kind"] == "message" and r["attributes"].get("role") == "user")
    assert user["input_digest"] == imported.digest("Where is my order 1000?") and user["input_body"] is None
    failed = next(r for r in got if r["kind"] == "execute_tool" and r["phase"] == "end" and r["status"] == "error")
    assert failed["error_message"] == "upstream timeout"


def test_runs_without_times_follow_a_deterministic_clock(tmp_path: Path) -> None:
    untimed = [{"run_id": f"r{n}", "messages": [{"role": "user", "content": "hi"},
                                               {"role": "assistant", "content": "hello"}]} for n in range(2)]
    path = _write(tmp_path / "untimed.jsonl", untimed)
    times = []
    for attempt in range(2):
        audit = offline_client(tmp_path / str(attempt))
        report = import_transcripts([path], lambda tenant: audit, ImportReport(), start_us=BASE_US, step_us=500_000)  # noqa: B023 - import_transcripts calls it within this iteration
        audit.close(timeout=0.5)
        assert report.runs == 2 and not report.rejected
        times.append([(r["run_id"], r["kind"], r["phase"], r["event_time_us"]) for r in records_of(tmp_path / str(attempt))])
    assert times[0] == times[1]
    second = BASE_US + 1_000_000 + 60_000_000  # the first run's last message, then the gap between runs
    assert ("r0", "message", "point", BASE_US + 500_000) in times[0]
    assert ("r1", "invoke_agent", "start", second) in times[0]
    assert ("r1", "chat", "end", second + 1_000_000) in times[0]


BAD_LINES: list[tuple[Any, str, str]] = [
    ("{not json", "(line)", "not JSON"),
    ({"messages": []}, "messages", "non-empty list"),
    ({"messages": [{"role": "robot"}]}, "messages[0].role", "expected one of"),
    ({"messages": [{"role": "user", "timestamp": "2026-03-01T09:00:00"}]}, "messages[0].timestamp", "no time zone"),
    ({"messages": [{"role": "user", "timestamp": 1_772_355_600_000}]}, "messages[0].timestamp", "outside 2001..2100"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "x", "arguments": "{oops"}}]}],
      "started_at": "2026-03-01T09:00:00Z"}, "messages[0].tool_calls[0].function.arguments", "not a JSON document"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c1", "function": {"arguments": "{}"}}]}]},
     "messages[0].tool_calls[0].function.name", "non-empty string"),
    ({"messages": [{"role": "tool", "tool_call_id": "c9", "content": "?"}]}, "messages[0].tool_call_id",
     "answers no earlier tool call"),
    ({"messages": [{"role": "user", "timestamp": "2026-03-01T09:00:05Z"},
                   {"role": "user", "timestamp": "2026-03-01T09:00:01Z"}]}, "messages[1].timestamp", "goes back"),
    ({"messages": [{"role": "user", "content": "no times"}]}, "messages[0].timestamp", "pass --start"),
    ({"messages": [{"role": "assistant", "usage": {"prompt_tokens": -1}}], "started_at": "2026-03-01T09:00:00Z"},
     "messages[0].usage.prompt_tokens", "token count"),
]


@pytest.mark.parametrize(("line", "field", "reason"), BAD_LINES, ids=[b[1] + ":" + b[2] for b in BAD_LINES])
def test_a_bad_line_names_its_file_line_and_field(tmp_path: Path, line: Any, field: str, reason: str) -> None:
    good = {"run_id": "good", "started_at": iso(BASE_US), "messages": [{"role": "user", "content": "hi"}]}
    path = _write(tmp_path / "mixed.jsonl", [good, line, good])
    audit = offline_client(tmp_path / "spool")
    report = import_transcripts([path], lambda tenant: audit, ImportReport())
    audit.close(timeout=0.5)
    assert report.runs == 2 and len(report.rejected) == 1  # the bad line is rejected, the others imported
    error = report.rejected[0]
    assert (error.path, error.line, error.field) == (str(path), 2, field)
    assert reason in error.reason and str(error).startswith(f"{path}:2: {field}: ")
    assert {r["run_id"] for r in records_of(tmp_path / "spool")} == {"good"}  # nothing of the bad run was sent


def test_parse_run_raises_the_error_for_a_single_record() -> None:
    with pytest.raises(ImportInputError, match=r"f.jsonl:7: messages\[0\].role: expected one of"):
        parse_run({"messages": [{"role": 3}]}, path="f.jsonl", line=7)


def test_the_cli_prints_counts_and_reasons_and_keeps_bad_lines_in_the_dead_letter_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", ["{not json", {"messages": []}, {"messages": []}])
    runner = CliRunner()
    result = runner.invoke(app, ["import", "transcripts", str(path), "--bootstrap", "127.0.0.1:1"])
    assert result.exit_code == 1, result.output  # lines were rejected and kept nowhere
    assert "imported 0 run(s), 0 event(s) from 1 file(s); rejected 3:" in result.output
    assert "2 x messages: expected a non-empty list of messages" in result.output
    assert f"rejected {path}:1: (line): not JSON" in result.output
    dead = tmp_path / "dead.jsonl"
    result = runner.invoke(app, ["import", "transcripts", str(path), "--bootstrap", "127.0.0.1:1",
                                 "--dead-letter", str(dead)])
    assert result.exit_code == 0, result.output
    kept = [json.loads(x) for x in dead.read_text().splitlines()]
    assert [(k["line"], k["field"]) for k in kept] == [(1, "(line)"), (2, "messages"), (3, "messages")]
    assert kept[0]["record"] == "{not json"
    bad_start = runner.invoke(app, ["import", "transcripts", str(path), "--start", "yesterday"])
    assert bad_start.exit_code == 2 and "--start: 'yesterday' is not an ISO 8601 time" in bad_start.output
