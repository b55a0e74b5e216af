"""The per-stream hash chain that makes a recorded event log tamper-evident.

Every producer stream (one client instance x one agent) numbers its events 0, 1, 2, ...
and puts in each event the SHA-256 of the previous event's Avro body (the bytes inside
the framing, see ``codec.frame_body``). A reader verifies a stream by walking it in
``seq`` order and checking, for each event, that ``seq`` follows the previous one with no
gap and that ``prev_hash`` equals the hash of the previous event's body. One flipped
byte changes a body hash; a dropped event leaves a gap; a reordered pair breaks both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from agentaudit.schemas.codec import AvroCodec

__all__ = ["ChainCursor", "ChainViolation", "StreamChain", "body_hash", "verify_stream", "verify_streams"]

ViolationKind = Literal["gap", "reorder", "duplicate", "hash_mismatch", "bad_start"]


def body_hash(body: bytes | memoryview) -> str:
    """Hex SHA-256 of an event's Avro body: the value the next event carries as ``prev_hash``."""
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainViolation:
    """Where a stream stops being trustworthy."""

    stream_id: str
    seq: int
    kind: ViolationKind
    detail: str

    def __str__(self) -> str:
        return f"stream {self.stream_id} at seq {self.seq}: {self.kind}: {self.detail}"


@dataclass(slots=True)
class ChainCursor:
    """Where one stream's chain stands: the seq expected next and the previous event's body hash.

    The one check of a chain link, used by :func:`verify_stream` over a recorded range and by
    the integrity rules event by event. ``expected_seq`` None: nothing is expected yet (a
    consumer that starts mid-stream). An empty hash is unknown and not compared.
    """

    expected_seq: int | None = None
    previous_hash: str | None = None

    def step(self, stream_id: str, record: dict[str, Any], digest: str) -> list[ChainViolation]:
        """Check ``record`` (whose body hashes to ``digest``) as the stream's next event, and move past it."""
        seq = record["seq"]
        expected = self.expected_seq
        previous = self.previous_hash
        self.expected_seq = seq + 1 if expected is None or seq >= expected else expected
        self.previous_hash = digest
        if seq == expected and seq and (not previous or not digest or record["prev_hash"] == previous):
            return []  # the common case: the next event, its link intact
        violations: list[ChainViolation] = []
        if expected is not None:
            if seq < expected:
                kind: ViolationKind = "duplicate" if previous is not None and seq == expected - 1 else "reorder"
                violations.append(ChainViolation(stream_id, seq, kind, f"expected seq {expected}, got {seq}"))
            elif seq > expected:
                violations.append(ChainViolation(stream_id, seq, "gap", f"seq {expected}..{seq - 1} missing"))
        if seq == 0 and record["prev_hash"]:
            violations.append(ChainViolation(stream_id, seq, "bad_start", "seq 0 must have an empty prev_hash"))
        elif previous and digest and seq == expected and record["prev_hash"] != previous:
            violations.append(
                ChainViolation(stream_id, seq, "hash_mismatch", "prev_hash does not match the previous event's body")
            )
        return violations


def verify_stream(
    stream_id: str, events: Iterable[tuple[dict[str, Any], str]], *, first_seq: int = 0
) -> list[ChainViolation]:
    """Check one stream, given ``(record, body_hash)`` pairs in the order they were recorded.

    :param first_seq: the seq the recorded range should start at (0 for a whole stream).
    """
    cursor = ChainCursor(first_seq)
    violations: list[ChainViolation] = []
    for record, digest in events:
        violations.extend(cursor.step(stream_id, record, digest))
    return violations


def verify_streams(events: Iterable[tuple[dict[str, Any], str]]) -> list[ChainViolation]:
    """Check every stream in a recorded log, keeping each stream's recorded order."""
    streams: dict[str, list[tuple[dict[str, Any], str]]] = {}
    for record, digest in events:
        streams.setdefault(record["stream_id"], []).append((record, digest))
    violations: list[ChainViolation] = []
    for stream_id in sorted(streams):
        violations.extend(verify_stream(stream_id, streams[stream_id]))
    return violations


class StreamChain:
    """Numbers and links the events of one producer stream; the one place a chain is built.

    Not thread-safe: a stream has a single writer (the SDK's background thread, or the simulator).

    >>> chain = StreamChain("client-1/billing-bot")
    >>> data = chain.seal(record, codec)   # sets stream_id, seq, prev_hash; returns framed bytes
    """

    __slots__ = ("stream_id", "seq", "prev_hash")

    def __init__(self, stream_id: str, *, seq: int = 0, prev_hash: str = "") -> None:
        self.stream_id = stream_id
        self.seq = seq
        self.prev_hash = prev_hash

    def seal(self, record: dict[str, Any], codec: AvroCodec) -> bytes:
        """Stamp ``record`` (a dict the caller owns) with its place in the stream and encode it."""
        record["stream_id"] = self.stream_id
        record["seq"] = self.seq
        record["prev_hash"] = self.prev_hash
        body = codec.encode_body(record)
        self.prev_hash = hashlib.sha256(body).hexdigest()
        self.seq += 1
        return codec.frame(body)
