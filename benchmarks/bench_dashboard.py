"""Dashboard speed with 10M action events in the store: the incidents list and a 1,000-action trace.

Inserts N synthetic action events (default 10,000,000: 5,000 traces of 1,000 actions, a start and an
end event each, over the last 7 days, 4 tenants, 200 agents) as Arrow chunks into a fresh
``agentaudit store``, plus incidents and lifecycle events, then times what the pages load, as the
median of several runs over the dashboard's read-only HTTP session:

- the incidents list (``queries.incidents``: open first, state folded from the lifecycle), unfiltered
  and filtered by severity;
- one whole 1,000-action trace (``queries.trace``: 2,000 events, ``LIMIT 1 BY event_id``), and the
  same plus folding it into the action tree and drawing the collapsed chain graph (DOT).

Goal: each ≤ 300 ms. ``python -m benchmarks dashboard`` (``AGENTAUDIT_BENCH_DASHBOARD_EVENTS`` sets N;
``AGENTAUDIT_BENCH_DASHBOARD_LAYOUT=before`` loads the ``actions`` layout before issue 15 instead, to compare).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from agentaudit.consumers._columns import ACTIONS_SCHEMA, INCIDENTS_SCHEMA, LIFECYCLE_SCHEMA, stored_actions
from agentaudit.consumers.migrate import migrate
from agentaudit.dashboard import IncidentFilter, TraceTree, to_dot
from agentaudit.dashboard import queries as q
from agentaudit.infra.clickhouse import Store, connect
from agentaudit.infra.embedded import ManagedProcess, free_port
from agentaudit.settings import StoreSettings
from benchmarks._layout_before import actions_before_ddl

ACTIONS_PER_TRACE = 1_000
EVENTS_PER_TRACE = 2 * ACTIONS_PER_TRACE
CHUNK_TRACES = 250  # 500,000 events per insert
TENANTS = ["acme", "globex", "initech", "umbrella"]
AGENTS = 200
INCIDENTS = 20_000
RUNS = 9
GOAL_MS = 300.0

_KINDS = ["chat", "execute_tool", "execute_tool", "execute_tool", "plan", "invoke_agent"]
_NAMES = ["gpt-4o", "search", "http.get", "db.query", "planner", "sub-agent"]
_STATUSES = ["ok"] * 18 + ["error", "timeout"]


def _strings(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


def _pick(values: list[str], index: np.ndarray) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(index.astype(np.int32)), pa.array(values)).cast(pa.string())


def actions_chunk(first_trace: int, traces: int, now_us: int, rng: np.random.Generator, *,
                  stored: bool = True) -> pa.Table:
    """``traces`` traces of 1,000 actions: a 4-ary causal tree each, start and end events interleaved."""
    n = traces * EVENTS_PER_TRACE
    event_no = np.arange(first_trace * EVENTS_PER_TRACE, first_trace * EVENTS_PER_TRACE + n, dtype=np.int64)
    trace_no = event_no // EVENTS_PER_TRACE
    action_no = (event_no % EVENTS_PER_TRACE) // 2
    is_end = (event_no % 2).astype(bool)
    agent_no = trace_no % AGENTS
    tenant_no = agent_no % len(TENANTS)
    parent_no = (action_no - 1) // 4
    depth = np.floor(np.log(3 * action_no + 1) / np.log(4)).astype(np.uint16)
    trace_start = now_us - (trace_no * 104_729_000) % (7 * 86_400_000_000) - 3_600_000_000
    latency = rng.integers(2_000, 900_000, size=n)
    start = trace_start + action_no * 2_000
    end = start + latency
    kind_ix = rng.integers(0, len(_KINDS), size=n)
    kind_ix[action_no == 0] = 5
    status_ix = rng.integers(0, len(_STATUSES), size=n)
    trace_ids = _strings("trace-", trace_no)
    action_ids = pc.binary_join_element_wise(trace_ids, _strings("a", action_no), "-")
    parent_ids = pc.if_else(pa.array(action_no == 0), "",
                            pc.binary_join_element_wise(trace_ids, _strings("a", parent_no), "-"))
    empty_strings = pa.repeat("", n)
    zeros = np.zeros(n, dtype=np.uint64)
    chat = kind_ix == 0
    columns = {
        "event_id": _strings("ev-", event_no), "tenant": _pick(TENANTS, tenant_no),
        "agent_id": _strings("agent-", agent_no), "agent_version": pa.repeat("1.0", n),
        "run_id": _strings("run-", trace_no), "trace_id": trace_ids, "action_id": action_ids,
        "parent_action_id": parent_ids,
        "links": pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], pa.string())),
        "depth": pa.array(depth), "stream_id": _strings("stream-", agent_no), "seq": pa.array(event_no.astype(np.uint64)),
        "prev_hash": empty_strings, "event_hash": empty_strings, "kind": _pick(_KINDS, kind_ix),
        "name": _pick(_NAMES, kind_ix), "phase": pc.if_else(pa.array(is_end), "end", "start"),
        "status": pc.if_else(pa.array(is_end), _pick(_STATUSES, status_ix), "unset"),
        "error_type": empty_strings, "error_message": empty_strings, "actor_type": pa.repeat("agent", n),
        "actor_id": _strings("agent-", agent_no), "model": pc.if_else(pa.array(chat), "gpt-4o", ""),
        "input_tokens": pa.array(np.where(chat & is_end, 300, 0).astype(np.uint64)),
        "output_tokens": pa.array(np.where(chat & is_end, 120, 0).astype(np.uint64)),
        "cost_usd": pa.array(np.where(chat & is_end, 0.002, 0.0)),
        "latency_us": pa.array(latency.astype(np.uint64), mask=~is_end),
        "start_time": pa.array(start, pa.timestamp("us", tz="UTC")),
        "end_time": pa.array(end, pa.timestamp("us", tz="UTC"), mask=~is_end),
        "event_time": pa.array(np.where(is_end, end, start), pa.timestamp("us", tz="UTC")),
        "input_digest": empty_strings, "output_digest": empty_strings, "input_body": empty_strings,
        "output_body": empty_strings, "payload_bytes": pa.array(zeros),
        "attributes": pa.MapArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], pa.string()),
                                              pa.array([], pa.string())),
        "environment": pa.repeat("prod", n),
        "kafka_partition": pa.array((agent_no % 3).astype(np.uint16)), "kafka_offset": pa.array(event_no.astype(np.uint64)),
        "later_copy": pa.array(np.zeros(n, dtype=np.uint8)), "signature": pa.repeat("", n),
    }
    table = pa.Table.from_pydict(columns, schema=ACTIONS_SCHEMA)
    return stored_actions(table) if stored else table


def incidents_tables(traces: int, now_us: int, rng: np.random.Generator) -> tuple[pa.Table, pa.Table]:
    """INCIDENTS incidents on random traces (severities mixed) and lifecycle events for two thirds of them."""
    rows, lifecycle = [], []
    severities = ["info", "low", "medium", "high", "critical"]
    for i in range(INCIDENTS):
        trace = int(rng.integers(0, traces))
        rank = int(rng.integers(0, 5))
        first = now_us - int(rng.integers(0, 7 * 86_400_000_000))
        rows.append(dict(incident_id=f"inc-{i:06d}", tenant=TENANTS[(trace % AGENTS) % len(TENANTS)],
                         rule_id=f"rule.{i % 39}", rule_revision="rev-bench", severity=severities[rank],
                         severity_rank=rank, mode="detect", owner=f"team-{i % 12}", key=f"agent-{trace % AGENTS}",
                         window_start=first, window_end=first + 60_000_000, agent_id=f"agent-{trace % AGENTS}",
                         trace_id=f"trace-{trace}", event_ids=[f"ev-{trace * EVENTS_PER_TRACE + 1999}"],
                         first_seen=first, last_seen=first + 1_000_000, count=1, summary=f"bench incident {i}",
                         tags=["bench"], attributes={}))
        for step, kind in enumerate(["acknowledged", "resolved"][: i % 3]):
            lifecycle.append(dict(event_id=f"lc-{i}-{step}", incident_id=f"inc-{i:06d}", tenant="acme", type=kind,
                                  actor_type="human", actor_id="oncall", assignee="", note="",
                                  at=first + (step + 1) * 300_000_000, attributes={}))
    return (pa.Table.from_pylist(rows, schema=INCIDENTS_SCHEMA),
            pa.Table.from_pylist(lifecycle, schema=LIFECYCLE_SCHEMA))


def _median_ms(work: Callable[[int], object], runs: int = RUNS) -> tuple[float, list[float]]:
    work(-1)  # warm-up: connection pool, parsing, marks in the page cache
    timings = []
    for run in range(runs):
        began = time.perf_counter()
        work(run)
        timings.append((time.perf_counter() - began) * 1000)
    return statistics.median(timings), timings


def load(store: Store, events: int, *, before: bool = False) -> dict[str, float]:
    """Insert ``events`` action events (rounded to whole traces) plus incidents; returns load figures."""
    rng = np.random.default_rng(7)
    now_us = time.time_ns() // 1000
    traces = max(1, events // EVENTS_PER_TRACE)
    began = time.perf_counter()
    inserted = 0
    for first in range(0, traces, CHUNK_TRACES):
        chunk = actions_chunk(first, min(CHUNK_TRACES, traces - first), now_us, rng, stored=not before)
        inserted += store.insert_arrow("actions", chunk)
    elapsed = time.perf_counter() - began
    incidents, lifecycle = incidents_tables(traces, now_us, rng)
    store.insert_arrow("incidents", incidents)
    store.insert_arrow("incident_lifecycle", lifecycle)
    return {"events": inserted, "traces": traces, "insert_s": elapsed, "rate": inserted / elapsed}


def run() -> list[dict]:
    events = int(os.environ.get("AGENTAUDIT_BENCH_DASHBOARD_EVENTS", "10000000"))
    work_dir = Path(tempfile.mkdtemp(prefix="agentaudit-bench-dashboard-"))
    port = free_port()
    server = ManagedProcess("store", [sys.executable, "-m", "agentaudit.infra.store", "--data-dir",
                                      str(work_dir / "store"), "--port", str(port)],
                            log_path=work_dir / "store.log", ready_port=port)
    server.start()
    rows: list[dict] = []
    try:
        settings = StoreSettings(clickhouse_url=f"http://127.0.0.1:{port}", database="bench")
        migrate(settings)
        before = os.environ.get("AGENTAUDIT_BENCH_DASHBOARD_LAYOUT") == "before"
        if before:  # the layout before issue 15 (hex hashes, full-copy by_trace), to compare in a second run
            with connect(settings) as admin:
                admin.command("DROP TABLE actions")
                admin.command(actions_before_ddl(settings, "actions"))
        with connect(settings) as writer:
            figures = load(writer, events, before=before)
            count = writer.query("SELECT count() FROM actions").first_item
        print(f"loaded {figures['events']:,} events ({figures['traces']:,} traces of {ACTIONS_PER_TRACE} actions) "
              f"in {figures['insert_s']:.1f}s ({figures['rate']:,.0f} rows/s); {count:,} rows in the store",
              file=sys.stderr)
        rows.append({"name": "load: Arrow insert of the synthetic actions", "value": figures["rate"], "unit": "rows/s",
                     "baseline": None, "baseline_name": "", "ratio": None, "goal": f"{figures['events']:,} rows"})
        rng = np.random.default_rng(11)
        trace_numbers = rng.integers(0, figures["traces"], size=RUNS + 1)
        with connect(settings, readonly=True) as reader:
            select_one, _ = _median_ms(lambda _: reader.query("SELECT 1"))
            cases: list[tuple[str, Callable[[int], object]]] = [
                ("incidents list (all, open first, state folded)", lambda _: q.incidents(reader)),
                ("incidents list (severity critical+high)",
                 lambda _: q.incidents(reader, IncidentFilter(severities=("critical", "high")))),
                ("1,000-action trace (2,000 events)",
                 lambda run: _trace(reader, trace_numbers[run])),
                ("1,000-action trace + tree + collapsed chain graph",
                 lambda run: _trace_graph(reader, trace_numbers[run])),
            ]
            for name, work in cases:
                median, timings = _median_ms(work)
                print(f"{name}: median {median:.1f} ms over {RUNS} runs (min {min(timings):.1f}, "
                      f"max {max(timings):.1f})", file=sys.stderr)
                rows.append({"name": name, "value": median, "unit": "ms (median)", "baseline": select_one,
                             "baseline_name": "SELECT 1 round trip", "ratio": median / select_one,
                             "goal": f"<= {GOAL_MS:.0f} ms with {count:,} events"})
    finally:
        server.stop()
    return rows


def _trace(store: Store, trace_number: int):
    trace_id = f"trace-{trace_number}"
    tenant = TENANTS[(trace_number % AGENTS) % len(TENANTS)]
    frame = q.trace(store, tenant, trace_id)
    if len(frame) != EVENTS_PER_TRACE:
        raise AssertionError(f"{trace_id}: {len(frame)} events, expected {EVENTS_PER_TRACE}")
    return frame


def _trace_graph(store: Store, trace_number: int) -> str:
    frame = _trace(store, trace_number)
    tree = TraceTree.from_events(frame.to_dict("records"))
    last = f"trace-{trace_number}-a{ACTIONS_PER_TRACE - 1}"
    return to_dot(tree, targets=[last], max_nodes=80)


if __name__ == "__main__":
    for row in run():
        print(row)
