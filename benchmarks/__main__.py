"""``python -m benchmarks``: run every benchmark and print one table, each figure beside its baseline.

Each ``benchmarks/bench_*.py`` module exposes ``run() -> list[dict]`` with rows of
``name, value, unit, baseline, baseline_name, ratio, goal``. The table is also written as JSON under
``benchmarks/results/`` so that runs can be compared.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import platform
import sys
import time
import traceback
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
#: names that select a benchmark living in another module: Phoenix runs beside agentaudit's end-to-end figure
ALIASES = {"phoenix": "e2e", "peer": "e2e"}


def _modules(only: list[str]) -> list[str]:
    only = [ALIASES.get(o, o) for o in only]
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))
    return [n for n in names if not only or any(o in n for o in only)]


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return "" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="run only benchmarks whose module name contains one of these")
    args = parser.parse_args(argv)
    rows: list[dict] = []
    failures = 0
    for name in _modules(args.only):
        began = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            produced = module.run()
        except Exception:  # noqa: BLE001 - one failing benchmark is recorded as FAILED and the others still run
            failures += 1
            traceback.print_exc()
            rows.append({"bench": name, "name": "FAILED", "value": None, "unit": ""})
            continue
        rows.extend({"bench": name, **row} for row in produced)
        print(f"  {name} took {time.perf_counter() - began:.1f}s", file=sys.stderr, flush=True)
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="agentaudit benchmarks")
    for column in ("bench", "figure", "value", "unit", "baseline", "baseline value", "ratio", "goal"):
        table.add_column(column)
    for r in rows:
        cells = (r["bench"].removeprefix("bench_"), r.get("name", ""), _fmt(r.get("value")), r.get("unit", ""),
                 r.get("baseline_name", ""), _fmt(r.get("baseline")), _fmt(r.get("ratio")), r.get("goal", ""))
        table.add_row(*(escape(c or "") for c in cells))  # figures are plain text: "[peer]" is not a style
    Console(width=200).print(table)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"machine": platform.platform(), "python": platform.python_version(),
                               "rows": rows}, indent=2, default=str))
    print(f"results written to {out}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
