"""Inline guard cost per action: 30 single-event rules judged before a tool runs (goal <= 20 us).

Every rule is pinned to tool calls, so all 30 run for each ``execute_tool`` start: the worst case.
Baseline: the same 30 checks hand-written as plain Python closures, the least a check in Python costs.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

from agentaudit.control.guard import Guard
from agentaudit.rules import load_rule_set
from agentaudit.schemas import ControlCommand, ControlState, ControlType

RULES = 30
ROUNDS = 5
N = 20_000
_SHAPES = [
    ('name in ("t{i}_a", "t{i}_b", "t{i}_c")', lambda i: lambda r: r["name"] in {f"t{i}_a", f"t{i}_b", f"t{i}_c"}),
    ('name startswith "danger{i}."', lambda i: lambda r: r["name"].startswith(f"danger{i}.")),
    ('attributes["target"] contains "prod-{i}"', lambda i: lambda r: f"prod-{i}" in r["attributes"].get("target", "")),
    ('depth > {d} and agent_id = "agent-{i}"', lambda i: lambda r: r["depth"] > 10 + i and r["agent_id"] == f"agent-{i}"),
    ('environment = "env{i}" and name != "search"', lambda i: lambda r: r["environment"] == f"env{i}" and r["name"] != "search"),
    ('input_body matches "rm -rf /{i}"', None),
]


def _rule_file(directory: Path) -> Path:
    lines = ["required_engine_version: 1", "rules:"]
    for i in range(RULES):
        shape = _SHAPES[i % len(_SHAPES)][0].format(i=i, d=10 + i)
        lines += [f"  - id: bench.guard-{i}", "    desc: guard benchmark rule",
                  f"    condition: 'kind = execute_tool and phase = start and {shape}'",
                  "    output: \"{agent_id} {name}\"", "    severity: medium",
                  f"    mode: {('detect', 'simulate', 'enforce')[i % 3]}", "    tags: [sandbox]"]
    path = directory / "guard_bench.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _record(name: str) -> dict:
    now = time.time_ns() // 1000
    return dict(event_id=str(uuid.uuid4()), tenant="acme", agent_id="agent-x", agent_version="1", run_id="r",
                trace_id="t", action_id="a", parent_action_id=None, links=[], depth=2, stream_id="s", seq=7,
                prev_hash="", kind="execute_tool", name=name, phase="start", status="unset", error_type=None,
                error_message=None, actor={"type": "agent", "id": "agent-x"}, model=None, input_tokens=0,
                output_tokens=0, cost_usd=0.0, latency_us=None, start_time_us=now, end_time_us=None,
                event_time_us=now, input_digest=None, output_digest=None, input_body='{"q": "weather"}',
                output_body=None, payload_bytes=0, attributes={"target": "staging"}, environment="prod")


def _per_call_us(fn, arg) -> float:  # type: ignore[no-untyped-def]  # any one-argument callable
    best = float("inf")
    for _ in range(ROUNDS):
        began = time.perf_counter()
        for _ in range(N):
            fn(arg)
        best = min(best, time.perf_counter() - began)
    return best / N * 1e6


def run() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        guard = Guard(load_rule_set(str(_rule_file(Path(tmp)))))
    assert len(guard.rules) == RULES
    plain, hit = _record("search"), _record("t0_a")
    assert guard.evaluate(plain) == [] and guard.evaluate(hit)
    checks = [make(i) for i in range(RULES) for shape, make in [_SHAPES[i % len(_SHAPES)]] if make is not None]

    def baseline(r: dict) -> list:
        out = []
        if r["kind"] == "execute_tool" and r["phase"] == "start":
            for check in checks:
                if check(r):
                    out.append(check)  # noqa: PERF401 - the baseline is the plain loop an app would write; a comprehension would time something else
        return out

    guard_us = _per_call_us(guard.evaluate, plain)
    hit_us = _per_call_us(guard.evaluate, hit)
    base_us = _per_call_us(baseline, plain)
    state = ControlState()
    state.apply(ControlCommand(command_id="c", type=ControlType.PAUSE_AGENT, agent_id="other", issued_at_us=0))
    now = time.time_ns() // 1000
    control_us = _per_call_us(lambda r: state.blocking("acme", r["agent_id"], r["name"], now), plain)
    return [
        {"name": f"guard per action, {RULES} rules, no match", "value": guard_us, "unit": "us/action",
         "baseline": base_us, "baseline_name": f"{len(checks)} hand-written Python checks",
         "ratio": guard_us / base_us, "goal": "<= 20 us"},
        {"name": f"guard per action, {RULES} rules, one match (decision built)", "value": hit_us, "unit": "us/action",
         "baseline": guard_us, "baseline_name": "no match", "ratio": hit_us / guard_us, "goal": "<= 20 us"},
        {"name": "control state check (a command in force for another agent)", "value": control_us,
         "unit": "us/action", "baseline": guard_us, "baseline_name": "guard, no match",
         "ratio": control_us / guard_us, "goal": None},
    ]


if __name__ == "__main__":
    for row in run():
        ratio = f" ratio {row['ratio']:.2f}" if row["ratio"] is not None else ""
        print(f"{row['name']}: {row['value']:,.2f} {row['unit']} (baseline {row['baseline_name']}: "
              f"{row['baseline']:,.2f}){ratio} goal {row['goal']}")
