"""The default rule pack: at least 30 rules, each with a passing fixture, linted and tested through the CLI."""

from __future__ import annotations

import types

import pytest
from typer.testing import CliRunner

import agentaudit.rules as rules_pkg
from agentaudit.cli import app
from agentaudit.rules import DEFAULT_PACK, load_evaluator, load_rule_set
from agentaudit.rules._spec import MATURITY
from agentaudit.rules.harness import load_fixtures, run_fixture

RULE_SET = load_rule_set(None)
FIXTURES = load_fixtures(DEFAULT_PACK / "fixtures")


def test_pack_has_at_least_30_rules_of_every_kind() -> None:
    assert len(RULE_SET.rules) >= 30
    assert {r.kind for r in RULE_SET.rules} == {"predicate", "aggregate", "sequence", "absence", "ancestor",
                                               "integrity"}
    for rule in RULE_SET.rules:
        assert rule.tags[0] in MATURITY
        assert rule.desc and rule.template


def test_every_rule_has_a_fixture() -> None:
    tested = {rule_id for fixture in FIXTURES for rule_id in fixture.rules}
    assert {r.id for r in RULE_SET.rules} <= tested


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_fixture(fixture) -> None:
    result = run_fixture(RULE_SET, fixture)
    assert result.ok, result.problems
    assert result.incidents or not fixture.expect


@pytest.mark.parametrize("seed", [1, 2])
def test_fixtures_pass_in_small_batches_with_streams_interleaved(seed: int) -> None:
    failed = [r.fixture.name for r in (run_fixture(RULE_SET, f, batch_size=2, shuffle_seed=seed) for f in FIXTURES)
              if not r.ok]
    assert failed == []


def test_a_fixture_expecting_the_wrong_count_fails(tmp_path) -> None:
    path = tmp_path / "wrong.yaml"
    path.write_text("fixtures:\n  - name: wrong\n    events:\n"
                    "      - {kind: execute_tool, name: shell.exec, phase: start}\n"
                    "    expect:\n      - {rule: security.forbidden-tool, count: 2}\n")
    result = run_fixture(RULE_SET, load_fixtures(path)[0])
    assert not result.ok
    assert "not found" in result.problems[0] and "unexpected incident" in result.problems[1]


def test_cli_lint_and_test(tmp_path) -> None:
    runner = CliRunner()
    lint = runner.invoke(app, ["rules", "lint"])
    assert lint.exit_code == 0, lint.output
    assert f"{len(RULE_SET.rules)} rules" in lint.output
    tested = runner.invoke(app, ["rules", "test", "--batch-size", "5"])
    assert tested.exit_code == 0, tested.output
    assert f"{len(FIXTURES)} passed, 0 failed" in tested.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: r\n    desc: d\n    severity: low\n    tags: [stable]\n    output: o\n"
                   "    condition: nope = 1\n")
    failed = runner.invoke(app, ["rules", "lint", str(bad)])
    assert failed.exit_code == 1
    assert f"{bad}:7: rule 'r'" in failed.output


def test_jsonl_fixture_streams(tmp_path) -> None:
    (tmp_path / "events.jsonl").write_text(
        '{"kind": "execute_tool", "name": "shell.exec", "phase": "start"}\n'
        '{"kind": "execute_tool", "name": "shell.exec", "phase": "start", "agent_id": "b"}\n')
    (tmp_path / "f.yaml").write_text("fixtures:\n  - name: jsonl\n    events_file: events.jsonl\n    expect:\n"
                                     "      - {rule: security.forbidden-tool, key: agent-1}\n"
                                     "      - {rule: security.forbidden-tool, key: b}\n")
    assert run_fixture(RULE_SET, load_fixtures(tmp_path)[0]).ok


def test_load_evaluator_accepts_a_single_path_and_the_default_pack() -> None:
    assert load_evaluator(str(DEFAULT_PACK)).revision == load_evaluator(None).revision == RULE_SET.revision


def test_public_api_is_complete() -> None:
    public = {name for name, value in vars(rules_pkg).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)} - {"annotations"}
    assert public <= set(rules_pkg.__all__)
