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
from typing import Any

from agentaudit.schemas.signing import KeyRing, SignatureCheck, SignatureVerdict, SigningKey, signed_message

__all__ = ["CHECKPOINT_NAME", "CHECKPOINT_PURPOSE", "KEY_ATTRIBUTE", "SIG_ATTRIBUTE", "check_checkpoint",
           "checkpoint_attributes", "checkpoint_message", "is_checkpoint"]

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
    attributes = record.get("attributes")
    return bool(attributes) and SIG_ATTRIBUTE in attributes


def check_checkpoint(keyring: KeyRing, record: dict[str, Any]) -> SignatureCheck | None:
    """The verdict on a decoded action record's checkpoint, or None when it carries none.

    Checked for the record's own tenant and agent, at its event time (a key revoked at T verifies
    checkpoints stamped before T only). The verdict is remembered on the record, so the sink's
    stored verdict and the integrity rules never verify the same signature twice.
    """
    cached = record.get(_CACHE)
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
