"""Rule state snapshots: the cost of ``RuleEvaluator.snapshot()``/``restore()`` per batch, default pack.

``agentaudit consume --state-dir`` snapshots rule state after every batch, so the snapshot is on
the hot path. The simulator's log (50k events, decoded as the sink decodes them) is judged in
10k-event batches; after each batch the state is snapshotted and restored into a fresh evaluator.
The baseline is the standard-library ``json.dumps`` that ``snapshot()`` used before orjson, run in
the same process on the same state (it is still its fallback); ``restore()`` still reads with the
standard library (exact for every integer, and run once per start).
``python -m benchmarks rule_state`` (``AGENTAUDIT_BENCH_STATE_EVENTS`` sets N, default 50000).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from agentaudit.consumers.rule_state import PartitionEvaluators, PartitionStateStore
from agentaudit.rules import evaluator as evaluator_module
from agentaudit.rules import load_evaluator
from agentaudit.schemas import AvroCodec
from benchmarks._stack import simulated

BATCH_SIZE = 10_000
ROUNDS = 3


class _StdlibOnly:
    """Stands in for orjson inside the evaluator module: ``snapshot()`` takes its standard-library fallback."""

    JSONEncodeError = TypeError
    OPT_SORT_KEYS = 0

    @staticmethod
    def dumps(*_: Any, **__: Any) -> bytes:
        raise TypeError("baseline: standard library")


@contextlib.contextmanager
def _stdlib_json() -> Iterator[None]:
    saved = evaluator_module.orjson
    evaluator_module.orjson = _StdlibOnly  # type: ignore[assignment, attr-defined]  # the stdlib baseline
    try:
        yield
    finally:
        evaluator_module.orjson = saved


def _best(fn: Callable[[], Any]) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(ROUNDS):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best * 1e3, out


def _records(n: int) -> list[dict[str, Any]]:
    records, _, failures = AvroCodec("action").decode_batch([value for _, value in simulated(n)])
    if failures:
        raise RuntimeError(f"benchmark: {len(failures)} simulator events did not decode")
    return records


def run() -> list[dict]:
    n = int(os.environ.get("AGENTAUDIT_BENCH_STATE_EVENTS", "50000"))
    records = _records(n)
    evaluator = load_evaluator(None)
    new_ms, old_ms, restore_ms, new_bytes, old_bytes = [], [], [], [], []
    for start in range(0, len(records), BATCH_SIZE):
        evaluator.evaluate(records[start:start + BATCH_SIZE])
        took, snap = _best(evaluator.snapshot)
        new_ms.append(took)
        new_bytes.append(len(snap))
        with _stdlib_json():
            took, old = _best(evaluator.snapshot)
        old_ms.append(took)
        old_bytes.append(len(old))
        if json.loads(snap) != json.loads(old):
            raise RuntimeError("benchmark: orjson and the standard library snapshot different state")
        fresh = load_evaluator(None)  # compiled outside the timing; restore() replaces all its state
        restore_ms.append(_best(lambda: fresh.restore(snap))[0])  # noqa: B023 - _best calls the lambda within this iteration
    # the whole per-batch write of `consume --state-dir`: snapshot, sha256, write, fsync, rename (one partition)
    with tempfile.TemporaryDirectory() as state_dir:
        partitions = PartitionEvaluators(lambda: load_evaluator(None), PartitionStateStore(state_dir), "bench")
        partitions.assign("agentaudit.actions", 0)
        evaluator = partitions.get("agentaudit.actions", 0)
        judging = writing = 0.0
        snapshots = 0
        for start in range(0, len(records), BATCH_SIZE):
            began = time.perf_counter()
            evaluator.evaluate([dict(r) for r in records[start:start + BATCH_SIZE]])
            judged = time.perf_counter()
            partitions.snapshot({("agentaudit.actions", 0): start + BATCH_SIZE})
            writing += time.perf_counter() - judged
            judging += judged - began
            snapshots += 1
        write_ms = writing / snapshots * 1e3
        judge_ms = judging / snapshots * 1e3
        partitions.close()
    batches = len(new_ms)
    mean = statistics.fmean
    return [
        {"name": f"snapshot() per {BATCH_SIZE // 1000}k-event batch (mean of {batches}, default pack)",
         "value": mean(new_ms), "unit": "ms", "baseline": mean(old_ms), "baseline_name": "stdlib json.dumps",
         "ratio": mean(new_ms) / mean(old_ms), "goal": None},
        {"name": "snapshot() worst batch", "value": max(new_ms), "unit": "ms", "baseline": max(old_ms),
         "baseline_name": "stdlib json.dumps", "ratio": max(new_ms) / max(old_ms), "goal": None},
        {"name": "restore() of a batch's snapshot, once per start (mean)", "value": mean(restore_ms), "unit": "ms",
         "baseline": None, "baseline_name": "stdlib json.loads, unchanged", "ratio": None, "goal": None},
        {"name": "snapshot size (mean per batch)", "value": mean(new_bytes) / 1e6, "unit": "MB",
         "baseline": mean(old_bytes) / 1e6, "baseline_name": "stdlib json", "ratio": mean(new_bytes) / mean(old_bytes),
         "goal": None},
        {"name": "consume --state-dir write per batch (snapshot+sha256+fsync)", "value": write_ms, "unit": "ms",
         "baseline": judge_ms, "baseline_name": "judging the batch", "ratio": write_ms / judge_ms, "goal": None},
    ]
