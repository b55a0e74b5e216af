"""``agentaudit verify --signatures``: re-check every stored producer stream's chain and signed checkpoints.

Independent of what the sink stored as its verdict (``actions.signature``): the rows are read back
from ClickHouse (``actions_first``), each stream is walked in ``seq`` order, its hash chain is checked
(:func:`agentaudit.schemas.integrity.verify_stream`) and each checkpoint's signature is verified
again with the keys file. A row counts as verified when a valid checkpoint later in its stream is
reached through unbroken links (the rule of the ``actions_verified`` view). The final checkpoint
event of a stream is covered by no later one and is counted apart, not as a finding.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from agentaudit.schemas.checkpoints import CHECKPOINT_NAME, check_checkpoint
from agentaudit.schemas.integrity import verify_stream
from agentaudit.schemas.signing import KeyRing

__all__ = ["StreamFinding", "StreamsReport", "verify_signed_records", "verify_stream_signatures"]

_QUERY = (
    "SELECT toString(tenant), toString(agent_id), stream_id, seq, prev_hash, event_hash, "
    "toUnixTimestamp64Micro(event_time), toString(kind), toString(name), attributes "
    "FROM actions_first {where} ORDER BY tenant, stream_id, seq"
)


@dataclass(frozen=True, slots=True)
class StreamFinding:
    tenant: str
    stream_id: str
    seq: int
    kind: str  # a chain violation kind, a signature verdict, or "unverified"
    detail: str

    def __str__(self) -> str:
        return f"{self.tenant} stream {self.stream_id} at seq {self.seq}: {self.kind}: {self.detail}"


@dataclass
class StreamsReport:
    streams: int = 0
    rows: int = 0
    verified: int = 0
    tails: int = 0  # final checkpoint events, covered by no later checkpoint
    findings: list[StreamFinding] = field(default_factory=list)

    @property
    def unverified(self) -> int:
        return self.rows - self.verified - self.tails

    @property
    def ok(self) -> bool:
        return not self.findings

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for finding in self.findings:
            out[finding.kind] = out.get(finding.kind, 0) + 1
        return out


def verify_stream_signatures(store: Any, keyring: KeyRing, *, tenant: str | None = None) -> StreamsReport:
    """Walk every stored stream (of ``tenant``, or all) and check its chain and its checkpoints."""
    where = "WHERE tenant = {tenant:String}" if tenant is not None else ""
    rows = store.query(_QUERY.format(where=where), {"tenant": tenant} if tenant is not None else None).rows
    report = StreamsReport()
    for stream in _streams(rows):
        report.streams += 1
        report.rows += len(stream)
        _check(stream, keyring, report)
    return report


def verify_signed_records(records: Iterable[dict[str, Any]], keyring: KeyRing) -> StreamsReport:
    """The same checks over decoded action records carrying ``event_hash`` (e.g. read back from the topic),
    each stream in the order recorded."""
    streams: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        streams.setdefault((record["tenant"], record["stream_id"]), []).append(record)
    report = StreamsReport()
    for key in sorted(streams):
        report.streams += 1
        report.rows += len(streams[key])
        _check(streams[key], keyring, report)
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


def _check(stream: list[dict[str, Any]], keyring: KeyRing, report: StreamsReport) -> None:
    tenant, stream_id = stream[0]["tenant"], stream[0]["stream_id"]
    broken_before: set[int] = set()  # indexes whose link from the previous row is broken
    for violation in verify_stream(stream_id, ((r, r["event_hash"]) for r in stream), first_seq=stream[0]["seq"]):
        report.findings.append(StreamFinding(tenant, stream_id, violation.seq, violation.kind, violation.detail))
    for i in range(1, len(stream)):
        prev, row = stream[i - 1], stream[i]
        if row["seq"] != prev["seq"] + 1 or row["prev_hash"] != prev["event_hash"]:
            broken_before.add(i)
    pending = 0  # rows since the last valid checkpoint or break, waiting for a checkpoint to cover them
    first_pending = stream[0]["seq"]
    for i, row in enumerate(stream):
        if i in broken_before:
            if pending:
                report.findings.append(StreamFinding(tenant, stream_id, first_pending, "unverified",
                                                     f"{pending} row(s) before a chain break are covered by no "
                                                     "valid checkpoint"))
            pending = 0
        check = check_checkpoint(keyring, row)
        if check is not None and not check.ok:
            report.findings.append(StreamFinding(tenant, stream_id, row["seq"], check.verdict.value,
                                                 check.detail or check.verdict.value))
        if check is not None and check.ok:
            report.verified += pending
            pending = 0
        if pending == 0:
            first_pending = row["seq"]
        pending += 1
    last = stream[-1]
    last_check = check_checkpoint(keyring, last)
    if pending == 1 and last["name"] == CHECKPOINT_NAME and last_check is not None and last_check.ok:
        report.tails += 1
    elif pending:
        report.findings.append(StreamFinding(tenant, stream_id, first_pending, "unverified",
                                             f"{pending} row(s) up to seq {last['seq']} are covered by no valid "
                                             "checkpoint"))
