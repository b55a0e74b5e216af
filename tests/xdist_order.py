"""Longest work first across pytest-xdist workers.

xdist hands out work in collection order, so a run that meets its slowest modules late ends with one worker
busy for minutes while the others sit idle. With ``--dist loadfile --no-loadscope-reorder`` (the README's test
command) each test module is one unit, so a module-scoped fixture starts once, on one worker; this hook puts the
modules slowest first, by the seconds ``tests/durations.json`` holds per test (a whole run's setup + call +
teardown, tests of a second or more), and an idle worker takes the next module. That is
longest-processing-time-first scheduling; stale figures only cost speed, never a result.
``python -m tests.xdist_order REPORT_LOG`` rewrites the file from a ``pytest --report-log`` run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

DURATIONS = Path(__file__).with_name("durations.json")
#: what an unlisted test is taken to cost: most of the suite's tests are unit tests far under a second
UNLISTED_S = 0.2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    seconds = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    cost = {module: sum(seconds.get(i.nodeid, UNLISTED_S) for i in tests) for module, tests in modules.items()}
    items[:] = [item for module in sorted(modules, key=lambda m: -cost[m]) for item in modules[module]]


def _from_report_log(path: Path) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in path.read_text().splitlines():
        report = json.loads(line)
        if report.get("$report_type") == "TestReport":
            totals[report["nodeid"]] = totals.get(report["nodeid"], 0.0) + report["duration"]
    return {nodeid: round(s, 1) for nodeid, s in sorted(totals.items()) if s >= 1.0}


if __name__ == "__main__":
    DURATIONS.write_text(json.dumps(_from_report_log(Path(sys.argv[1])), indent=0) + "\n")
