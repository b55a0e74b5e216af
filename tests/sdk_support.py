"""Helpers for SDK unit tests: a client whose broker is away, so every event it seals lands in its
on-disk spool, and a reader that decodes the spool. Nothing is faked: the events are the real
sealed Avro bytes the client would have produced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentaudit.infra.embedded import free_port
from agentaudit.producers import AuditClient
from agentaudit.producers._spool import Spool
from agentaudit.schemas import AvroCodec, body_hash, frame_body

CODEC = AvroCodec("action")


def offline_client(spool_dir: Path, **kwargs: Any) -> AuditClient:
    """A client pointed at a port nothing listens on; it spools everything it seals."""
    kwargs.setdefault("tenant", "acme")
    kwargs.setdefault("agent", "agent-under-test")
    return AuditClient(f"127.0.0.1:{free_port()}", spool_dir=spool_dir, ensure_topic=False, spill_after_ms=20,
                       **kwargs)


def spooled(spool_dir: Path) -> list[tuple[dict[str, Any], str]]:
    """``(record, body hash)`` of every event waiting in the spool, in spool order."""
    spool = Spool(spool_dir, max_bytes=1 << 30, segment_bytes=1 << 20)
    spool.open()
    try:
        out = []
        while True:
            batch = spool.read(1000)
            if not batch:
                return out
            out.extend((CODEC.decode(r.value), body_hash(frame_body(r.value))) for r in batch)
    finally:
        spool.pending = 1  # keep the files: close() deletes a spool it believes delivered
        spool.close()


def records_of(spool_dir: Path) -> list[dict[str, Any]]:
    return [r for r, _ in spooled(spool_dir)]
