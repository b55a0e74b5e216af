"""Bad rule files are rejected at load time with file, line and rule in the message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agentaudit.rules import load_rule_set
from agentaudit.rules.exceptions import RuleError

HEADER = """\
required_engine_version: 1
lists:
  - name: bad_tools
    items: [shell.exec]
macros:
  - name: tool_call
    condition: kind = execute_tool
rules:
"""


def rule(body: str) -> str:
    """A rule file whose rule 'bad' starts on line 9; ``body`` lines follow 'id'."""
    return HEADER + "  - id: bad\n" + textwrap.indent(textwrap.dedent(body), "    ")


GOOD = """\
desc: fine
severity: high
tags: [stable]
output: "{agent_id} did {name}"
"""

# (case, file text, line the error must name, fragment of the message)
CASES = [
    ("unknown field", rule(GOOD + 'condition: nmae = "x"\n'), 14, "unknown field or macro 'nmae'"),
    ("type mismatch string vs number", rule(GOOD + 'condition: cost_usd = "cheap"\n'), 14, "type mismatch"),
    ("order on strings", rule(GOOD + "condition: name > 3\n"), 14, "type mismatch"),
    ("bad regex", rule(GOOD + 'condition: name matches "(unclosed"\n'), 14, "bad regular expression"),
    ("unknown list", rule(GOOD + "condition: name in (no_such_list)\n"), 14, "unknown list 'no_such_list'"),
    ("bad enum value", rule(GOOD + "condition: kind = exec_tool\n"), 14, "'exec_tool' is not a valid value"),
    ("bad severity", rule(GOOD.replace("high", "urgent") + "condition: tool_call\n"), 11, "bad severity 'urgent'"),
    ("bad mode", rule(GOOD + "condition: tool_call\nmode: prevent\n"), 15, "bad mode 'prevent'"),
    ("missing output", rule("desc: d\nseverity: low\ntags: [stable]\ncondition: tool_call\n"), 9,
     "missing required field 'output'"),
    ("missing condition", rule(GOOD), 9, "missing required field 'condition'"),
    ("bad window spec", rule(GOOD + "condition: tool_call\naggregate: {fn: count, threshold: 3}\nby: [agent_id]\n"
                                    "window: 5 parsecs\n"), 17, "bad window '5 parsecs'"),
    ("slide not dividing window", rule(GOOD + "condition: tool_call\naggregate: {fn: count, threshold: 3, slide: 7m}\n"
                                              "by: [agent_id]\nwindow: 10m\n"), 15, "slide must divide the window"),
    ("unknown rule kind", rule(GOOD + "condition: tool_call\nkind: telepathy\n"), 15, "unknown rule kind 'telepathy'"),
    ("aggregate on a string field", rule(GOOD + "condition: tool_call\naggregate: {fn: sum, field: name, threshold: 3}\n"
                                                "by: [agent_id]\nwindow: 1h\n"), 15, "type mismatch: aggregate sum"),
    ("threshold not a number", rule(GOOD + "condition: tool_call\naggregate: {fn: count, threshold: lots}\n"
                                           "by: [agent_id]\nwindow: 1h\n"), 15, "threshold must be a number"),
    ("unknown rule key", rule(GOOD + "condition: tool_call\nconditon: tool_call\n"), 15, "unknown key 'conditon'"),
    ("maturity tag", rule(GOOD.replace("[stable]", "[security]") + "condition: tool_call\n"), 12,
     "first tag states maturity"),
    ("template field", rule(GOOD.replace("{name}", "{nmae}") + "condition: tool_call\n"), 13,
     "output template: unknown field 'nmae'"),
    ("duplicate id", rule(GOOD + "condition: tool_call\n") + "  - id: bad\n" + textwrap.indent(
        GOOD + "condition: tool_call\n", "    "), 15, "duplicate rule id"),
    ("duplicate yaml key", rule(GOOD + "condition: tool_call\nseverity: low\n"), 15, "duplicate key 'severity'"),
    ("yaml syntax error", rule(GOOD + "condition: [tool_call\n"), 15, "YAML syntax error"),
    ("unknown aggregate fn", rule(GOOD + "condition: tool_call\naggregate: {fn: median, threshold: 3}\nby: [agent_id]\n"
                                         "window: 1h\n"), 15, "bad fn 'median'"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_rule_file_names_file_line_and_rule(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RuleError) as info:
        load_rule_set([str(path)])
    message = str(info.value)
    assert fragment in message
    assert info.value.file == str(path)
    assert info.value.line == line, message
    assert info.value.rule == "bad"
    assert message.startswith(f"{path}:{line}: rule 'bad': ")


def test_cyclic_macros_name_the_macro_line_and_rule(tmp_path: Path) -> None:
    path = tmp_path / "cycle.yaml"
    path.write_text(textwrap.dedent("""\
        macros:
          - name: a
            condition: b and kind = chat
          - name: b
            condition: not a
        rules:
          - id: loops
            desc: d
            severity: low
            tags: [sandbox]
            output: x
            condition: a
        """))
    with pytest.raises(RuleError, match=r"cyclic macros: a -> b -> a") as info:
        load_rule_set([str(path)])
    assert (info.value.file, info.value.rule) == (str(path), "loops")
    assert info.value.line in (3, 5)


def test_engine_version_too_new(tmp_path: Path) -> None:
    path = tmp_path / "future.yaml"
    path.write_text("required_engine_version: 99\nrules: []\n")
    with pytest.raises(RuleError, match="required_engine_version 99") as info:
        load_rule_set([str(path)])
    assert (info.value.file, info.value.line) == (str(path), 1)


def test_missing_file_is_a_rule_error(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="no such rule file"):
        load_rule_set([str(tmp_path / "absent.yaml")])
