"""``agentaudit rules show``: each rule's effective by, window, lateness and decision time, defaults named."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from agentaudit.cli import app
from agentaudit.rules import load_rule_set

EXAMPLE = str(Path(__file__).parents[2] / "agentaudit" / "rules" / "pack" / "examples" / "confirm-each-write.yaml")

RULES = """
rules:
  - id: per-run
    desc: counts tool calls per run
    condition: kind = execute_tool
    aggregate: {fn: count, op: ">", threshold: 20, idle: 5m}
    by: [agent_id]
    window: trace
    output: "{count}"
    severity: low
    tags: [sandbox]
  - id: approved
    desc: refunds need their own approval
    condition: name = "refund"
    ancestor: {approval: kind = approval, within: 10m, once: true, bind: args_hash}
    output: "{detail}"
    severity: high
    tags: [sandbox]
"""


def show(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["rules", "show", *args])
    return result.exit_code, result.output


def test_show_names_the_defaults_a_rule_leaves_unsaid() -> None:
    code, out = show("autonomy.runaway-depth")
    assert code == 0, out
    assert "by:        [tenant, trace_id]\n" in out  # written in the rule: not marked default
    assert "window:    1h  (default)" in out  # left unsaid: a predicate groups per hour
    assert "lateness:  30s" in out and "decided:   on arrival" in out


def test_show_spells_out_the_new_settings(tmp_path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RULES)
    code, out = show("--rules", str(path))
    assert code == 0, out
    per_run, approved = out.split("\n\n")
    assert "by:        [tenant, agent_id, trace_id]  (default)" not in per_run
    assert "[tenant, agent_id, trace_id]" in per_run and "(trace_id added: window: trace)" in per_run
    assert "window:    trace (closes at the root's end, or idle 5m after the trace's last event)" in per_run
    assert "by:        [tenant, agent_id]  (default)" in approved
    assert "once:      true" in approved and "bind:      args_hash" in approved and "within:    10m" in approved


def test_show_of_the_confirmation_policy_says_when_it_decides() -> None:
    code, out = show("--rules", EXAMPLE, "conversation.write-without-confirmation")
    assert code == 0, out
    assert "unless:    user_confirms" in out and "when the watermark passes B's event time" in out


def test_show_lists_every_rule_without_ids_and_refuses_an_unknown_one() -> None:
    code, out = show()
    assert code == 0
    assert out.count("\n  decided:") == len(load_rule_set(None).rules)
    code, out = show("no.such-rule")
    assert code == 1 and "no enabled rule no.such-rule" in out
