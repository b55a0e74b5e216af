"""Seed data for the dashboard's tests, docs screenshot and benchmark: a small believable fleet.

Rows are shaped like the sink's (consumers/_columns.py schemas) and go in through ``insert_arrow``,
exactly as the sink writes them. Times are recent (the tables' TTL drops old rows at insert).
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from agentaudit.consumers._columns import ACTIONS_SCHEMA, INCIDENTS_SCHEMA, LIFECYCLE_SCHEMA, stored_actions
from agentaudit.infra.clickhouse import Store

NOW_US = int(time.time()) * 1_000_000
HOUR_US = 3_600_000_000

OWNERS_SCHEMA = pa.schema([
    ("subject_kind", pa.string()), ("pattern", pa.string()), ("team", pa.string()),
    ("oncall", pa.list_(pa.string())), ("escalation", pa.list_(pa.string())), ("specificity", pa.uint32()),
    ("source", pa.string()),
])

_KINDS = [("chat", "gpt-4o"), ("execute_tool", "search"), ("execute_tool", "http.get"), ("chat", "claude-3-5"),
          ("execute_tool", "db.query"), ("plan", "planner"), ("execute_tool", "kv.read")]


def action_rows(*, tenant: str, agent_id: str, trace_id: str, actions: int, start_us: int, seed: int = 1,
                violating_name: str = "", violating_status: str = "error", fanout: int = 4, max_depth: int = 10,
                model_cost: float = 0.002) -> tuple[list[dict[str, Any]], str]:
    """Start and end events of ``actions`` actions forming a tree under one ``invoke_agent`` root.

    The last action is the violating one (``violating_name``, deepest branch) when a name is given.
    Returns ``(rows, event_id of the violating action's end event)``.
    """
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    parents: list[tuple[str, int]] = []
    clock = start_us
    violating_event = ""
    run_id = f"run-{trace_id}"
    stream = f"{agent_id}-stream"
    for index in range(actions):
        action_id = f"{trace_id}-a{index:05d}"
        if index == 0:
            parent, depth, kind, name = "", 0, "invoke_agent", agent_id
        elif violating_name and index == actions - 1:
            parent, depth = max(parents, key=lambda p: p[1])
            depth += 1
            kind, name = "execute_tool", violating_name
        else:
            # Recent causes are likelier (agents work depth-first), and real plans stay shallow.
            recent = [p for p in parents[-fanout:] if p[1] < max_depth] or parents[:1]
            parent, depth = rng.choice(recent if rng.random() < 0.7 else [p for p in parents if p[1] < max_depth])
            depth += 1
            kind, name = rng.choice(_KINDS)
        latency = rng.randint(2_000, 400_000)
        status = "ok" if rng.random() > 0.08 else "error"
        if violating_name and index == actions - 1:
            status = violating_status
        model = name if kind == "chat" else ""
        cost = round(model_cost * rng.uniform(0.5, 3.0), 6) if kind == "chat" else 0.0
        common = dict(tenant=tenant, agent_id=agent_id, agent_version="1.4.2", run_id=run_id, trace_id=trace_id,
                      action_id=action_id, parent_action_id=parent, links=[], depth=depth, stream_id=stream,
                      prev_hash="", event_hash=uuid.uuid4().hex * 2, kind=kind, name=name, actor_type="agent",
                      actor_id=agent_id, model=model, input_digest="", output_digest="", input_body="",
                      output_body="", payload_bytes=0, attributes={}, environment="prod", kafka_partition=0)
        start_event = dict(common, event_id=str(uuid.UUID(int=rng.getrandbits(128))), seq=2 * index, phase="start",
                           status="unset", error_type="", error_message="", input_tokens=0, output_tokens=0,
                           cost_usd=0.0, latency_us=None, start_time=clock, end_time=None, event_time=clock,
                           kafka_offset=2 * index)
        end_event = dict(common, event_id=str(uuid.UUID(int=rng.getrandbits(128))), seq=2 * index + 1, phase="end",
                         status=status, error_type="ToolError" if status == "error" else "",
                         error_message="failed" if status == "error" else "",
                         input_tokens=300 if kind == "chat" else 0, output_tokens=120 if kind == "chat" else 0,
                         cost_usd=cost, latency_us=latency, start_time=clock, end_time=clock + latency,
                         event_time=clock + latency, kafka_offset=2 * index + 1)
        rows += [start_event, end_event]
        if kind in ("invoke_agent", "plan", "chat") or index == 0:
            parents.append((action_id, depth))
        if violating_name and index == actions - 1:
            violating_event = end_event["event_id"]
        clock += rng.randint(1_000, 50_000)
    return rows, violating_event


_TURN = [  # one turn of a customer-service loop: (kind, name, actor_type, body)
    ("message", "user", "human", "I'd like a table for {n} on Friday at 19:00"),
    ("chat", "gpt-4o", "agent", ""),
    ("execute_tool", "booking.search", "agent", "3 slots free on Friday"),
    ("message", "assistant", "agent", "Shall I book Friday 19:00 for {n} people?"),
    ("approval", "user_confirmation", "human", "yes, book it"),
    ("execute_tool", "booking.write", "agent", "reservation R-{turn:03d} created"),
]


def conversation_rows(*, tenant: str, agent_id: str, trace_id: str, turns: int, start_us: int,
                      unapproved_turn: int) -> tuple[list[dict[str, Any]], str]:
    """A flat conversation: one ``invoke_agent`` root and ``6 * turns`` children in sequence (user message,
    model call, lookup, proposal, the user's confirmation, the booking write). In ``unapproved_turn`` the
    user never confirms but the write runs anyway. Returns ``(rows, event_id of that write's end event)``."""
    rows: list[dict[str, Any]] = []
    clock = start_us
    violating = ""

    def add(index: int, kind: str, name: str, actor: str, body: str, parent: str, latency: int) -> str:
        nonlocal clock
        action_id = f"{trace_id}-c{index:04d}"
        common = dict(tenant=tenant, agent_id=agent_id, agent_version="2.0.0", run_id=f"run-{trace_id}",
                      trace_id=trace_id, action_id=action_id, parent_action_id=parent, links=[],
                      depth=1 if parent else 0, stream_id=f"{agent_id}-stream", prev_hash="",
                      event_hash=uuid.uuid4().hex * 2, kind=kind, name=name, actor_type=actor,
                      actor_id="customer" if actor == "human" else agent_id, model=name if kind == "chat" else "",
                      input_digest=uuid.uuid4().hex, output_digest="", input_body=body if kind != "execute_tool" else "",
                      output_body=body if kind == "execute_tool" else "", payload_bytes=len(body), attributes={},
                      environment="prod", kafka_partition=0, status="ok", error_type="", error_message="",
                      input_tokens=0, output_tokens=0, cost_usd=0.0)
        rows.append(dict(common, event_id=str(uuid.uuid4()), seq=len(rows), phase="start", status="unset",
                         latency_us=None, start_time=clock, end_time=None, event_time=clock, kafka_offset=len(rows)))
        rows.append(dict(common, event_id=str(uuid.uuid4()), seq=len(rows), phase="end", latency_us=latency,
                         start_time=clock, end_time=clock + latency, event_time=clock + latency,
                         kafka_offset=len(rows)))
        clock += latency + 400_000
        return action_id

    root = add(0, "invoke_agent", agent_id, "agent", "", "", 0)
    index = 1
    for turn in range(turns):
        for kind, name, actor, body in _TURN:
            if turn == unapproved_turn and kind == "approval":
                continue
            text = body.format(n=2 + turn % 3, turn=turn)
            if turn == unapproved_turn and kind == "message" and actor == "human":
                text = "hmm, let me think about it"
            add(index, kind, name, actor, text, root, 900_000 if kind == "chat" else 120_000)
            if turn == unapproved_turn and name == "booking.write":
                violating = rows[-1]["event_id"]
            index += 1
    end = rows[1]
    end.update(end_time=clock, event_time=clock, latency_us=clock - start_us)
    return rows, violating


@dataclass
class Seeded:
    """What :func:`seed` put in the store, for assertions."""

    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    traces: dict[str, int] = field(default_factory=dict)  # trace id -> actions
    violating_event: str = ""
    actions: int = 0


def seed(store: Store, *, big_trace_actions: int = 60, conversation_turns: int = 0) -> Seeded:
    """A fleet of three agents (one unowned), owners, five incidents in every state, their lifecycle.

    With ``conversation_turns``, also a flat conversation trace ``tr-conv-1`` (one root, six children a turn)
    whose turn 4 writes a booking the user never confirmed, and its incident ``inc-conversation-write``."""
    out = Seeded()
    rows: list[dict[str, Any]] = []
    fleet = [("acme", "payments-bot", "tr-pay-1", big_trace_actions, "shell.exec"),
             ("acme", "support-bot", "tr-sup-1", 25, "refund.issue"),
             ("globex", "shadow-bot", "tr-sha-1", 12, ""),
             ("acme", "payments-bot", "tr-pay-2", 15, "")]
    violating: dict[str, str] = {}
    for n, (tenant, agent, trace_id, count, bad) in enumerate(fleet):
        trace_rows, event = action_rows(tenant=tenant, agent_id=agent, trace_id=trace_id, actions=count,
                                        start_us=NOW_US - (3 - n) * HOUR_US, seed=n + 1, violating_name=bad)
        rows += trace_rows
        violating[trace_id] = event
        out.traces[trace_id] = count
    out.violating_event = violating["tr-pay-1"]
    if conversation_turns:
        conversation, violating["tr-conv-1"] = conversation_rows(
            tenant="acme", agent_id="concierge-bot", trace_id="tr-conv-1", turns=conversation_turns,
            start_us=NOW_US - HOUR_US // 2, unapproved_turn=min(4, conversation_turns - 1))
        rows += conversation
        out.traces["tr-conv-1"] = len(conversation) // 2
    out.actions = len(rows)
    store.insert_arrow("actions", stored_actions(pa.Table.from_pylist(rows, schema=ACTIONS_SCHEMA)))

    def incident(incident_id: str, **kw: Any) -> dict[str, Any]:
        row = dict(incident_id=incident_id, tenant="acme", rule_id="security.forbidden-tool", rule_revision="rev-a1b2c3",
                   severity="critical", severity_rank=4, mode="enforce", owner="team-payments", key="payments-bot",
                   window_start=NOW_US - 3 * HOUR_US, window_end=NOW_US, agent_id="payments-bot", trace_id="",
                   event_ids=[], first_seen=NOW_US - 2 * HOUR_US, last_seen=NOW_US - HOUR_US, count=1,
                   summary="", tags=["security"], attributes={})
        row.update(kw)
        return row

    incidents = [
        incident("inc-critical-open", trace_id="tr-pay-1", event_ids=[violating["tr-pay-1"]],
                 summary="payments-bot ran forbidden tool shell.exec"),
        incident("inc-high-acked", rule_id="security.unapproved-consequential-action", severity="high", severity_rank=3,
                 mode="detect",
                 owner="team-support", agent_id="support-bot", key="support-bot", trace_id="tr-sup-1",
                 event_ids=[violating["tr-sup-1"]], summary="support-bot issued a refund without approval",
                 first_seen=NOW_US - 3 * HOUR_US),
        incident("inc-medium-resolved", rule_id="cost.spend-spike", rule_revision="rev-0ld", severity="medium",
                 severity_rank=2, mode="detect", owner="team-payments", count=7, summary="cost spike on payments-bot"),
        incident("inc-low-open", tenant="globex", rule_id="load.slow-action", severity="low", severity_rank=1,
                 mode="simulate", owner="", agent_id="shadow-bot", key="shadow-bot", summary="shadow-bot has no owner"),
        incident("inc-high-reopened", rule_id="cost.spend-spike", severity="high", severity_rank=3, mode="detect",
                 owner="team-payments", count=3, summary="cost spike again"),
    ]
    if conversation_turns:
        incidents.append(incident(
            "inc-conversation-write", rule_id="conversation.write-needs-confirmation", severity="high",
            severity_rank=3, mode="detect", owner="team-support", agent_id="concierge-bot", key="tr-conv-1",
            trace_id="tr-conv-1", event_ids=[violating["tr-conv-1"]],
            summary="concierge-bot wrote booking.write without the user's confirmation",
            first_seen=NOW_US - HOUR_US // 4, last_seen=NOW_US - HOUR_US // 4))
    store.insert_arrow("incidents", pa.Table.from_pylist(incidents, schema=INCIDENTS_SCHEMA))
    out.incidents = {row["incident_id"]: row for row in incidents}

    def life(incident_id: str, kind: str, actor: str, at_us: int, assignee: str = "", note: str = "") -> dict[str, Any]:
        return dict(event_id=str(uuid.uuid4()), incident_id=incident_id, tenant="acme", type=kind, actor_type="human",
                    actor_id=actor, assignee=assignee, note=note, at=at_us, attributes={})

    base = NOW_US - HOUR_US
    lifecycle = [
        life("inc-high-acked", "acknowledged", "bob", NOW_US - 3 * HOUR_US + 600_000_000, note="looking"),
        life("inc-high-acked", "assigned", "bob", base, assignee="team-support"),
        life("inc-medium-resolved", "acknowledged", "alice", NOW_US - 2 * HOUR_US + 120_000_000),
        life("inc-medium-resolved", "resolved", "alice", base + 60_000_000, note="budget raised"),
        life("inc-high-reopened", "acknowledged", "alice", base),
        life("inc-high-reopened", "resolved", "alice", base + 10_000_000),
        life("inc-high-reopened", "reopened", "bob", base + 20_000_000, note="it is back"),
    ]
    store.insert_arrow("incident_lifecycle", pa.Table.from_pylist(lifecycle, schema=LIFECYCLE_SCHEMA))

    owners = [
        dict(subject_kind="agent", pattern="payments-*", team="team-payments", oncall=["alice"], escalation=["carol"],
             specificity=10, source="owners.yaml"),
        dict(subject_kind="agent", pattern="platform-*", team="team-platform", oncall=["dave"], escalation=[],
             specificity=1, source="owners.yaml"),
        dict(subject_kind="agent", pattern="support-bot", team="team-support", oncall=["bob"], escalation=[],
             specificity=20, source="owners.yaml"),
        dict(subject_kind="tool", pattern="shell.*", team="team-sre", oncall=["erin"], escalation=[],
             specificity=5, source="owners.yaml"),
    ]
    store.insert_arrow("owners", pa.Table.from_pylist(owners, schema=OWNERS_SCHEMA))
    return out


def seeded_database(url: str, **kwargs: Any) -> tuple[Any, Seeded]:
    """A fresh uuid database on the store at ``url``, migrated (base tables + analyst views) and seeded."""
    from agentaudit.consumers.migrate import migrate
    from agentaudit.infra.clickhouse import connect
    from agentaudit.settings import StoreSettings

    settings = StoreSettings(clickhouse_url=url, database=f"t_{uuid.uuid4().hex[:16]}")
    migrate(settings)
    with connect(settings) as store:
        return settings, seed(store, **kwargs)


@dataclass(frozen=True)
class ConversationIncident:
    """The incident the default pack raised on a conversation-mode run whose write the user never confirmed."""

    incident_id: str
    trace_id: str
    event_id: str
    actions: int
    incidents: int  # all the pack raised on the corpus


def seed_conversations(store: Store, *, runs: int = 14, seed: int = 2, min_actions: int = 31) -> ConversationIncident:
    """Conversation-mode runs (the simulator's, every run with one breach) stored as the sink stores them,
    judged by the shipped pack, their incidents stored; returns the incident of an unconfirmed write in a
    flat run of at least ``min_actions`` actions (seed 2: 34 actions, 33 of them under the root)."""
    from agentaudit.consumers._columns import actions_table, incidents_table
    from agentaudit.producers.simulator.conversation import conversation_runs
    from agentaudit.rules import load_rule_set
    from agentaudit.rules.evaluator import RuleEvaluator

    for attempt in range(seed, seed + 50):  # the first seed from ``seed`` with such a run (seed 2 today)
        corpus = conversation_runs(runs, seed=attempt, breach_rate=1.0, start_us=NOW_US - HOUR_US)
        sizes: dict[str, set[str]] = {}
        for record in corpus.records:
            sizes.setdefault(record["trace_id"], set()).add(record["action_id"])
        if any(b.kind == "unconfirmed_write" and len(sizes[b.trace_id]) >= min_actions for b in corpus.breaches):
            break
    else:
        raise AssertionError(f"no unconfirmed write in a run of {min_actions}+ actions in seeds {seed}..{seed + 49}")
    records = [dict(r, _partition=0, _offset=n) for n, r in enumerate(corpus.records)]
    store.insert_arrow("actions", actions_table(records))
    evaluator = RuleEvaluator(load_rule_set())
    incidents = evaluator.evaluate(corpus.records) + evaluator.flush()
    store.insert_arrow("incidents", incidents_table(incidents))
    breach = next(b for b in corpus.breaches if b.kind == "unconfirmed_write" and len(sizes[b.trace_id]) >= min_actions)
    hit = next(i for i in incidents if i.rule_id == "security.unapproved-consequential-action"
               and breach.event_id in i.event_ids)  # StopIteration here: the pack missed the breach
    return ConversationIncident(hit.incident_id, breach.trace_id, breach.event_id, len(sizes[breach.trace_id]),
                                len(incidents))
