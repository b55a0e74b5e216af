"""Signing keys, the signed bytes and the key ring: what verifies, and every way it must not."""

from __future__ import annotations

import json
import os
import stat

import pytest

from agentaudit.schemas.signing import (
    KeyRing,
    KeysFileError,
    SignatureVerdict,
    SigningKey,
    dump_keys,
    signed_message,
)

NOW = 1_764_000_000_000_000


def _ring(key: SigningKey, **entry):
    return KeyRing.from_document({"keys": [{"id": key.key_id, "public_key": key.public_key,
                                            "principal": "agent:bot", **entry}]})


def test_a_signature_verifies_for_its_registered_tenant_and_agent():
    key = SigningKey.generate("k1")
    message = signed_message("stream-checkpoint", "acme", "c1/bot", 1000, "ab" * 32)
    check = _ring(key, tenant="acme", agents=["bot*"]).verify("k1", message, key.sign(message), tenant="acme",
                                                             agent="bot-7", at_us=NOW)
    assert check.ok and check.principal == "agent:bot"


@pytest.mark.parametrize(("tenant", "agent"), [("other", "bot"), ("acme", "payments-bot")])
def test_a_key_registered_elsewhere_is_not_authorized(tenant, agent):
    key = SigningKey.generate("k1")
    message = signed_message("stream-checkpoint", tenant, "s", 1, "h")
    check = _ring(key, tenant="acme", agents=["bot"]).verify("k1", message, key.sign(message), tenant=tenant,
                                                            agent=agent)
    assert check.verdict is SignatureVerdict.NOT_AUTHORIZED


def test_a_changed_message_a_foreign_key_and_no_signature_all_fail():
    key, forger = SigningKey.generate("k1"), SigningKey.generate("k1")
    ring = _ring(key)
    message = signed_message("control", "acme", "kill", "bot")
    assert ring.verify("k1", message + b"x", key.sign(message), tenant="acme").verdict is SignatureVerdict.BAD_SIGNATURE
    assert ring.verify("k1", message, forger.sign(message), tenant="acme").verdict is SignatureVerdict.BAD_SIGNATURE
    assert ring.verify("k2", message, key.sign(message), tenant="acme").verdict is SignatureVerdict.UNKNOWN_KEY
    assert ring.verify(None, message, None, tenant="acme").verdict is SignatureVerdict.UNSIGNED


def test_the_purpose_and_the_field_boundaries_are_part_of_what_is_signed():
    key = SigningKey.generate("k1")
    ring = _ring(key)
    signature = key.sign(signed_message("stream-checkpoint", "acme", "a|b", "c"))
    assert not ring.verify("k1", signed_message("control", "acme", "a|b", "c"), signature, tenant="acme").ok
    assert not ring.verify("k1", signed_message("stream-checkpoint", "acme", "a", "b|c"), signature, tenant="acme").ok
    assert signed_message("p", "ab", "c") != signed_message("p", "a", "bc")


def test_a_revoked_key_verifies_only_what_was_signed_before_revocation():
    key = SigningKey.generate("k1")
    ring = _ring(key, not_before="2025-01-01T00:00:00Z", revoked_at="2025-12-01T00:00:00Z")
    message = signed_message("x", 1)
    signature = key.sign(message)
    before = ring.verify("k1", message, signature, tenant="t", at_us=1_750_000_000_000_000)
    after = ring.verify("k1", message, signature, tenant="t", at_us=1_765_000_000_000_000)
    too_early = ring.verify("k1", message, signature, tenant="t", at_us=1_700_000_000_000_000)
    assert before.ok and after.verdict is SignatureVerdict.REVOKED and too_early.verdict is SignatureVerdict.REVOKED


def test_private_keys_are_created_owner_only_and_refused_when_others_can_read(tmp_path):
    path = tmp_path / "keys" / "op.key"
    created = SigningKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and created.key_id == "op"
    loaded = SigningKey.load_or_create(path)
    message = signed_message("x", "y")
    assert _ring(created).verify("op", message, loaded.sign(message), tenant="t").ok
    os.chmod(path, 0o644)
    with pytest.raises(KeysFileError, match="owner only"):
        SigningKey.load(path)
    assert "PRIVATE" not in repr(created) and "***" in repr(created)


def test_keys_file_round_trip_and_errors_name_the_entry(tmp_path):
    key = SigningKey.generate("k1")
    path = tmp_path / "keys.yaml"
    path.write_text(dump_keys(_ring(key, tenant="acme", revoked_at="2026-01-01T00:00:00Z")))
    ring = KeyRing.load(path)
    assert "k1" in ring and ring.get("k1").tenant == "acme" and ring.get("k1").revoked_at_us is not None
    path.write_text(json.dumps({"keys": [{"id": "k9", "public_key": "not base64!", "principal": "agent:x"}]}))
    with pytest.raises(KeysFileError, match=r"keys\[0\] \(k9\): public_key"):
        KeyRing.load(path)
    path.write_text(json.dumps({"keys": [{"id": "k9", "public_key": key.public_key, "principal": "root"}]}))
    with pytest.raises(KeysFileError, match="principal must be"):
        KeyRing.load(path)
    path.write_text(json.dumps({"keys": [{"id": "k9", "public_key": key.public_key, "principal": "agent:x",
                                          "admin": True}]}))
    with pytest.raises(KeysFileError, match="unknown field"):
        KeyRing.load(path)


def test_a_keys_file_with_aliases_is_refused_before_it_expands(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(20))
    path = tmp_path / "keys.yaml"
    path.write_text(bomb)
    with pytest.raises(KeysFileError, match="aliases are not allowed"):
        KeyRing.load(path)
