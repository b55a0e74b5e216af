"""Approvals as they arrive: the ``approval`` events people record on the actions topic.

A call held by ``require_approval`` waits here for an approval of its agent, tool and exact arguments.
The approval event carries ``args_hash`` keyed with the tenant's digest key (``AuditClient.approval``), so
the watcher matches it against the keyed hash of the held call's arguments (``AuditClient.args_hash``)
and hands back an :class:`~agentaudit.control.approvals.Approval` the SDK's gate then verifies as usual.

The reader starts on the first held call and reads the topic from the beginning (manual assignment, a
unique group, nothing committed), so an approval granted before the call was made is found too.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from agentaudit.control.approvals import Approval
from agentaudit.exceptions import AgentAuditError
from agentaudit.infra.kafka import OFFSET_BEGINNING, KafkaAdmin, KafkaConsumer, Message
from agentaudit.logs import get_logger
from agentaudit.schemas import Actor, ActorType, AvroCodec
from agentaudit.settings import KafkaSettings

__all__ = ["ApprovalWatcher"]

_log = get_logger("agentaudit.mcp_proxy")

#: (tenant, agent, tool, keyed args hash)
_Key = tuple[str, str, str, str]


class ApprovalWatcher:
    """Folds granted approval events of one tenant into a lookup; :meth:`wait` blocks until one matches.

    :param kafka: the broker and actions topic.
    :param tenant: only this tenant's approvals count.
    :param max_kept: most approvals kept (the oldest forgotten first), default 10,000.
    """

    def __init__(self, kafka: KafkaSettings, tenant: str, *, max_kept: int = 10_000) -> None:
        self.kafka = kafka
        self.tenant = tenant
        self._max_kept = max_kept
        self._codec = AvroCodec("action", max_message_bytes=kafka.max_message_bytes)
        self._granted: dict[_Key, tuple[str, str, str, int, int]] = {}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> ApprovalWatcher:
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="agentaudit-mcp-approvals", daemon=True)
                self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, agent_id: str, tool: str, keyed_hash: str, plain_hash: str, timeout: float,
             cancelled: Callable[[], bool] | None = None) -> Approval | None:
        """An unexpired approval of exactly this call, waiting up to ``timeout`` seconds; None if none came."""
        self.start()
        deadline = time.monotonic() + timeout
        key = (self.tenant, agent_id, tool, keyed_hash)
        with self._changed:
            while True:
                found = self._granted.get(key)
                now_us = time.time_ns() // 1000
                if found is not None and found[4] > now_us:
                    approval_id, approver_type, approver_id, issued_us, expires_us = found
                    return Approval(approval_id=approval_id, agent_id=agent_id, tool=tool, args_hash=plain_hash,
                                    approver=Actor(type=ActorType(approver_type), id=approver_id),
                                    issued_at_us=issued_us, expires_at_us=expires_us, tenant=self.tenant)
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set() or (cancelled is not None and cancelled()):
                    return None
                self._changed.wait(min(left, 0.5))

    def _run(self) -> None:
        topic = self.kafka.topics.actions
        try:
            consumer = KafkaConsumer(self.kafka, f"agentaudit-mcp-approvals-{uuid.uuid4().hex}",
                                     {"fetch.wait.max.ms": 50, "auto.offset.reset": "earliest"})
            try:
                partitions = KafkaAdmin(self.kafka).partitions_for(topic)
                consumer.assign([(topic, p, OFFSET_BEGINNING) for p in partitions])
                while not self._stop.is_set():
                    batch = consumer.consume_batch(500, timeout=0.2)
                    if batch:
                        self._fold(batch)
            finally:
                consumer.close()
        except AgentAuditError as exc:
            self.error = exc
            _log.error("mcp_proxy.approvals_failed", topic=topic, error=exc)

    def _fold(self, batch: list[Message]) -> None:
        added = False
        for message in batch:
            try:
                record = self._codec.decode(message.value() or b"")  # a tombstone is undecodable too
            except Exception:  # noqa: BLE001, S112 - not ours to judge; the sink quarantines bad records
                continue
            if record.get("kind") != "approval" or record.get("tenant") != self.tenant:
                continue
            attrs = record.get("attributes") or {}
            if record.get("status") != "ok" or attrs.get("granted", "true") != "true":
                continue
            try:
                key = (self.tenant, attrs["approved_agent_id"], attrs["approved_tool"], attrs["args_hash"])
                actor = record.get("actor") or {}
                value = (attrs["approval_id"], attrs.get("approver_type") or actor.get("type", "human"),
                         attrs.get("approver_id") or actor.get("id", ""),
                         int(record.get("event_time_us") or 0), int(attrs["expires_at_us"]))
                ActorType(value[1])
            except (KeyError, ValueError):
                continue
            with self._changed:
                self._granted.pop(key, None)
                self._granted[key] = value
                while len(self._granted) > self._max_kept:
                    del self._granted[next(iter(self._granted))]
            added = True
        if added:
            with self._changed:
                self._changed.notify_all()
