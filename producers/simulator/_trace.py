"""One simulated trace: an agent invocation and everything it causes, as time-ordered records.

The builder walks the trace depth-first with one clock that only moves forward, so the
records come out in event-time order and every parent is emitted before its children.
All randomness comes from the simulator's ``random.Random``; nothing reads the wall clock.
"""

from __future__ import annotations

import hashlib
import math
from random import Random
from typing import Any
from uuid import UUID

from agentaudit.producers.simulator._fleet import (
    CONSEQUENTIAL_TOOLS,
    EGRESS_TOOLS,
    ERROR_TYPES,
    EXPENSIVE_MODELS,
    FORBIDDEN_TOOLS,
    MODEL_PRICES,
    SECRET_TOOLS,
    TOOL_ARGS,
    TOOL_MEDIAN_S,
    WORDS,
    Agent,
)
from agentaudit.producers.simulator.config import FAULT_KINDS
from agentaudit.schemas.canonical import canonical_bytes, canonical_json

__all__ = ["FAULT_ATTRIBUTE", "TimedRecord", "build_trace", "canonical_digest"]

FAULT_ATTRIBUTE = "sim.fault"
TimedRecord = tuple[int, int, dict[str, Any]]
"""``(event_time_us, agent index, record)``; the record is sealed into the agent's stream later."""

_LOG_MEDIAN = {tool: math.log(s) for tool, s in TOOL_MEDIAN_S.items()}
_DEFAULT_LOG_MEDIAN = math.log(0.2)
_NORMAL_ERROR_RATE = 0.004
_MAX_NORMAL_HANDOFFS = 2
_SEARCH_TOOLS = ("search.web", "http.get")
_APPROVAL_TTL_US = 900_000_000  # approvals last 15 minutes, the SDK's default


def canonical_digest(args: Any) -> str:
    """SHA-256 hex of the RFC 8785 canonical JSON of ``args``: an approval's ``args_hash``, as the SDK computes it."""
    return hashlib.sha256(canonical_bytes(args)).hexdigest()


def build_trace(rng: Random, fleet: list[Agent], peers: dict[str, list[Agent]], root: Agent,
                rates: dict[str, float], start_us: int) -> tuple[list[TimedRecord], list[str], int]:
    """A whole trace started by ``root`` at ``start_us``.

    :returns: ``(records, injected failure modes, end time in µs)``.
    """
    faults = [kind for kind in FAULT_KINDS if rng.random() < rates[kind]]
    builder = _TraceBuilder(rng, peers, root, start_us)
    builder.run(faults)
    return builder.out, faults, builder.t


