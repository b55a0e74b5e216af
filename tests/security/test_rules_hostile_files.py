"""Attacks by a rule author (or whoever can write into a watched rules directory) on the rule engine.

Each test states the payload and the refusal. Before these fixes: a ReDoS ``matches`` passed lint
and held an agent's tool call 3.1 s in the inline guard; a few hundred bytes of aliases made ``rules lint``
take > 4 GB and 90 s; ``1e999`` compiled to ``inf`` (a NameError on every event); and
``cost_usd / 2 / 4`` divided by 2 twice. Time and memory bounds are loose on purpose (2 shared cores).
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentaudit.consumers.rule_reload import ReloadingEvaluator
from agentaudit.control.guard import Guard
from agentaudit.producers.gate import ActionGate
from agentaudit.rules import OwnersError, RuleError, load_evaluator, load_owners, load_rule_set
from tests.control_support import action_record

RULE = """\
rules:
  - id: hostile
    desc: a rule file an attacker wrote
    condition: {condition}
    output: "{{agent_id}} ran {{name}}"
    severity: high
    mode: enforce
    tags: [sandbox]
"""

#: 9 anchors of 9 aliases each: 9**9 = 387,420,489 strings once expanded, from 673 bytes.
ALIAS_BOMB = "lists:\n" + "".join(
    f"  - name: l{i}\n    items: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else ', '.join(['lol'] * 9)}]\n"
    for i in range(9))

REDOS = r'name matches "^(\\w+\\s?)+$"'


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def lint(path: Path | str) -> tuple[subprocess.CompletedProcess[str], float]:
    """``agentaudit rules lint PATH`` in a child process, and its wall time."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "agentaudit.cli", "rules", "lint", str(path)], capture_output=True,
                          text=True, timeout=120, check=False)
    return done, time.perf_counter() - started


def lint_startup(tmp_path: Path) -> float:
    """Wall time of linting a one-rule file: the interpreter's start-up, which the bounds do not count."""
    return lint(write(tmp_path, "ok.yaml", RULE.format(condition="kind = chat")))[1]


# -- matches: linear time (RE2) ----------------------------------------------------------------------------


def test_redos_pattern_judged_in_linear_time_by_the_consumer_and_the_inline_guard(tmp_path: Path) -> None:
    """Attack: ``name matches "^(\\w+\\s?)+$"`` (catastrophic backtracking under Python's re) and a tool name
    of 10,000 word characters then ``!``. Expected: judged (no match) in < 50 ms, in the consumer's
    evaluator, in the guard, and through the SDK's gate before the tool runs."""
    path = write(tmp_path, "redos.yaml", RULE.format(condition=REDOS))
    done, _ = lint(path)
    assert done.returncode == 0, done.stderr  # RE2 takes the pattern: it cannot backtrack
    hostile = action_record(name="a" * 10_000 + "!")

    rule = load_rule_set([str(path)]).rules[0]
    started = time.perf_counter()
    assert rule.predicate(hostile) is False
    assert time.perf_counter() - started < 0.05

    evaluator = load_evaluator([str(path)])
    started = time.perf_counter()
    assert evaluator.evaluate([{**hostile, "event_hash": "", "_partition": 0, "_offset": 0}]) == []
    assert time.perf_counter() - started < 0.05

    gate = ActionGate(guard=Guard.from_paths(str(path)))
    started = time.perf_counter()
    gate.before(hostile)  # no match: the tool may run
    assert time.perf_counter() - started < 0.05
    assert gate.guard is not None and gate.guard.errors == 0
    with pytest.raises(Exception, match="inline guard rule hostile denies"):
        gate.before(action_record(name="read file"))  # and the rule still works


@pytest.mark.parametrize(("pattern", "why"), [
    (r"(a)\\1", "invalid escape sequence"),  # backreference
    (r"(?=admin)", "invalid perl operator"),  # lookahead
    ("a{1001}", "invalid repetition size"),
    ("((((a{100}){100}){100}){100})", "bad regular expression"),  # a program larger than RE2's memory budget
])
def test_patterns_re2_refuses_are_refused_at_load_with_file_and_line(tmp_path: Path, pattern: str, why: str) -> None:
    """Attack: patterns that need a backtracking engine or an enormous program. Expected: ``rules lint`` and
    the guard refuse the file at load, naming file, line and rule; nothing is judged with them."""
    path = write(tmp_path, "bad-regex.yaml", RULE.format(condition=f'name matches "{pattern}"'))
    done, _ = lint(path)
    assert done.returncode != 0
    assert f"{path}:4: rule 'hostile'" in done.stderr and why in done.stderr
    with pytest.raises(RuleError, match=why):
        Guard.from_paths(str(path))


