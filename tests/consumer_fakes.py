"""In-memory stand-ins for the narrow client interfaces the sink and the rules worker use (unit tests only).

Each fake appends what it is asked to do to one shared ``log`` list, so a test can assert the order of
store writes, producer flushes, snapshots and commits. Integration tests use the real broker and store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentaudit.infra.exceptions import KafkaError, StoreError


@dataclass
class FakeMessage:
    """A consumed message: the accessors of ``confluent_kafka.Message`` the consumers call."""

    _topic: str
    _partition: int
    _offset: int
    _value: bytes | None
    _key: bytes | None = None
    _headers: list[tuple[str, bytes]] | None = None
    _timestamp: int = 0

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp)

    def error(self) -> None:
        return None


@dataclass
class TP:
    topic: str
    partition: int
    offset: int = -1001


@dataclass
class FakeConsumer:
    """Hands out queued batches; the first batch call runs the assignment callback for ``partitions``."""

    log: list[tuple[Any, ...]]
    partitions: list[tuple[str, int]]
    batches: list[list[FakeMessage]] = field(default_factory=list)
    commits: list[dict[tuple[str, int], int]] = field(default_factory=list)
    seeks: list[tuple[str, int, int]] = field(default_factory=list)
    on_assign: Any = None
    on_revoke: Any = None
    assigned: bool = False
    closed: bool = False
    fail_commit: bool = False
    paused: bool = False
    ends: dict[tuple[str, int], int] = field(default_factory=dict)  # high watermarks of the latest fetch

    def subscribe(self, topics: list[str], on_assign: Any = None, on_revoke: Any = None) -> None:
        self.on_assign, self.on_revoke = on_assign, on_revoke

    def assign(self, partitions: list[Any]) -> None:
        self.log.append(("assign", [(tp.topic, tp.partition, tp.offset) for tp in partitions]))

    def consume_batch(self, max_messages: int = 500, timeout: float = 1.0) -> list[FakeMessage]:
        if not self.assigned:
            self.assigned = True
            if self.on_assign is not None:
                self.on_assign(self, [TP(t, p) for t, p in self.partitions])
        if self.paused:  # paused partitions deliver nothing (the sink polls them while it backs off)
            return []
        return self.batches.pop(0) if self.batches else []

    def revoke(self) -> None:
        """What a rebalance does: the revoke callback, then the partitions are gone."""
        if self.on_revoke is not None:
            self.on_revoke(self, [TP(t, p) for t, p in self.partitions])
        self.partitions = []

    def commit(self, offsets: Any, asynchronous: bool = False) -> None:
        if self.fail_commit:
            raise KafkaError("commit refused (fake)", code="REBALANCE_IN_PROGRESS", retriable=True)
        committed = {(t, p): o for t, p, o in offsets} if offsets and isinstance(next(iter(offsets)), tuple) else \
            {(m.topic(), m.partition()): m.offset() + 1 for m in offsets}
        self.commits.append(committed)
        self.log.append(("commit", committed))

    def committed(self, partitions: Any, timeout: float = 10.0) -> dict[tuple[str, int], int | None]:
        return {(tp[0], tp[1]) if isinstance(tp, tuple) else (tp.topic, tp.partition): None for tp in partitions}

    def high_watermarks(self, partitions: Any) -> dict[tuple[str, int], int]:
        keys = [(tp[0], tp[1]) if isinstance(tp, tuple) else (tp.topic, tp.partition) for tp in partitions]
        return {key: self.ends[key] for key in keys if key in self.ends}

    def assignment(self) -> list[TP]:
        return [TP(t, p) for t, p in self.partitions]

    def pause(self, partitions: Any) -> None:
        self.paused = True

    def resume(self, partitions: Any) -> None:
        self.paused = False

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self.seeks.append((topic, partition, offset))

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeProducer:
    """Queues messages; :meth:`flush` acknowledges them all (delivery callbacks with no error)."""

    log: list[tuple[Any, ...]]
    sent: list[dict[str, Any]] = field(default_factory=list)
    _queued: list[Any] = field(default_factory=list)

    def produce(self, topic: str, value: bytes | None, key: bytes | None = None, headers: Any = None,
                on_delivery: Any = None, partition: int | None = None, timestamp: int | None = None) -> None:
        self.sent.append({"topic": topic, "value": value, "key": key, "headers": dict(headers or []),
                          "partition": partition})
        self._queued.append(on_delivery)

    def flush(self, timeout: float = 30.0) -> int:
        queued, self._queued = self._queued, []
        for on_delivery in queued:
            if on_delivery is not None:
                on_delivery(None, None)
        self.log.append(("flush", len(queued)))
        return 0

    def poll(self, timeout: float = 0.0) -> int:
        return 0

    def __len__(self) -> int:  # as KafkaProducer: messages still queued (0 makes it falsy)
        return len(self._queued)

    def close(self, timeout: float = 30.0) -> None:
        self.flush()

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["topic"] == topic]


@dataclass
class FakeStore:
    """Keeps inserted Arrow tables per table; ``fail`` makes the next inserts raise :class:`StoreError`."""

    log: list[tuple[Any, ...]]
    tables: dict[str, list[Any]] = field(default_factory=dict)
    fail: int = 0

    def insert_arrow(self, table: str, data: Any, settings: dict[str, Any] | None = None) -> None:
        if self.fail:
            self.fail -= 1
            raise StoreError(f"insert into {table} refused (fake)")
        self.tables.setdefault(table, []).append(data)
        self.log.append(("insert", table, data.num_rows))

    def rows(self, table: str) -> list[dict[str, Any]]:
        return [row for data in self.tables.get(table, []) for row in data.to_pylist()]

    def close(self) -> None:
        pass


@dataclass
class FakeAdmin:
    partitions: int = 1

    def partitions_for(self, topic: str, timeout: float = 10.0) -> list[int]:
        return list(range(self.partitions))

    def ensure_topics(self, names: Any, partitions: int | None = None, **_: Any) -> None:
        pass