class _TraceBuilder:
    __slots__ = ("rng", "peers", "tenant", "out", "t", "trace_id", "run_id", "_root", "secret_read")

    def __init__(self, rng: Random, peers: dict[str, list[Agent]], root: Agent, start_us: int) -> None:
        self.rng = rng
        self.peers = peers
        self.tenant = root.tenant
        self.out: list[TimedRecord] = []
        self.t = start_us
        self.trace_id = ""
        self.run_id = self._uuid()
        self._root = root
        self.secret_read = False  # after a secret, normal traffic sends nothing out (that would be exfiltration)

    # -- ids, time and records ---------------------------------------------------------------

    def _uuid(self) -> str:
        return str(UUID(int=self.rng.getrandbits(128), version=4))

    def _hex(self) -> str:
        return f"{self.rng.getrandbits(256):064x}"

    def _tick(self, low_us: int = 1_000, high_us: int = 20_000) -> None:
        self.t += self.rng.randrange(low_us, high_us)

    def _record(self, agent: Agent, action_id: str, parent: str | None, depth: int, kind: str, name: str,
                phase: str, status: str, attrs: dict[str, str], *, actor: dict[str, str] | None = None,
                links: list[str] | None = None) -> dict[str, Any]:
        t = self.t
        return {
            "event_id": self._uuid(), "tenant": self.tenant, "agent_id": agent.agent_id,
            "agent_version": agent.version, "run_id": self.run_id, "trace_id": self.trace_id or action_id,
            "action_id": action_id, "parent_action_id": parent, "links": links or [], "depth": depth,
            "stream_id": "", "seq": 0, "prev_hash": "", "kind": kind, "name": name, "phase": phase,
            "status": status, "error_type": None, "error_message": None,
            "actor": actor or {"type": "agent", "id": agent.agent_id},
            "model": None, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "latency_us": None,
            "start_time_us": t, "end_time_us": t if phase == "point" else None, "event_time_us": t,
            "input_digest": None, "output_digest": None, "input_body": None, "output_body": None,
            "payload_bytes": 0, "attributes": attrs, "environment": agent.environment,
        }

    def _attrs(self, agent: Agent, fault: str | None) -> dict[str, str]:
        attrs = {"team": agent.team, "owner": agent.team}
        if fault:
            attrs[FAULT_ATTRIBUTE] = fault
        return attrs

    def _emit(self, agent: Agent, record: dict[str, Any]) -> None:
        self.out.append((self.t, agent.index, record))

    def _start(self, agent: Agent, parent: str | None, depth: int, kind: str, name: str,
               fault: str | None, **extra: Any) -> dict[str, Any]:
        action_id = self._uuid()
        record = self._record(agent, action_id, parent, depth, kind, name, "start", "unset",
                              self._attrs(agent, fault), links=extra.pop("links", None))
        if extra:
            record.update(extra)
        self._emit(agent, record)
        return record

    def _end(self, agent: Agent, start: dict[str, Any], status: str = "ok", **extra: Any) -> None:
        record = dict(start)
        record["event_id"] = self._uuid()
        record["attributes"] = dict(start["attributes"])
        record["links"] = list(start["links"])
        record.update(phase="end", status=status, end_time_us=self.t, event_time_us=self.t,
                      latency_us=self.t - start["start_time_us"])
        if extra:
            record.update(extra)
        self._emit(agent, record)

    def _point(self, agent: Agent, parent: str | None, depth: int, kind: str, name: str, fault: str | None,
               *, status: str = "ok", actor: dict[str, str] | None = None, attrs: dict[str, str] | None = None,
               links: list[str] | None = None) -> str:
        action_id = self._uuid()
        merged = self._attrs(agent, fault)
        if attrs:
            merged.update(attrs)
        self._emit(agent, self._record(agent, action_id, parent, depth, kind, name, "point", status, merged,
                                       actor=actor, links=links))
        self._tick()
        return action_id

    # -- building blocks ---------------------------------------------------------------------

    def _args(self, tool: str) -> dict[str, str]:
        rng = self.rng
        n, w = rng.randrange(1, 100_000), WORDS[rng.randrange(len(WORDS))]
        return {k: v.format(n=n, w=w) for k, v in TOOL_ARGS.get(tool, {"input": "{w}-{n}"}).items()}

    def tool(self, agent: Agent, parent: str, depth: int, tool: str, fault: str | None = None, *,
             args: dict[str, str] | None = None, status: str | None = None, latency_s: float | None = None,
             links: list[str] | None = None, hung: bool = False, attrs: dict[str, str] | None = None) -> str:
        """One tool call (start + end, or start only when ``hung``); ``attrs`` are added to its attributes."""
        rng = self.rng
        args = args if args is not None else self._args(tool)
        body = canonical_json(args)
        digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
        start = self._start(agent, parent, depth, "execute_tool", tool, fault, input_digest=digest,
                            payload_bytes=len(body), links=links)
        action_id: str = start["action_id"]
        url = args.get("url")
        if url:
            start["attributes"]["http.url"] = url
        if attrs:
            start["attributes"].update(attrs)
        if hung:
            self._tick()
            return action_id
        if latency_s is None:
            latency_s = rng.lognormvariate(_LOG_MEDIAN.get(tool, _DEFAULT_LOG_MEDIAN), 0.5)
        self.t += max(1, int(latency_s * 1_000_000))
        if status is None:
            status = "error" if rng.random() < _NORMAL_ERROR_RATE else "ok"
        if status == "ok":
            self._end(agent, start, output_digest=self._hex(), payload_bytes=len(body) + rng.randrange(64, 8192))
        else:
            error_type, message = ERROR_TYPES[rng.randrange(len(ERROR_TYPES))]
            if status == "timeout":
                error_type, message = "TimeoutError", f"{tool} did not answer within {latency_s:.0f}s"
            self._end(agent, start, status, error_type=error_type, error_message=message)
        self._tick()
        return action_id

    def chat(self, agent: Agent, parent: str, depth: int, fault: str | None = None, *, expensive: bool = False) -> None:
        """One model call with tokens and cost from the price table."""
        rng = self.rng
        if expensive:
            model = EXPENSIVE_MODELS[rng.randrange(len(EXPENSIVE_MODELS))]
            tokens_in, tokens_out = rng.randrange(200_000, 500_000), rng.randrange(10_000, 40_000)
            latency_s = rng.uniform(10.0, 40.0)
        else:
            model = agent.models[rng.randrange(len(agent.models))]
            tokens_in, tokens_out = rng.randrange(300, 6_000), rng.randrange(40, 900)
            latency_s = 0.25 + tokens_out / 160.0 * rng.uniform(0.7, 1.3)
        price_in, price_out = MODEL_PRICES[model]
        cost = round((tokens_in * price_in + tokens_out * price_out) / 1_000_000, 6)
        start = self._start(agent, parent, depth, "chat", model, fault, model=model, input_digest=self._hex())
        self.t += int(latency_s * 1_000_000)
        self._end(agent, start, input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=cost,
                  output_digest=self._hex())
        self._tick()

    def approved_tool(self, agent: Agent, parent: str, depth: int, tool: str) -> None:
        """A consequential tool call, preceded by a named human's approval bound to its arguments.

        Both carry ``args_hash`` and ``approval_id`` and the approval ``expires_at_us``, as the SDK
        records them (agentaudit.control.approvals), so the rule pack's approval binding holds.
        """
        rng = self.rng
        args = self._args(tool)
        digest = canonical_digest(args)
        approver = agent.humans[rng.randrange(len(agent.humans))]
        approval_id = self._uuid()
        approval = self._point(agent, parent, depth, "approval", f"approve {tool}", None,
                               actor={"type": "human", "id": approver},
                               attrs={"approval.tool": tool, "approval.args_hash": digest,
                                      "approval.approver": approver, "approval_id": approval_id,
                                      "args_hash": digest, "expires_at_us": str(self.t + _APPROVAL_TTL_US)})
        self.t += rng.randrange(2_000_000, 20_000_000)  # a person takes a few seconds
        self.tool(agent, parent, depth, tool, args=args, links=[approval],
                  attrs={"args_hash": digest, "approval_id": approval_id})

    def _peer(self, agent: Agent) -> Agent | None:
        peers = self.peers[agent.tenant]
        if len(peers) < 2:
            return None
        while True:
            other = peers[self.rng.randrange(len(peers))]
            if other is not agent:
                return other

    def handoff(self, agent: Agent, parent: str, depth: int, handoffs_left: int) -> None:
        """A handoff to a peer of the same tenant, which then runs its own steps under it."""
        target = self._peer(agent)
        if target is None:
            return
        handoff = self._point(agent, parent, depth, "handoff", target.agent_id, None,
                              attrs={"handoff.from": agent.agent_id, "handoff.to": target.agent_id})
        self.invoke(target, handoff, depth + 1, self.rng.randint(1, 3), handoffs_left - 1, {})

    # -- a whole agent run -------------------------------------------------------------------

    def run(self, faults: list[str]) -> None:
        rng = self.rng
        steps = rng.randint(2, 6)
        placed: dict[int, list[str]] = {}
        for kind in faults:
            placed.setdefault(rng.randrange(steps), []).append(kind)
        self.invoke(self._root, None, 0, steps, _MAX_NORMAL_HANDOFFS, placed)

    def invoke(self, agent: Agent, parent: str | None, depth: int, steps: int, handoffs_left: int,
               faults: dict[int, list[str]]) -> None:
        rng = self.rng
        root = self._start(agent, parent, depth, "invoke_agent", agent.agent_id, None)
        if not self.trace_id:
            self.trace_id = root["action_id"]
        me, child = root["action_id"], depth + 1
        self._tick()
        self._point(agent, me, child, "plan", "plan", None, attrs={"plan.steps": str(steps)})
        for step in range(steps):
            self.chat(agent, me, child)
            roll = rng.random()
            if roll < 0.7:
                tool = agent.tools[rng.choices(range(len(agent.tools)), agent.tool_weights)[0]]
                if tool in CONSEQUENTIAL_TOOLS:
                    self.approved_tool(agent, me, child, tool)
                elif not (self.secret_read and tool in EGRESS_TOOLS):
                    self.secret_read = self.secret_read or tool in SECRET_TOOLS
                    self.tool(agent, me, child, tool)
            elif roll < 0.8 and handoffs_left > 0:
                self.handoff(agent, me, child, handoffs_left)
            elif roll < 0.9:
                self._point(agent, me, child, "decision", "choose_next_step", None,
                            attrs={"decision.option": WORDS[rng.randrange(len(WORDS))]})
            for kind in faults.get(step, ()):
                _INJECT[kind](self, agent, me, child)
        self._point(agent, me, child, "message", "reply", None)
        self._end(agent, root)
        self._tick()

    # -- failure modes (each tags its events with sim.fault) ---------------------------------

    def _plain_tool(self, agent: Agent) -> str:
        while True:
            tool = agent.tools[self.rng.randrange(len(agent.tools))]
            if tool not in CONSEQUENTIAL_TOOLS:
                return tool

    def fault_loop(self, agent: Agent, parent: str, depth: int) -> None:
        tool = self._plain_tool(agent)
        args = self._args(tool)
        for _ in range(self.rng.randint(8, 14)):
            self.tool(agent, parent, depth, tool, "loop", args=args, status="ok")

    def fault_budget(self, agent: Agent, parent: str, depth: int) -> None:
        for _ in range(self.rng.randint(5, 9)):
            self.chat(agent, parent, depth, "budget", expensive=True)

    def fault_forbidden(self, agent: Agent, parent: str, depth: int) -> None:
        tool = FORBIDDEN_TOOLS[self.rng.randrange(len(FORBIDDEN_TOOLS))]
        self.tool(agent, parent, depth, tool, "forbidden", status="ok")

    def fault_unapproved(self, agent: Agent, parent: str, depth: int) -> None:
        tool = CONSEQUENTIAL_TOOLS[self.rng.randrange(len(CONSEQUENTIAL_TOOLS))]
        self.tool(agent, parent, depth, tool, "unapproved", status="ok")

    def fault_latency(self, agent: Agent, parent: str, depth: int) -> None:
        rng = self.rng
        status = "timeout" if rng.random() < 0.5 else "ok"
        self.tool(agent, parent, depth, self._plain_tool(agent), "latency", status=status,
                  latency_s=rng.uniform(30.0, 180.0))

    def fault_error_burst(self, agent: Agent, parent: str, depth: int) -> None:
        rng = self.rng
        for _ in range(rng.randint(12, 20)):
            self.tool(agent, parent, depth, self._plain_tool(agent), "error_burst", status="error",
                      latency_s=rng.uniform(0.05, 0.3))

    def fault_deep(self, agent: Agent, parent: str, depth: int) -> None:
        target_depth = self.rng.randint(12, 16)
        opened: list[tuple[Agent, dict[str, Any]]] = []
        current, at = agent, depth
        while True:
            nxt = self._peer(current) or current
            handoff = self._point(current, parent, at, "handoff", nxt.agent_id, "deep",
                                  attrs={"handoff.from": current.agent_id, "handoff.to": nxt.agent_id})
            invocation = self._start(nxt, handoff, at + 1, "invoke_agent", nxt.agent_id, "deep")
            self._tick()
            opened.append((nxt, invocation))
            current, parent, at = nxt, invocation["action_id"], at + 2
            if at - 1 >= target_depth:
                break
        self.tool(current, parent, at, self._plain_tool(current), "deep")
        for owner, invocation in reversed(opened):
            self._end(owner, invocation)
            self._tick()

    def fault_fanout(self, agent: Agent, parent: str, depth: int) -> None:
        rng = self.rng
        split = self._point(agent, parent, depth, "decision", "fan_out", "fanout")
        for _ in range(rng.randint(25, 40)):
            tool = _SEARCH_TOOLS[rng.randrange(len(_SEARCH_TOOLS))]
            self.tool(agent, split, depth + 1, tool, "fanout", status="ok", latency_s=rng.uniform(0.05, 0.5))

    def fault_hung(self, agent: Agent, parent: str, depth: int) -> None:
        self.tool(agent, parent, depth, self._plain_tool(agent), "hung", hung=True)


_INJECT = {kind: getattr(_TraceBuilder, f"fault_{kind}") for kind in FAULT_KINDS}
