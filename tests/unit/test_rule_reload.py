"""ReloadingEvaluator: a changed rule file swaps in at the next batch; a broken one keeps the old revision."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from agentaudit.consumers.rule_reload import ReloadingEvaluator
from agentaudit.rules import load_evaluator
from agentaudit.rules.exceptions import RuleError
from tests.sink_support import action_record

RULES = """required_engine_version: 1
rules:
  - id: unit.reload
    desc: >
      Flags one tool name.
    condition: kind = execute_tool and name = "{tool}"
    output: "{{agent_id}} called {{name}}"
    severity: low
    tags: [sandbox, test]
"""


def records(*names: str) -> list[dict]:
    out = []
    for i, name in enumerate(names):
        r = action_record(i, name=name, event_id=f"e{i}-{name}")
        r.update(event_hash="0" * 64, _partition=0, _offset=i)
        out.append(r)
    return out


def test_swap_happens_at_the_next_batch_and_bad_files_keep_the_old_revision(tmp_path: Path, caplog):
    path = tmp_path / "r.yaml"
    path.write_text(RULES.format(tool="alpha"))
    evaluator = ReloadingEvaluator([str(path)], load=load_evaluator)
    first = evaluator.revision
    assert [i.rule_revision for i in evaluator.evaluate(records("alpha", "beta"))] == [first]

    tmp = tmp_path / "r.tmp"
    tmp.write_text(RULES.format(tool="beta"))
    os.replace(tmp, path)
    assert evaluator.check() is True
    assert evaluator.revision == first  # not before the next batch
    with caplog.at_level(logging.WARNING, logger="agentaudit.consumers.rule_reload"):
        incidents = evaluator.evaluate(records("alpha", "beta"))
    second = evaluator.revision
    assert second != first and [(i.rule_revision, i.event_ids[0]) for i in incidents] == [(second, "e1-beta")]
    assert f"rules reloaded: revision {first} -> {second}" in caplog.text

    path.write_text("rules:\n  - id: [torn\n")
    with caplog.at_level(logging.ERROR, logger="agentaudit.consumers.rule_reload"):
        assert evaluator.check() is False
    assert f"rules reload failed, keeping revision {second}: " in caplog.text and "r.yaml:" in caplog.text
    assert evaluator.revision == second and evaluator.failures == 1
    assert evaluator.check() is False  # unchanged since the failure: not reloaded again


def test_a_bad_file_at_startup_is_fatal(tmp_path: Path):
    path = tmp_path / "r.yaml"
    path.write_text("rules: [")
    with pytest.raises(RuleError, match=r"r\.yaml"):
        ReloadingEvaluator([str(path)], load=load_evaluator)