# -- YAML: alias bombs, size, depth ---------------------------------------------------------------------------


def test_alias_bomb_is_refused_by_lint_quickly_and_in_little_memory(tmp_path: Path) -> None:
    """Attack: the 673-byte ``ALIAS_BOMB`` (9 levels of 9 aliases). Expected: ``rules lint`` exits non-zero in
    < 5 s beyond start-up, using < 400 MB, naming the file and line and saying "alias"."""
    path = write(tmp_path, "bomb.yaml", ALIAS_BOMB)
    assert len(ALIAS_BOMB.encode()) == 673
    startup = lint_startup(tmp_path)
    probe = (f"import resource, subprocess, sys; subprocess.run([sys.executable, '-m', 'agentaudit.cli', 'rules', "
             f"'lint', {str(path)!r}]); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    elapsed = time.perf_counter() - started
    assert f"{path}:" in done.stderr and "alias" in done.stderr and "ok:" not in done.stdout
    assert elapsed - startup < 5
    assert int(done.stdout.split()[-1]) < 400 * 1024  # KiB

    started = time.perf_counter()
    with pytest.raises(RuleError, match="alias"):
        load_rule_set([str(path)])
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(("name", "text", "why"), [
    ("recursive", "lists:\n  - &a {name: a, items: [*a]}\n", "refers to its own anchor"),
    ("deep", "lists: " + "[" * 100_000 + "\n", "levels deep|maximum nesting depth"),  # ours, or libyaml's at 1000
    ("deep-70", "lists: " + "[" * 70 + "]" * 70 + "\n", "nested more than 64 levels deep"),
    ("mapping-bomb", "x0: &x0 {a: 1, b: 2, c: 3, d: 4}\n" + "".join(
        f"x{i}: &x{i} {{{', '.join(f'k{j}: *x{i - 1}' for j in range(8))}}}\n" for i in range(1, 8)), "alias"),
])
def test_hostile_yaml_shapes_are_refused(tmp_path: Path, name: str, text: str, why: str) -> None:
    """Attack: a recursive alias (infinite structure), 100,000 and 70 nested brackets (stack overflow in the
    loader or in whatever walks the value), aliases of mappings nested 7 deep (8**7 mappings). Expected: refused
    in < 2 s with the file named."""
    path = write(tmp_path, f"{name}.yaml", text)
    started = time.perf_counter()
    with pytest.raises(RuleError, match=why) as info:
        load_rule_set([str(path)])
    assert time.perf_counter() - started < 2 and str(path) in str(info.value)


def test_oversized_and_endless_files_are_refused_before_being_read_whole(tmp_path: Path) -> None:
    """Attack: a 64 MiB rule file, and ``/dev/zero`` as a rule path (endless). Expected: refused after reading at
    most 1 MiB + 1 byte: no gigabytes read, no hang."""
    big = tmp_path / "big.yaml"
    with big.open("w") as handle:
        handle.write("rules: []\n# " + "x" * (64 << 20) + "\n")
    for target in (big, Path("/dev/zero")):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        with pytest.raises(RuleError, match="larger than 1,048,576 bytes") as info:
            load_rule_set([str(target)])
        assert time.perf_counter() - started < 2 and str(target) in str(info.value)
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB


def test_a_directory_of_many_large_files_is_refused(tmp_path: Path) -> None:
    """Attack: 20 rule files of 1,000,000 bytes each in one rules directory (20 MB of comments). Expected: refused
    once the set passes 4 MiB, naming the file where it did, before any file is parsed (< 2 s)."""
    for i in range(20):
        write(tmp_path, f"{i:02}.yaml", "rules: []\n#" + "x" * 999_988 + "\n")
    started = time.perf_counter()
    with pytest.raises(RuleError, match="more than 4,194,304 characters") as info:
        load_rule_set([str(tmp_path)])
    assert "04.yaml" in str(info.value) and time.perf_counter() - started < 2


def test_owners_file_alias_bomb_is_refused(tmp_path: Path) -> None:
    """Attack: the alias bomb as an owners file (``agentaudit consume --owners``). Expected: OwnersError naming
    the file, in < 1 s."""
    text = "teams:\n  t: {oncall: &l0 [" + ", ".join(["a"] * 9) + "]}\n" + "".join(
        f"x{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9))
    path = write(tmp_path, "owners.yaml", text)
    started = time.perf_counter()
    with pytest.raises(OwnersError, match="alias") as info:
        load_owners(path)
    assert time.perf_counter() - started < 1 and str(path) in str(info.value)


def test_hot_reload_keeps_the_old_revision_when_a_watched_file_turns_into_a_bomb(tmp_path: Path) -> None:
    """Attack: in a watched rules directory, a good file is replaced by the alias bomb, then a 2 MiB file is
    added. Expected: each change is refused once, in < 2 s, the old revision keeps judging, the error is kept;
    fixing the file loads it."""
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules, "a.yaml", RULE.format(condition="kind = chat"))
    reloading = ReloadingEvaluator([str(rules)], load=load_evaluator)
    good = reloading.revision
    write(rules, "a.yaml", ALIAS_BOMB)
    started = time.perf_counter()
    assert reloading.check() is False
    assert time.perf_counter() - started < 2
    assert reloading.revision == good and reloading.failures == 1 and "alias" in (reloading.last_error or "")
    assert reloading.check() is False and reloading.failures == 1  # unchanged file: not loaded again
    write(rules, "a.yaml", RULE.format(condition="kind = chat"))  # the same revision as before: nothing to swap
    assert reloading.check() is False and reloading.last_error is None
    write(rules, "b.yaml", "# " + "x" * (2 << 20))
    assert reloading.check() is False and reloading.failures == 2 and "larger than" in (reloading.last_error or "")
    record = {**action_record(kind="chat", name="c"), "event_hash": "", "_partition": 0, "_offset": 0}
    assert [i.rule_id for i in reloading.evaluate([record])] == ["hostile"]  # the old revision still judges
    (rules / "b.yaml").unlink()
    write(rules, "a.yaml", RULE.format(condition="kind = plan"))
    assert reloading.check() is True and reloading.last_error is None


# -- conditions: numbers, nesting, macro expansion, windows -----------------------------------------------------


@pytest.mark.parametrize(("condition", "why"), [
    ("cost_usd > 1e999", "out of range"),  # once compiled to ``inf``: a NameError on every event
    ("cost_usd in (1, 1e999)", "out of range"),
    ("seq > " + "9" * 5000, "longer than 64 characters"),  # once a ValueError (int digit limit) escaping lint
    ("cost_usd" + " + 1" * 400 + " > 0", "too complex to compile"),  # once a SyntaxError escaping lint
    ("not " * 200 + "true", "nested more than 50 levels"),
    ("(" * 5000 + "true" + ")" * 5000, "nested more than 50 levels"),  # once a RecursionError
])
def test_hostile_conditions_are_refused_at_load_with_file_and_line(tmp_path: Path, condition: str, why: str) -> None:
    """Attack: conditions that passed lint and failed on every event, or crashed the linter. Expected: refused at
    load by ``rules lint`` and the guard, with file, line and rule."""
    path = write(tmp_path, "hostile.yaml", RULE.format(condition=condition))
    done, _ = lint(path)
    assert done.returncode != 0 and f"{path}:4: rule 'hostile'" in done.stderr and why in done.stderr, done.stderr
    with pytest.raises(RuleError, match=why):
        Guard.from_paths(str(path))


@pytest.mark.parametrize(("block", "why"), [
    ("    by: [agent_id]\n    window: 1h\n    aggregate: {fn: count, threshold: .inf}\n", "finite number"),
    ("    by: [agent_id]\n    window: 1h\n    aggregate: {fn: count, threshold: .nan}\n", "finite number"),
    ("    by: [agent_id]\n    window: 1d\n    aggregate: {fn: max, field: cost_usd, threshold: 1, slide: 1us}\n",
     "86,400,000,000 slides"),  # each event would be counted in 86.4e9 windows
    ("    by: [agent_id]\n    window: 99999999d\n    aggregate: {fn: count, threshold: 1}\n", "bad window"),
    ("    exceptions: [{name: e, fields: [cost_usd], values: [.nan]}]\n", "finite number"),
])
def test_hostile_numbers_in_rule_blocks_are_refused(tmp_path: Path, block: str, why: str) -> None:
    """Attack: non-finite thresholds and exception values, a sliding window of 86.4 billion slides, a window of
    273,972 years. Expected: refused at load, naming the file and rule."""
    path = write(tmp_path, "hostile.yaml", RULE.format(condition="kind = chat") + block)
    with pytest.raises(RuleError, match=why) as info:
        load_rule_set([str(path)])
    assert str(path) in str(info.value) and "'hostile'" in str(info.value)


@pytest.mark.parametrize("template", ["{name:>400000000}", "{name:>{value}}", "{value:.999999f}"])
def test_output_templates_cannot_allocate_gigabytes(tmp_path: Path, template: str) -> None:
    """Attack: ``output: "{name:>400000000}"`` took 440 MB at lint and at every incident; a width taken from the
    aggregate's value (``{name:>{value}}``) would at run time. Expected: refused at load, naming the rule."""
    path = write(tmp_path, "template.yaml", RULE.format(condition="kind = chat").replace(
        '"{agent_id} ran {name}"', repr(template).replace("'", '"')))
    with pytest.raises(RuleError, match="widths and precisions are literal numbers up to 200") as info:
        load_rule_set([str(path)])
    assert f"{path}:5: rule 'hostile'" in str(info.value)


def test_a_long_list_named_in_every_rule_is_expanded_once_and_the_total_is_bounded(tmp_path: Path) -> None:
    """Attack: a list of 5,000 items named in 210 rules, each with one more literal (``name in (big, "x7")``), so
    that every rule copies the list: 1.05 million items. Expected: refused at load once the rule set passes
    1,000,000 expanded items, naming the rule; the same ``in`` in many rules shares one set."""
    items = ", ".join(f"t{i}" for i in range(5_000))
    head = f"lists:\n  - name: big\n    items: [{items}]\nrules:\n"
    rule = ("  - id: r{i}\n    desc: d\n    condition: name in (big{extra})\n    output: o\n    severity: low\n"
            "    tags: [sandbox]\n")
    hostile = write(tmp_path, "hostile.yaml", head + "".join(rule.format(i=i, extra=f', "x{i}"') for i in range(210)))
    with pytest.raises(RuleError, match="expand to more than 1,000,000 items") as info:
        load_rule_set([str(hostile)])
    assert "rule 'r199'" in str(info.value)  # 200 x 5,001 items
    shared = write(tmp_path, "shared.yaml", head + "".join(rule.format(i=i, extra="") for i in range(210)))
    rule_set = load_rule_set([str(shared)])
    assert len({id(v) for v in rule_set.namespace.values() if isinstance(v, frozenset)}) == 1


def test_thousands_of_distinct_patterns_are_refused(tmp_path: Path) -> None:
    """Attack: 1,001 rules, each with its own ``matches`` pattern (each RE2 pattern may hold 1 MiB). Expected:
    refused at load at the 1,001st; the same pattern in many rules is compiled once."""
    rule = ("  - id: r{i}\n    desc: d\n    condition: name matches \"{p}\"\n    output: o\n    severity: low\n"
            "    tags: [sandbox]\n")
    path = write(tmp_path, "patterns.yaml", "rules:\n" + "".join(rule.format(i=i, p=f"^x{i}$") for i in range(1001)))
    with pytest.raises(RuleError, match="more than 1,000 distinct glob and matches patterns") as info:
        load_rule_set([str(path)])
    assert "rule 'r1000'" in str(info.value)
    same = write(tmp_path, "same.yaml", "rules:\n" + "".join(rule.format(i=i, p="^x$") for i in range(1001)))
    assert len({id(v) for v in load_rule_set([str(same)]).namespace.values() if callable(v)}) == 1


def test_macro_expansion_bomb_is_refused(tmp_path: Path) -> None:
    """Attack: 40 macros, each ``m{i-1} or m{i-1}``: 2**40 copies of the first once inlined. Expected: refused
    at load in < 2 s, naming the macro."""
    macros = "macros:\n  - name: m0\n    condition: cost_usd > 1\n" + "".join(
        f"  - name: m{i}\n    condition: m{i - 1} or m{i - 1}\n" for i in range(1, 40))
    path = write(tmp_path, "macros.yaml", macros + RULE.format(condition="m39"))
    started = time.perf_counter()
    with pytest.raises(RuleError, match="expand to more than 100,000 characters"):
        load_rule_set([str(path)])
    assert time.perf_counter() - started < 2


def test_chained_arithmetic_on_one_field_computes_left_to_right(tmp_path: Path) -> None:
    """Attack (a careless author): ``cost_usd / 2 / 4 < 1.5`` on cost 8 once compared 8/2/2 = 2 (the second
    divisor overwrote the first) and did not match. Expected: 8/2/4 = 1, it matches, in the guard too."""
    path = write(tmp_path, "chain.yaml", RULE.format(condition="cost_usd / 2 / 4 < 1.5 and cost_usd / 2 / 4 > 0.5"))
    record = action_record(cost_usd=8.0)
    assert load_rule_set([str(path)]).rules[0].predicate(record) is True
    assert [d.rule_id for d in Guard.from_paths(str(path)).evaluate(record)] == ["hostile"]
