"""The README's sizing guide is the arithmetic of the newest committed sizing results (benchmarks/sizing.py).

A new `python -m benchmarks sizing` run writes a newer results file: until the README's block is
regenerated (`python -m benchmarks.sizing`), these tests fail.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from benchmarks import sizing
from benchmarks.sizing import Figures, load_figures, partitions_for, plan, processes

README = Path(__file__).resolve().parents[2] / "README.md"


def _block() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- sizing:begin -->\n(.*?)\n<!-- sizing:end -->", text, re.DOTALL)
    assert found, "README.md has no <!-- sizing:begin --> ... <!-- sizing:end --> block"
    return found.group(1)


def _tables(block: str) -> list[list[list[str]]]:
    """Each markdown table of ``block`` as rows of cells (header first, the --- line left out)."""
    tables: list[list[list[str]]] = []
    previous_was_row = False
    for line in block.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not previous_was_row:
                tables.append([])
            if not all(set(c) <= {"-", ":"} for c in cells):
                tables[-1].append(cells)
            previous_was_row = True
        else:
            previous_was_row = False
    return tables


@pytest.fixture(scope="module")
def figures() -> Figures:
    return load_figures()


def test_readme_figures_table_is_the_latest_results(figures: Figures) -> None:
    measured, _ = _tables(_block())
    assert measured == [sizing.FIGURES_HEADER, *sizing.figure_rows(figures)]


def test_readme_plan_table_is_the_plan_of_the_latest_results(figures: Figures) -> None:
    _, planned = _tables(_block())
    assert planned[0] == sizing.PLAN_HEADER
    assert [row[0] for row in planned[1:]] == ["10,000", "100,000", "1,000,000"]
    assert planned[1:] == sizing.plan_rows(figures)


def test_readme_names_the_run_and_the_limits(figures: Figures) -> None:
    block = _block()
    assert sizing.measured_line(figures) in block
    assert sizing.limits_line(figures) in block
    assert block == sizing.markdown(figures)


def test_other_figures_would_not_match_the_readme(figures: Figures) -> None:
    """The check can fail: a slower sink, a slower rules worker or larger events change the tables."""
    _, planned = _tables(_block())
    for change in ({"sink_store_only_eps": figures.sink_store_only_eps / 3},
                   {"rules_pack_eps": figures.rules_pack_eps / 3},
                   {"store_bytes": figures.store_bytes * 2}):
        assert sizing.plan_rows(dataclasses.replace(figures, **change)) != planned[1:], change


def test_latest_results_skips_runs_without_the_sizing_rows(tmp_path: Path, figures: Figures) -> None:
    committed = sizing.latest_results()
    (tmp_path / committed.name).write_text(committed.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "29991231T235959.json").write_text(json.dumps({"rows": [{"key": "events", "value": 1}]}))
    assert sizing.latest_results(tmp_path).name == committed.name
    newer = json.loads(committed.read_text(encoding="utf-8"))
    for row in newer["rows"]:
        if row.get("key") == "sink_store_only_eps":
            row["value"] /= 2
    (tmp_path / "29991231T235960.json").write_text(json.dumps(newer))
    assert load_figures(sizing.latest_results(tmp_path)).sink_store_only_eps == figures.sink_store_only_eps / 2


def test_plan_arithmetic() -> None:
    f = Figures(sink_store_only_eps=10_000, sink_pack_eps=4_000, rules_pack_eps=5_000, rules_pack_cores=0.5,
                rules_one_eps=20_000, kafka_actions_bytes_single=600, kafka_actions_bytes_batched=300,
                kafka_repartition_bytes=400, store_bytes=500, events=40_000, loadavg=1.0)
    p = plan(f, 100_000, utilization=0.5, replication=3)
    assert (p.sinks, p.rules_workers) == (20, 40)  # 100k / 5k, 100k / 2.5k
    assert p.partitions == 84  # 2 x 40 = 80, up to a multiple of 6
    assert p.kafka_mb_s == pytest.approx(100.0)  # (600 + 400) B x 100k/s
    assert p.kafka_gb_day == pytest.approx(100.0 * 3 * 86_400 / 1000)
    assert p.store_gb_day == pytest.approx(500 * 100_000 * 86_400 / 1e9)
    assert processes(1, 10_000) == 1 and processes(6_001, 10_000) == 2  # 6,000 per process at 60 %
    assert partitions_for(1) == 6 and partitions_for(3) == 6 and partitions_for(4) == 12
