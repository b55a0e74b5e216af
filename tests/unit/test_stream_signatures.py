"""Signed stream checkpoints judged by the integrity rules (pure logic: records built as the SDK seals them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agentaudit.rules.evaluator import load_evaluator
from agentaudit.rules.harness import BASE_TIME_US, _complete
from agentaudit.schemas import AvroCodec, KeyRing, SigningKey, StreamChain, body_hash, frame_body
from agentaudit.schemas.checkpoints import CHECKPOINT_NAME, check_checkpoint, checkpoint_attributes

ALICE_BOT = SigningKey.generate("acme-bot-1")
OTHER_BOT = SigningKey.generate("acme-other-1")
MALLORY = SigningKey.generate("mallory-1")


def _ring(*, revoked_at: str | None = None) -> KeyRing:
    bot = {"id": ALICE_BOT.key_id, "public_key": ALICE_BOT.public_key, "principal": "agent:bot", "tenant": "acme",
           "agents": ["bot"]}
    if revoked_at is not None:
        bot["revoked_at"] = revoked_at
    other = {"id": OTHER_BOT.key_id, "public_key": OTHER_BOT.public_key, "principal": "agent:other",
             "tenant": "acme", "agents": ["other"]}
    return KeyRing.from_document({"keys": [bot, other]})


def _stream(n: int, key: SigningKey | None, *, every: int = 10, sid: str = "c1/bot", agent: str = "bot",
            t0: int = BASE_TIME_US, tail: bool = True, offset: int = 0) -> list[dict[str, Any]]:
    """``n`` events of one stream, a checkpoint every ``every`` events and a checkpoint event at the end."""
    codec = AvroCodec("action")
    chain = StreamChain(sid)
    out = []
    for i in range(n + (1 if tail and key else 0)):
        rec = _complete({"agent_id": agent, "tenant": "acme"}, t0 + i * 1000, f"{sid}/{t0}/{i}")
        if i == n:
            rec["name"] = CHECKPOINT_NAME
        if key is not None and i > 0 and (i % every == 0 or i == n):
            rec["attributes"] = checkpoint_attributes(key, tenant="acme", agent=agent, stream_id=sid, seq=chain.seq,
                                                      prev_hash=chain.prev_hash)
        data = chain.seal(rec, codec)
        rec["event_hash"] = body_hash(frame_body(data))
        rec["_partition"], rec["_offset"] = 0, offset + i
        out.append(rec)
    return out


def _rules(records: list[dict[str, Any]], ring: KeyRing | None) -> dict[str, list[str]]:
    evaluator = load_evaluator(None, keyring=ring)
    incidents = evaluator.evaluate(records) + evaluator.flush()
    found: dict[str, list[str]] = {}
    for incident in incidents:
        if incident.rule_id.startswith("integrity."):
            found.setdefault(incident.rule_id, []).append(incident.summary)
    return found


def test_a_signed_stream_verifies_and_raises_nothing() -> None:
    records = _stream(95, ALICE_BOT)
    assert _rules(records, _ring()) == {}
    checks = [check_checkpoint(_ring(), r) for r in records]
    assert sum(1 for c in checks if c is not None and c.ok) == 10


def test_without_keys_nothing_is_judged() -> None:
    assert _rules(_stream(3000, None), None) == {}


def test_an_unsigned_stream_is_reported_once_when_keys_are_required() -> None:
    found = _rules(_stream(3000, None), _ring())
    assert list(found) == ["integrity.unsigned-stream"]
    assert "2001 event(s) from seq 0" in found["integrity.unsigned-stream"][0]


def test_a_short_unsigned_stream_is_reported_when_the_watermark_passes() -> None:
    """A forger who sends a few events and stops is caught by time, not by count."""
    found = _rules(_stream(5, None), _ring())
    assert list(found) == ["integrity.unsigned-stream"]


def test_a_recomputed_chain_with_copied_signatures_is_a_bad_signature() -> None:
    """Attack: re-send the stream with benign names and a recomputed chain, keeping the original signatures."""
    genuine = _stream(30, ALICE_BOT)
    codec = AvroCodec("action")
    chain = StreamChain("c1/bot")
    forged = []
    for rec in genuine:
        rec = {k: v for k, v in rec.items() if not k.startswith("_")}
        rec["name"] = "crm.lookup"
        data = chain.seal(rec, codec)
        rec["event_hash"] = body_hash(frame_body(data))
        rec["_partition"], rec["_offset"] = 0, len(forged)
        forged.append(rec)
    found = _rules(forged, _ring())
    assert "integrity.bad-signature" in found
    assert "bad_signature checkpoint at seq" in found["integrity.bad-signature"][0]


def test_an_unregistered_key_and_another_agents_key() -> None:
    # a checkpoint that cannot be believed covers nothing: the stream is also unsigned
    assert set(_rules(_stream(30, MALLORY), _ring())) == {"integrity.bad-signature", "integrity.unsigned-stream"}
    found = _rules(_stream(30, OTHER_BOT), _ring())
    assert set(found) == {"integrity.unauthorized-key", "integrity.unsigned-stream"}
    assert "not_authorized" in found["integrity.unauthorized-key"][0]


def test_rotation_revoked_key_verifies_before_and_not_after() -> None:
    revoked = BASE_TIME_US + 1_000_000_000
    before = _stream(30, ALICE_BOT, t0=BASE_TIME_US)
    after = _stream(30, ALICE_BOT, sid="c2/bot", t0=revoked + 1, offset=100)
    ring = _ring(revoked_at=datetime.fromtimestamp(revoked / 1e6, tz=UTC).isoformat())
    assert _rules(before, ring) == {}
    found = _rules(after, ring)
    assert "integrity.unauthorized-key" in found and "revoked" in found["integrity.unauthorized-key"][0]


def test_hostile_checkpoint_attributes_are_verdicts_never_errors() -> None:
    """Attack: checkpoint attributes an agent controls (not base64, wrong lengths, empty, 1,000-byte signatures,
    a missing or unknown key id) are each judged bad or unknown; none raises into the sink or the rules."""
    ring = _ring()
    base = _stream(2, None)[1]
    values = ["", "!!!", "AAAAA", "AAAA", "eHh4" * 340, "A" * 88]
    for sig in values:
        for key_id in ("acme-bot-1", "", "nobody"):
            record = {**base, "attributes": {"agentaudit.sig": sig, "agentaudit.key": key_id}}
            check = check_checkpoint(ring, record)
            assert check is not None and check.verdict.value in ("bad_signature", "unknown_key"), (sig, key_id)
