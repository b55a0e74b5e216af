"""Integrity rules: a producer stream's hash chain (schemas.integrity) and signed checkpoints, in log order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentaudit.rules._compile import CHAIN_CHECKS, SIGNATURE_CHECKS
from agentaudit.rules._runtime._base import RuleRuntime, human_duration
from agentaudit.rules._runtime._hits import Clock, Record
from agentaudit.schemas.checkpoints import CHECKPOINT_NAME, check_checkpoint
from agentaudit.schemas.integrity import ChainCursor
from agentaudit.schemas.signing import KeyRing

if TYPE_CHECKING:
    from agentaudit.rules._compile import CompiledRule

__all__ = ["IntegrityRuntime", "Uncovered"]


@dataclass(slots=True)
class Uncovered:
    """A stretch of a stream with no valid signed checkpoint yet, and whether it was reported."""

    events: int  # events in it so far
    since: int  # event time of its first event
    tenant: str
    reported: bool
    first: Record  # its first event, slimmed (and JSON) for a report after the stream stops
    key: tuple[str, ...]  # the rule's key of that first event

    def to_json(self) -> list[Any]:
        return [self.events, self.since, self.tenant, self.reported, self.first, list(self.key)]

    @classmethod
    def from_json(cls, data: list[Any]) -> Uncovered:
        events, since, tenant, reported, first, key = data
        return cls(events, since, tenant, reported, first, tuple(key))


class IntegrityRuntime(RuleRuntime):
    """Sequence gaps and hash-chain breaks per producer stream (schemas.integrity semantics), in log order.

    With a key ring (``keyring``, set by the evaluator), the signature checks judge each stream's signed
    checkpoints (schemas.checkpoints): ``bad_signature``, ``unknown_key``, ``not_authorized`` and ``revoked``
    name a checkpoint whose signature cannot be believed; ``unsigned`` fires once per stretch of a stream
    left without a valid checkpoint for more than ``max_unsigned_events`` events or ``max_unsigned_for`` of
    event time (also when the watermark passes that time and nothing came: a forged stream that stops).
    The chain is judged by :class:`~agentaudit.schemas.integrity.ChainCursor`, the step
    ``verify_stream`` takes, from the first event this rule sees of a stream (a consumer may start
    mid-stream); an event reports the first problem its rule checks for.
    """

    keyring: KeyRing | None = None

    def __init__(self, rule: CompiledRule) -> None:
        super().__init__(rule)
        self.streams: dict[str, ChainCursor] = {}
        checks = rule.params["checks"]
        self._chain_checks = bool(checks & CHAIN_CHECKS) or not checks
        self._sig_checks = checks & SIGNATURE_CHECKS
        self.unsigned: dict[str, Uncovered] = {}  # by stream id

    def feed(self, r: Record) -> None:
        rule = self.rule
        if not rule.predicate(r):
            return
        if self._sig_checks and self.keyring is not None:
            self._feed_signature(r, self.keyring)
        if not self._chain_checks:
            return
        sid = r["stream_id"]
        cursor = self.streams.get(sid)
        if cursor is None:
            cursor = self.streams[sid] = ChainCursor()
        violations = cursor.step(sid, r, r.get("event_hash", ""))
        if violations:
            checks = rule.params["checks"]
            problem = next((v for v in violations if v.kind in checks), None)
            if problem is not None:
                self.hits.hit(r, rule.key(r), r["event_time_us"],
                              values={"detail": f"{problem.kind} at seq {problem.seq}: {problem.detail}"})

    def _feed_signature(self, r: Record, keyring: KeyRing) -> None:
        rule = self.rule
        checks = self._sig_checks
        sid = r["stream_id"]
        t = r["event_time_us"]
        check = check_checkpoint(keyring, r)
        if check is not None and check.ok:
            if r["name"] == CHECKPOINT_NAME and r["kind"] == "other":
                self.unsigned.pop(sid, None)  # a checkpoint event carries nothing of the agent's: all covered
                return
            stretch = self.unsigned[sid] = self._uncovered(r)
            stretch.events = 1  # the signing event itself waits for the next checkpoint
            return
        if check is not None and check.verdict.value in checks:
            self.hits.hit(r, rule.key(r), t, values={
                "detail": f"{check.verdict.value} checkpoint at seq {r['seq']}: {check.detail or check.verdict.value}"})
        open_stretch = self.unsigned.get(sid)
        if open_stretch is None:
            open_stretch = self.unsigned[sid] = self._uncovered(r)
        stretch = open_stretch
        stretch.events += 1
        if "unsigned" in checks and not stretch.reported and (
                stretch.events > rule.params["max_unsigned_events"] or t - stretch.since > rule.params["max_unsigned_us"]):
            stretch.reported = True
            self.hits.hit(r, rule.key(r), t, values={"detail": self._unsigned_detail(stretch, r["seq"])})

    def _uncovered(self, r: Record) -> Uncovered:
        """A stretch starting at ``r``, keeping its first event small (and JSON) for a late report."""
        first = {**self.rule.slim(r), "event_id": r["event_id"], "event_time_us": r["event_time_us"],
                 "stream_id": r["stream_id"], "agent_id": r["agent_id"], "seq": r["seq"]}
        return Uncovered(0, r["event_time_us"], r["tenant"], False, first, tuple(self.rule.key(r)))

    def _unsigned_detail(self, stretch: Uncovered, seq: int | None) -> str:
        where = f"up to seq {seq}" if seq is not None else "and nothing since"
        return (f"unsigned: {stretch.events} event(s) from seq {stretch.first.get('seq', '?')} {where} carry no valid "
                f"checkpoint (allowed {self.rule.params['max_unsigned_events']} events, "
                f"{human_duration(self.rule.params['max_unsigned_us'])})")

    def advance(self, clock: Clock) -> None:
        if self.unsigned and "unsigned" in self._sig_checks and self.keyring is not None:
            limit = self.rule.params["max_unsigned_us"]
            for stretch in self.unsigned.values():
                if not stretch.reported and clock.of(stretch.tenant) - stretch.since > limit:
                    stretch.reported = True  # the watermark passed: no checkpoint can come in time any more
                    rep = stretch.first
                    self.hits.hit(rep, stretch.key, rep["event_time_us"],
                                  values={"detail": self._unsigned_detail(stretch, None)})
        super().advance(clock)

    def feed_conflict(self, r: Record, first_hash: str) -> None:
        """``r`` repeats the event id of an event already judged, with another body (``first_hash`` was the first's).

        The copy is not judged (the first-seen copy stands, as readers show it); the check
        ``conflicting_duplicate`` reports it, naming the event id and both body hashes.
        """
        rule = self.rule
        if "conflicting_duplicate" not in rule.params["checks"] or not rule.predicate(r):
            return
        partition = r.get("_partition")  # the Kafka position, when the caller still puts it in the record
        where = f" (partition {partition} offset {r.get('_offset')})" if partition is not None else ""
        self.hits.hit(r, rule.key(r), r["event_time_us"], values={
            "detail": (f"event {r['event_id']} arrived again with another body: first copy {first_hash}, "
                       f"this copy {r['event_hash']}{where}; both are stored, readers show the first"),
            "first_hash": first_hash, "conflict_hash": r["event_hash"]})

    def state(self) -> Record:
        return {"accs": self.hits.state(),
                "streams": {sid: [c.expected_seq, c.previous_hash] for sid, c in self.streams.items()},
                "unsigned": {sid: u.to_json() for sid, u in self.unsigned.items()}}

    def load(self, state: Record) -> None:
        super().load(state)
        self.streams = {sid: ChainCursor(seq, digest) for sid, (seq, digest) in state.get("streams", {}).items()}
        self.unsigned = {sid: Uncovered.from_json(u) for sid, u in state.get("unsigned", {}).items()}
