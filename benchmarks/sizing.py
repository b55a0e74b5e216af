"""Sizing: how many processes and partitions serve a target rate, computed from measured figures.

The figures come from the newest results file under ``benchmarks/results/`` that holds every row of
``python -m benchmarks sizing`` (``bench_sizing.py``). :func:`plan` is pure arithmetic on them, so the
README's sizing tables can be regenerated (``python -m benchmarks.sizing`` prints the block that belongs
between the ``sizing:begin``/``sizing:end`` markers, ``--update-readme`` writes it there) and checked
(``tests/unit/test_sizing_guide.py``).

Assumptions, as the README states them: throughput scales linearly with processes as long as each
has a partition of its own; each process runs at :data:`UTILIZATION` of what one process measured
alone; the scale-out shape (``consume --no-rules`` + ``rules run``) is the one that scales; partition
counts leave the groups room to double; Kafka keeps :data:`REPLICATION` copies. ClickHouse server
capacity is not measured (only the embedded store runs here).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- sizing:begin -->", "<!-- sizing:end -->"
TARGETS: tuple[int, ...] = (10_000, 100_000, 1_000_000)
#: Share of a process's measured throughput it is planned at: room for bursts, rebalances and catch-up.
UTILIZATION = 0.6
#: Kafka copies of every record (the production topics' replication factor).
REPLICATION = 3
#: Partition counts are multiples of this (even spread over 2 or 3 brokers) ...
PARTITION_STEP = 6
#: ... and at least this many times the largest consumer group (room to scale out without re-partitioning).
PARTITION_HEADROOM = 2

KEYS = ("sink_store_only_eps", "sink_pack_eps", "rules_pack_eps", "rules_pack_cores", "rules_one_eps",
        "kafka_actions_bytes_single", "kafka_actions_bytes_batched", "kafka_repartition_bytes", "store_bytes",
        "events", "loadavg")


@dataclass(frozen=True, slots=True)
class Figures:
    """One run's measured figures (events/s per process, bytes per event)."""

    sink_store_only_eps: float
    sink_pack_eps: float
    rules_pack_eps: float
    rules_pack_cores: float
    rules_one_eps: float
    kafka_actions_bytes_single: float
    kafka_actions_bytes_batched: float
    kafka_repartition_bytes: float
    store_bytes: float
    events: float
    loadavg: float
    source: str = ""
    machine: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """What serves ``rate`` events/s in the scale-out shape."""

    rate: int
    sinks: int  #: ``agentaudit consume --no-rules`` processes
    rules_workers: int  #: ``agentaudit rules run`` processes
    partitions: int  #: of the actions and the repartition topic each
    kafka_mb_s: float  #: written into Kafka (actions + repartition copy), one copy, MB/s
    kafka_gb_day: float  #: written to the brokers' disks per day, all replicas, GB
    store_gb_day: float  #: ClickHouse ``actions`` on disk per day, one replica, GB


def processes(rate: float, per_process: float, utilization: float = UTILIZATION) -> int:
    """Processes needed to carry ``rate`` when each is planned at ``utilization`` of ``per_process``."""
    return max(1, math.ceil(rate / (per_process * utilization)))


def partitions_for(consumers: int, headroom: int = PARTITION_HEADROOM, step: int = PARTITION_STEP) -> int:
    """Partitions for a topic read by ``consumers`` processes: ``headroom`` times as many, a multiple of ``step``."""
    return step * math.ceil(consumers * headroom / step)


def plan(figures: Figures, rate: int, *, utilization: float = UTILIZATION, replication: int = REPLICATION) -> Plan:
    """The scale-out plan for ``rate`` events/s.

    Agents send one event per batch at worst (an SDK emitting slowly), so the actions topic is planned at
    ``kafka_actions_bytes_single``; the rules workers copy actions to the repartition topic in large batches.
    """
    sinks = processes(rate, figures.sink_store_only_eps, utilization)
    workers = processes(rate, figures.rules_pack_eps, utilization)
    kafka_bytes = figures.kafka_actions_bytes_single + figures.kafka_repartition_bytes
    return Plan(rate=rate, sinks=sinks, rules_workers=workers, partitions=partitions_for(max(sinks, workers)),
                kafka_mb_s=rate * kafka_bytes / 1e6, kafka_gb_day=rate * kafka_bytes * replication * 86_400 / 1e9,
                store_gb_day=rate * figures.store_bytes * 86_400 / 1e9)


def has_figures(doc: dict[str, Any]) -> bool:
    keys = {row.get("key") for row in doc.get("rows", []) if row.get("value") is not None}
    return all(k in keys for k in KEYS)


def latest_results(directory: Path = RESULTS) -> Path:
    """The newest results file (names are UTC timestamps) that holds every sizing figure."""
    for path in sorted(directory.glob("*.json"), reverse=True):
        if has_figures(json.loads(path.read_text(encoding="utf-8"))):
            return path
    raise FileNotFoundError(f"no results file under {directory} holds the sizing figures: "
                            "run `python -m benchmarks sizing` first")


