"""Every example of docs/rules.md loads with the real loader and raises exactly the incidents its fixture states.

A ```yaml block starting ``# example: NAME`` is a rule file (several blocks with one NAME are loaded
as successive files, in order); the block starting ``# fixture: NAME`` holds fixtures in the format
``agentaudit rules test`` reads, run with the real harness. Fixture expectations may also give
``summary``, compared with the rendered incident. The reference must also name every field,
operator, aggregate function, integrity check and template value the engine has.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentaudit.rules import FIELDS, KINDS, load_rule_set
from agentaudit.rules._compile import AGG_FNS, INTEGRITY_CHECKS, TEMPLATE_EXTRAS
from agentaudit.rules._condition import _KEYWORDS
from agentaudit.rules._yaml import load_yaml
from agentaudit.rules.harness import load_fixtures, run_fixture

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.DOTALL | re.MULTILINE)
_MARKER = re.compile(r"\A# (example|fixture): ([a-z0-9-]+)")


def _blocks() -> tuple[dict[str, list[str]], dict[str, str]]:
    examples: dict[str, list[str]] = {}
    fixtures: dict[str, str] = {}
    for body in _BLOCK.findall(DOC.read_text(encoding="utf-8")):
        marker = _MARKER.match(body)
        assert marker, f"a yaml block of docs/rules.md has no '# example: NAME' or '# fixture: NAME' marker:\n{body}"
        what, name = marker.groups()
        if what == "example":
            examples.setdefault(name, []).append(body)
        else:
            assert name not in fixtures, f"two fixture blocks for example {name!r}"
            fixtures[name] = body
    return examples, fixtures


EXAMPLES, FIXTURES = _blocks()


def test_every_example_has_a_fixture_and_every_fixture_an_example() -> None:
    assert EXAMPLES, "no examples found in docs/rules.md"
    assert set(EXAMPLES) == set(FIXTURES)


# One batch (as ``agentaudit rules test``), one event per batch, and streams interleaved at random in
# batches of two: the stated incidents do not depend on how the events arrive.
FEEDS = {"one-batch": {}, "event-by-event": {"batch_size": 1}, "interleaved": {"batch_size": 2, "shuffle_seed": 7}}


@pytest.mark.parametrize("feed", sorted(FEEDS))
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_example_raises_the_incidents_its_fixture_states(name: str, feed: str, tmp_path: Path) -> None:
    paths = []
    for n, body in enumerate(EXAMPLES[name]):
        path = tmp_path / f"{n:02d}-{name}.yaml"
        path.write_text(body, encoding="utf-8")
        paths.append(str(path))
    rule_set = load_rule_set(paths)
    disabled = {entry["id"] for body in EXAMPLES[name] for entry in (load_yaml(body) or {}).get("rules", [])
                if entry.get("enabled") is False}
    assert not disabled & {rule.id for rule in rule_set.rules}, "a rule disabled by a later file still runs"
    fixture_file = tmp_path / "fixture.yaml"
    fixture_file.write_text(FIXTURES[name], encoding="utf-8")
    fixtures = load_fixtures(fixture_file)
    assert fixtures
    for fixture in fixtures:
        assert fixture.expect, f"fixture {fixture.name!r} states no incident"
        result = run_fixture(rule_set, fixture, **FEEDS[feed])
        assert result.ok, "\n".join(result.problems)
        for expected in fixture.expect:
            if "summary" in expected:
                summaries = [i.summary for i in result.incidents
                             if i.rule_id == expected["rule"] and i.key == str(expected.get("key", i.key))]
                assert expected["summary"] in summaries, (expected, summaries)


def test_the_examples_cover_every_rule_kind_and_the_layout_features() -> None:
    kinds = set()
    options = set()
    for bodies in EXAMPLES.values():
        for body in bodies:
            doc = load_yaml(body) or {}
            for rule in doc.get("rules", []):
                kinds.add(rule.get("kind") or next((k for k in KINDS[1:] if k in rule), "predicate"))
                options.update(k for k in ("by", "exceptions", "enabled") if k in rule)
                block = next((rule[k] for k in KINDS[1:] if isinstance(rule.get(k), dict)), {})
                options.update(f"{k}={v}" for k, v in block.items() if k in ("unless", "once") and v)
                if rule.get("window") == "trace":
                    options.add("window=trace")
            options.update("append" for entry in doc.get("lists", []) if entry.get("append"))
    assert kinds == set(KINDS)
    assert {"by", "exceptions", "enabled", "append", "window=trace", "once=True"} <= options
    assert any(o.startswith("unless=") for o in options)


def test_the_reference_names_every_field_function_check_template_value_and_operator() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [f for f in FIELDS if f"`{f}`" not in text]
    missing += [fn for fn in AGG_FNS if f"`{fn}`" not in text]
    missing += [c for c in INTEGRITY_CHECKS if f"`{c}`" not in text]
    missing += [v for v in TEMPLATE_EXTRAS if f"{{{v}}}" not in text]
    missing += [k for k in _KEYWORDS if f"`{k}`" not in text and f"`{k} " not in text]
    assert not missing, f"docs/rules.md does not document: {missing}"


def test_the_readme_rule_files_load_as_written(tmp_path: Path) -> None:
    readme = DOC.parents[1] / "README.md"
    bodies = [b for b in _BLOCK.findall(readme.read_text(encoding="utf-8")) if re.search(r"^rules:", b, re.MULTILINE)]
    assert bodies, "the README shows no rule file"
    for n, body in enumerate(bodies):
        path = tmp_path / f"readme-{n}.yaml"
        path.write_text(body, encoding="utf-8")
        assert load_rule_set([str(path)]).rules
