"""The condition language: what each operator means on real records."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentaudit.rules import load_rule_set
from agentaudit.rules.harness import build_events

FILE = """\
lists:
  - name: tools
    items: [a.b, c.d]
  - name: sizes
    items: [1, 2.5]
macros:
  - name: is_tool
    condition: kind = execute_tool
  - name: hook
    condition: "false"
rules:
  - id: r
    desc: d
    severity: low
    tags: [sandbox]
    output: "{name}"
    condition: {condition}
"""


def matcher(tmp_path: Path, condition: str):
    path = tmp_path / "r.yaml"
    path.write_text(FILE.replace("{condition}", condition))
    return load_rule_set([str(path)]).rules[0].predicate


def record(**fields):
    return build_events([fields], "cond")[0]


@pytest.mark.parametrize(
    ("condition", "fields", "expected"),
    [
        ("is_tool and name in (tools)", {"kind": "execute_tool", "name": "a.b"}, True),
        ("is_tool and name in (tools)", {"kind": "execute_tool", "name": "x"}, False),
        ("name not in (tools, 'x')", {"name": "x"}, False),
        ("name in ('z', tools)", {"name": "c.d"}, True),
        ("not is_tool", {"kind": "chat"}, True),
        ("is_tool or hook", {"kind": "chat"}, False),
        ("cost_usd > 0.5 and cost_usd <= 1", {"cost_usd": 0.75}, True),
        ("cost_usd * 1000 >= 750", {"cost_usd": 0.75}, True),
        ("input_tokens / output_tokens > 2", {"input_tokens": 10, "output_tokens": 0}, False),
        ("tokens_total = 30", {"input_tokens": 10, "output_tokens": 20}, True),
        ("payload_bytes in (sizes)", {"payload_bytes": 1}, True),
        ('name startswith "a." and name endswith ".b"', {"name": "a.b"}, True),
        ('name contains "." and name icontains "A"', {"name": "a.b"}, True),
        ('name glob "a.*"', {"name": "a.bc"}, True),
        ('name glob "a.*"', {"name": "xa.b"}, False),
        ('name matches "^[a-c]\\\\.[bd]$"', {"name": "c.d"}, True),
        ('attributes["http.url"] startswith "http://"', {"attributes": {"http.url": "http://x"}}, True),
        ('attributes["missing"] = ""', {}, True),
        ('model = ""', {"model": None}, True),
        ("latency_ms > 1", {"latency_us": None}, False),
        ("actor.type = human and actor_id = 'bob'", {"actor_type": "human", "actor_id": "bob"}, True),
        ("status in (error, timeout)", {"status": "timeout"}, True),
        ('links contains "p1"', {"links": ["p1", "p2"]}, True),
        ("links_count = 2", {"links": ["p1", "p2"]}, True),
        ("(kind = chat or kind = embeddings) and not (phase = start)", {"kind": "chat", "phase": "end"}, True),
        ("-depth < -2", {"depth": 3}, True),
        ("true", {}, True),
    ],
)
def test_condition_semantics(tmp_path: Path, condition: str, fields: dict, expected: bool) -> None:
    assert matcher(tmp_path, condition)(record(**fields)) is expected


def test_rules_pinned_to_kinds_are_only_offered_those_kinds(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(FILE.replace("{condition}", "(is_tool or kind = chat) and name = 'x'"))
    assert load_rule_set([str(path)]).rules[0].kinds == frozenset({"execute_tool", "chat"})
    path.write_text(FILE.replace("{condition}", "is_tool or cost_usd > 1"))
    assert load_rule_set([str(path)]).rules[0].kinds is None


def test_later_file_overrides_a_tuning_macro_and_disables_a_rule(tmp_path: Path) -> None:
    base = tmp_path / "a.yaml"
    base.write_text(FILE.replace("{condition}", "is_tool and not hook"))
    local = tmp_path / "b.yaml"
    local.write_text("macros:\n  - name: hook\n    condition: agent_id = 'trusted'\n")
    rule = load_rule_set([str(base), str(local)]).rules[0]
    assert rule.predicate(record(kind="execute_tool", agent_id="other")) is True
    assert rule.predicate(record(kind="execute_tool", agent_id="trusted")) is False
    local.write_text("rules:\n  - {id: r, enabled: false}\n")
    assert load_rule_set([str(base), str(local)]).rules == []


def test_exceptions_exclude_listed_field_values(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(FILE.replace("{condition}", "is_tool") + """\
    exceptions:
      - name: known
        fields: [agent_id, name]
        values: [[ci-bot, a.b]]
""")
    rule = load_rule_set([str(path)]).rules[0]
    assert rule.predicate(record(kind="execute_tool", agent_id="ci-bot", name="a.b")) is False
    assert rule.predicate(record(kind="execute_tool", agent_id="ci-bot", name="c.d")) is True


def test_revision_is_a_content_hash(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(FILE.replace("{condition}", "is_tool"))
    first = load_rule_set([str(path)]).revision
    path.write_text("# a comment changes nothing\n" + FILE.replace("{condition}", "is_tool"))
    assert load_rule_set([str(path)]).revision == first
    path.write_text(FILE.replace("{condition}", "not is_tool"))
    assert load_rule_set([str(path)]).revision != first
