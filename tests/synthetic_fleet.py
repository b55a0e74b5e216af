"""A seeded, simulator-like fleet of agent events for benchmarks and determinism tests.

Each agent runs traces: an invocation, model calls and tool calls (start and end), now and
then a forbidden tool, a loop, a secret read followed by an http post, a human approval
before a payment, a failure or a call that never returns. Streams are sealed with the real
:class:`StreamChain`, so records look exactly like what the sink hands an evaluator.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from agentaudit.schemas import AvroCodec, StreamChain, body_hash, frame_body

__all__ = ["fleet_records"]

BASE_US = 1_767_225_600_000_000
_TOOLS = ["search", "kv.get", "http.get", "db.query", "fs.read", "calendar.create"]
_MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "shady-llm-7b"]


def fleet_records(n_events: int, *, agents: int = 20, tenants: int = 2, seed: int = 0,
                  seal: bool = True, base_us: int = BASE_US, pace: int = 1) -> list[dict[str, Any]]:
    """About ``n_events`` action records from ``agents`` agents, in per-stream order, interleaved by time.

    :param base_us: event time of the start (epoch microseconds); default 2026-01-01T00:00:00Z.
    :param pace: stretch every gap and latency by this factor (a slower fleet spans more time).
    """
    rng = random.Random(seed)
    codec = AvroCodec("action") if seal else None
    uid = lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))  # noqa: E731 - seeded uuids
    per_agent: list[list[dict[str, Any]]] = []
    budget = n_events // agents + 1
    for a in range(agents):
        tenant = f"tenant-{a % tenants}"
        agent = f"agent-{a:03d}"
        stream = f"{tenant}/{agent}"
        clock = base_us + rng.randrange(0, 5_000_000)
        events: list[dict[str, Any]] = []

        def emit(**fields: Any) -> dict[str, Any]:
            rec = {
                "event_id": uid(), "tenant": tenant, "agent_id": agent, "agent_version": "1.0", "run_id": run,  # noqa: B023 - emit is called within this iteration only
                "trace_id": trace, "action_id": uid(), "parent_action_id": root, "links": [], "depth": 1,  # noqa: B023 - emit is called within this iteration only
                "stream_id": stream, "seq": 0, "prev_hash": "", "kind": "other", "name": "", "phase": "point",  # noqa: B023 - emit is called within this iteration only
                "status": "unset", "error_type": None, "error_message": None, "actor": {"type": "agent", "id": agent},  # noqa: B023 - emit is called within this iteration only
                "model": None, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "latency_us": None,
                "start_time_us": clock, "end_time_us": None, "event_time_us": clock, "input_digest": None,  # noqa: B023 - emit is called within this iteration only
                "output_digest": None, "input_body": None, "output_body": None, "payload_bytes": 0,
                "attributes": {}, "environment": "prod",
            }
            rec.update(fields)
            events.append(rec)  # noqa: B023 - emit is called within this iteration only
            return rec

        while len(events) < budget:
            run = uid()
            trace = uid()
            root = None
            start = emit(kind="invoke_agent", name="task", phase="start", depth=0)
            root = start["action_id"]
            for _ in range(rng.randint(2, 8)):
                clock += pace * rng.randrange(50_000, 3_000_000)
                roll = rng.random()
                if roll < 0.45:
                    latency = pace * rng.randrange(200_000, 4_000_000)
                    tin, tout = rng.randrange(100, 4000), rng.randrange(10, 1500)
                    emit(kind="chat", name="chat", phase="end", status="ok", model=rng.choice(_MODELS),
                         input_tokens=tin, output_tokens=tout, cost_usd=round((tin + 3 * tout) * 2.5e-6, 6),
                         latency_us=latency, start_time_us=clock - latency, end_time_us=clock,
                         payload_bytes=4 * (tin + tout))
                    continue
                name = rng.choice(_TOOLS)
                special = rng.random()
                digest = f"{rng.getrandbits(64):016x}"
                bound: dict[str, str] = {}  # an approval binds the call's arguments (the pack checks args_hash)
                if special < 0.02:
                    name = "shell.exec"
                elif special < 0.04:
                    emit(kind="execute_tool", name="vault.read", phase="start", input_digest=digest)
                    name = "http.post"
                elif special < 0.06:
                    bound = {"args_hash": digest}
                    emit(kind="approval", name="ok", actor={"type": "human", "id": "alice"}, attributes=dict(bound))
                    name = "payments.refund"
                elif special < 0.08:
                    for _ in range(5):
                        emit(kind="execute_tool", name="search", phase="start", input_digest="loop" * 16)
                call = emit(kind="execute_tool", name=name, phase="start", input_digest=digest, attributes=bound)
                if special > 0.995:
                    continue  # never returns
                latency = pace * rng.randrange(10_000, 2_500_000)
                clock += latency
                status = "error" if rng.random() < 0.05 else "ok"
                emit(kind="execute_tool", name=name, phase="end", status=status, action_id=call["action_id"],
                     latency_us=latency, start_time_us=clock - latency, end_time_us=clock,
                     error_type="ToolError" if status == "error" else None, payload_bytes=rng.randrange(100, 5000))
            clock += pace * rng.randrange(10_000, 500_000)
            emit(kind="invoke_agent", name="task", phase="end", status="ok", action_id=root, parent_action_id=None,
                 depth=0, start_time_us=start["event_time_us"], end_time_us=clock, latency_us=clock - start["event_time_us"])
        if codec is not None:
            chain = StreamChain(stream)
            for rec in events:
                rec["event_hash"] = body_hash(frame_body(chain.seal(rec, codec)))
        else:
            for seq, rec in enumerate(events):
                rec["seq"] = seq
                rec["event_hash"] = ""
        per_agent.append(events)
    merged = sorted((r for events in per_agent for r in events), key=lambda r: (r["event_time_us"], r["stream_id"], r["seq"]))
    for offset, rec in enumerate(merged):
        rec["_partition"] = 0
        rec["_offset"] = offset
    return merged
