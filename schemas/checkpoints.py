"""Signed checkpoints over a producer stream's hash chain: who wrote a stream, checked by the key that signed it.

A producer signs a checkpoint, not every event: Ed25519 costs ~90 us to sign and ~200 us to verify,
far more than the few microseconds an event costs to seal or store. Every ``N`` events or ``T``
seconds, the event at ``seq`` k of a stream carries two attributes:

- ``agentaudit.sig``: base64 Ed25519 signature over :func:`checkpoint_message` (tenant, agent,
  stream id, k, and k's ``prev_hash``, the SHA-256 of event k-1's body);
- ``agentaudit.key``: the id of the key, as a keys file registers it (:class:`~.signing.KeyRing`).

Since each event's ``prev_hash`` names the body before it, that signature authenticates events
0..k-1 of the stream once their chain is checked; event k itself (signature included) is chained
into k+1 and covered by the next checkpoint. Rewriting any covered event means recomputing the
chain up to k, which changes k's ``prev_hash`` and voids the signature: without the private key a
forged or re-sent stream can only be unsigned, badly signed, or signed by a key not registered for
that tenant and agent, and each is an integrity incident.

>>> attrs = checkpoint_attributes(key, tenant="acme", agent="bot", stream_id="c1/bot", seq=1000, prev_hash="ab12...")
>>> check_checkpoint(ring, record)       # None when the record is not a checkpoint
SignatureCheck(verdict=<SignatureVerdict.VALID: 'valid'>, ...)
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agentaudit.schemas.integrity import verify_stream
from agentaudit.schemas.signing import KeyRing, SignatureCheck, SignatureVerdict, SigningKey, signed_message

__all__ = ["CHECKPOINT_NAME", "CHECKPOINT_PURPOSE", "KEY_ATTRIBUTE", "SIG_ATTRIBUTE", "StreamFinding", "StreamsReport",
           "check_checkpoint", "check_signed_stream", "checkpoint_attributes", "checkpoint_message", "is_checkpoint",
           "verify_signed_records"]

SIG_ATTRIBUTE = "agentaudit.sig"
KEY_ATTRIBUTE = "agentaudit.key"
CHECKPOINT_PURPOSE = "stream-checkpoint"
#: Name of the point event a producer adds when a stream's tail must be covered and no event is due
#: (an idle stream after ``T`` seconds, a flush, a close).
CHECKPOINT_NAME = "agentaudit.checkpoint"
_CACHE = "_signature_check"  # memo on a decoded record: the sink and every integrity rule share one verify


def checkpoint_message(tenant: str, agent: str, stream_id: str, seq: int, prev_hash: str) -> bytes:
    """The bytes a checkpoint signs (domain-separated: never valid as another kind of signature)."""
    return signed_message(CHECKPOINT_PURPOSE, tenant, agent, stream_id, seq, prev_hash)


def checkpoint_attributes(key: SigningKey, *, tenant: str, agent: str, stream_id: str, seq: int,
                          prev_hash: str) -> dict[str, str]:
    """The two attributes that make the event at ``seq`` a checkpoint over events 0..seq-1."""
    signature = key.sign(checkpoint_message(tenant, agent, stream_id, seq, prev_hash))
    return {SIG_ATTRIBUTE: base64.b64encode(signature).decode(), KEY_ATTRIBUTE: key.key_id}


def is_checkpoint(record: dict[str, Any]) -> bool:
    return SIG_ATTRIBUTE in (record.get("attributes") or ())


def check_checkpoint(keyring: KeyRing, record: dict[str, Any]) -> SignatureCheck | None:
    """The verdict on a decoded action record's checkpoint, or None when it carries none.

    Checked for the record's own tenant and agent, at its event time (a key revoked at T verifies
    checkpoints stamped before T only). The verdict is remembered on the record, so the sink's
    stored verdict and the integrity rules never verify the same signature twice.
    """
    cached: SignatureCheck | None = record.get(_CACHE)
    if cached is not None:
        return cached
    attributes = record.get("attributes")
    if not attributes or SIG_ATTRIBUTE not in attributes:
        return None
    key_id = attributes.get(KEY_ATTRIBUTE) or ""
    try:
        signature = base64.b64decode(attributes[SIG_ATTRIBUTE], validate=True)
    except (binascii.Error, ValueError):
        check = SignatureCheck(SignatureVerdict.BAD_SIGNATURE, key_id, detail="agentaudit.sig is not base64")
    else:
        if not key_id or not signature:
            check = SignatureCheck(SignatureVerdict.BAD_SIGNATURE, key_id,
                                   detail="agentaudit.sig needs a non-empty signature and agentaudit.key")
        else:
            message = checkpoint_message(record["tenant"], record["agent_id"], record["stream_id"], record["seq"],
                                         record["prev_hash"] or "")
            check = keyring.verify(key_id, message, signature, tenant=record["tenant"], agent=record["agent_id"],
                                   at_us=record["event_time_us"])
    record[_CACHE] = check
    return check


@dataclass(frozen=True, slots=True)
class StreamFinding:
    """One thing wrong with a signed stream: where, and what (a chain violation, a verdict, or ``unverified``)."""

    tenant: str
    stream_id: str
    seq: int
    kind: str  # a chain violation kind, a signature verdict, or "unverified"
    detail: str

    def __str__(self) -> str:
        return f"{self.tenant} stream {self.stream_id} at seq {self.seq}: {self.kind}: {self.detail}"


@dataclass
class StreamsReport:
    """What checking signed streams found: counts of rows verified, final checkpoint events, and findings."""

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
        check_signed_stream(streams[key], keyring, report)
    return report


def check_signed_stream(stream: list[dict[str, Any]], keyring: KeyRing, report: StreamsReport) -> None:
    """Check one stream's records (with ``event_hash``, in recorded order) into ``report``: chain violations,
    checkpoints that cannot be believed, and rows no valid checkpoint covers through unbroken links."""
    tenant, stream_id = stream[0]["tenant"], stream[0]["stream_id"]
    broken_before: set[int] = set()  # indexes whose link from the previous row is broken
    for violation in verify_stream(stream_id, ((r, r["event_hash"]) for r in stream), first_seq=stream[0]["seq"]):
        report.findings.append(StreamFinding(tenant, stream_id, violation.seq, violation.kind, violation.detail))
    for i in range(1, len(stream)):
        prev, row = stream[i - 1], stream[i]
        if row["prev_hash"] != prev["event_hash"]:  # a seq gap alone is reported by verify_stream, not a broken link
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
