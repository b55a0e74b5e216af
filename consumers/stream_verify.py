"""``agentaudit verify --signatures``: re-check every stored producer stream's chain and signed checkpoints.

Independent of what the sink stored as its verdict (``actions.signature``): the rows are read back
from ClickHouse (``actions_first``), each stream is walked in ``seq`` order, its hash chain is checked
(:func:`agentaudit.schemas.integrity.verify_stream`) and each checkpoint's signature is verified
again with the keys file. A row counts as verified when a valid checkpoint later in its stream is
reached through unbroken links (the rule of the ``actions_verified`` view). The final checkpoint
event of a stream is covered by no later one and is counted apart, not as a finding.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from agentaudit.schemas.checkpoints import StreamsReport, check_signed_stream
from agentaudit.schemas.signing import KeyRing

__all__ = ["verify_stream_signatures"]

_QUERY = (
    "SELECT toString(tenant), toString(agent_id), stream_id, seq, prev_hash, event_hash, "
    "toUnixTimestamp64Micro(event_time), toString(kind), toString(name), attributes "
    "FROM actions_first {where} ORDER BY tenant, stream_id, seq"
)


def verify_stream_signatures(store: Any, keyring: KeyRing, *, tenant: str | None = None) -> StreamsReport:
    """Walk every stored stream (of ``tenant``, or all) and check its chain and its checkpoints."""
    where = "WHERE tenant = {tenant:String}" if tenant is not None else ""
    rows = store.query(_QUERY.format(where=where), {"tenant": tenant} if tenant is not None else None).rows
    report = StreamsReport()
    for stream in _streams(rows):
        report.streams += 1
        report.rows += len(stream)
        check_signed_stream(stream, keyring, report)
    return report


def _streams(rows: list[tuple[Any, ...]]) -> Iterator[list[dict[str, Any]]]:
    current: list[dict[str, Any]] = []
    for tenant, agent, stream_id, seq, prev_hash, event_hash, t_us, kind, name, attributes in rows:
        if current and (current[-1]["tenant"] != tenant or current[-1]["stream_id"] != stream_id):
            yield current
            current = []
        current.append({"tenant": tenant, "agent_id": agent, "stream_id": stream_id, "seq": seq,
                        "prev_hash": prev_hash, "event_hash": event_hash, "event_time_us": t_us, "kind": kind,
                        "name": name, "attributes": dict(attributes)})
    if current:
        yield current
