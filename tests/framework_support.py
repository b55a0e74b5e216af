"""Helpers for the framework integration tests: an SDK client on the real broker with a fresh topic, and
the action events read back from it (decoded, chain-checked), grouped by action."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentaudit.infra.kafka import read_all
from agentaudit.producers import AuditClient
from agentaudit.schemas import AvroCodec, body_hash, frame_body, verify_streams
from agentaudit.settings import KafkaSettings


@dataclass
class Stored:
    """One action as stored: its start and end events."""

    start: dict[str, Any]
    end: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.end[key]


def broker_client(kafka: KafkaSettings, topic_factory: Callable[..., str], tmp_path: Path,
                  **kwargs: Any) -> AuditClient:
    kwargs.setdefault("tenant", "acme")
    kwargs.setdefault("agent", "app")
    return AuditClient(kafka=kafka, topic=topic_factory(partitions=1), spool_dir=tmp_path / "spool", **kwargs)


def stored_actions(client: AuditClient) -> list[Stored]:
    """Close ``client`` (delivering everything) and read its topic back (see :func:`read_actions`)."""
    client.close(30)
    assert client.stats()["delivered"] > 0, client.stats()
    return read_actions(client.kafka, client.topic)


def read_actions(kafka: KafkaSettings, topic: str) -> list[Stored]:
    """The actions on ``topic``, in end order. Asserts the events verify as hash chains and that every action
    has exactly one start and one end."""
    codec = AvroCodec("action")
    events = [(codec.decode(m.value()), body_hash(frame_body(m.value())))
              for m in read_all(kafka, topic, timeout=30, idle=2.0)]
    assert events
    assert verify_streams(events) == []
    starts = {r["action_id"]: r for r, _ in events if r["phase"] == "start"}
    ends = [r for r, _ in events if r["phase"] == "end"]
    assert len(starts) == len(ends) and set(starts) == {r["action_id"] for r in ends}
    return [Stored(starts[r["action_id"]], r) for r in ends]


def assert_one_tree(actions: list[Stored]) -> Stored:
    """All actions share one trace and one root, every parent is an action of the run; the root."""
    ids = {a["action_id"] for a in actions}
    roots = [a for a in actions if not a["parent_action_id"]]
    assert len(roots) == 1, [(a["kind"], a["name"]) for a in roots]
    assert {a["trace_id"] for a in actions} == {roots[0]["trace_id"]}
    assert all(a["parent_action_id"] in ids for a in actions if a["parent_action_id"])
    return roots[0]


def ancestors(actions: list[Stored], action: Stored) -> list[Stored]:
    by_id = {a["action_id"]: a for a in actions}
    out = []
    while action["parent_action_id"]:
        action = by_id[action["parent_action_id"]]
        out.append(action)
    return out