def load_figures(path: Path | None = None) -> Figures:
    """The figures of ``path`` (default :func:`latest_results`)."""
    path = path or latest_results()
    doc = json.loads(path.read_text(encoding="utf-8"))
    values = {row["key"]: float(row["value"]) for row in doc["rows"] if row.get("key") in KEYS}
    missing = [k for k in KEYS if k not in values]
    if missing:
        raise KeyError(f"{path}: no sizing rows {missing}; run `python -m benchmarks sizing`")
    return Figures(**values, source=path.name, machine=doc.get("machine", ""))


def _n(value: float, decimals: int = 0) -> str:
    return f"{value:,.{decimals}f}"


def figure_rows(f: Figures) -> list[list[str]]:
    """The measured figures, as the README's table rows (figure, value)."""
    return [
        ["sink process, store only (`consume --no-rules`)", f"{_n(f.sink_store_only_eps)} events/s"],
        ["sink process, rule pack inline (plain `consume`)", f"{_n(f.sink_pack_eps)} events/s"],
        ["rules worker (`rules run`), rule pack", f"{_n(f.rules_pack_eps)} events/s"],
        ["rules worker (`rules run`), rule pack: CPU used meanwhile", f"{f.rules_pack_cores:.2f} cores"],
        ["rules worker (`rules run`), one stateless rule", f"{_n(f.rules_one_eps)} events/s"],
        ["Kafka, actions topic, one event per batch (planned)", f"{_n(f.kafka_actions_bytes_single)} B/event"],
        ["Kafka, actions topic, produced back to back", f"{_n(f.kafka_actions_bytes_batched)} B/event"],
        ["Kafka, repartition topic (the rules workers' copy)", f"{_n(f.kafka_repartition_bytes)} B/event"],
        ["store, `actions` on disk after merges", f"{_n(f.store_bytes)} B/event"],
    ]


PLAN_HEADER = ["events/s", "`consume --no-rules`", "`rules run`", "partitions (actions, repartition)",
               "Kafka in, MB/s", f"Kafka disk per day retained, GB (RF {REPLICATION})", "store, GB/day (per replica)"]


def plan_rows(f: Figures, targets: Sequence[int] = TARGETS) -> list[list[str]]:
    """The plan for each target rate, as the README's table rows (:data:`PLAN_HEADER`)."""
    return [[_n(p.rate), str(p.sinks), str(p.rules_workers), str(p.partitions), _n(p.kafka_mb_s, 1),
             _n(p.kafka_gb_day), _n(p.store_gb_day)] for p in (plan(f, t) for t in targets)]


def measured_line(f: Figures) -> str:
    stamp = f.source.removesuffix(".json")
    date = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]} UTC" if len(stamp) >= 13 else stamp
    return (f"Measured by `python -m benchmarks sizing` ({_n(f.events)} events per figure, results "
            f"`benchmarks/results/{f.source}`), {date}, on the 2-core build machine ({f.machine}), load average "
            f"{f.loadavg:.2f} at the end of the run.")


def limits_line(f: Figures, utilization: float = UTILIZATION) -> str:
    return (f"Limits at {utilization:.0%} utilization: one plain `agentaudit consume` (rule pack inline, the single-"
            f"process shape) serves up to {_n(f.sink_pack_eps * utilization)} events/s; each rule key (a trace, an "
            f"agent, a stream, or a tenant for a rule keyed by nothing finer) is judged by one rules worker, so no "
            f"one key may send more than {_n(f.rules_pack_eps * utilization)} events/s.")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


FIGURES_HEADER = ["measured, per process", "value"]


def markdown(f: Figures, targets: Sequence[int] = TARGETS) -> str:
    """The README block between ``<!-- sizing:begin -->`` and ``<!-- sizing:end -->``."""
    return "\n\n".join([measured_line(f), table(FIGURES_HEADER, figure_rows(f)),
                        table(PLAN_HEADER, plan_rows(f, targets)), limits_line(f)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sizing", description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, help="a results JSON file; default the newest with "
                        "the sizing figures under benchmarks/results/")
    parser.add_argument("--update-readme", action="store_true",
                        help="replace the block between the sizing markers of README.md instead of printing it")
    args = parser.parse_args(argv)
    try:
        figures = load_figures(args.results)
    except (FileNotFoundError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    block = markdown(figures)
    if not args.update_readme:
        print(block)
        return 0
    text = README.read_text(encoding="utf-8")
    begin, end = text.find(BEGIN), text.find(END)
    if begin < 0 or end < begin:
        print(f"error: {README} has no {BEGIN} ... {END} block", file=sys.stderr)
        return 1
    README.write_text(f"{text[:begin + len(BEGIN)]}\n{block}\n{text[end:]}", encoding="utf-8")
    print(f"{README}: sizing block from {figures.source}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
