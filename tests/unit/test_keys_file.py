"""The keys file as `agentaudit keys` changes it: register, revoke, rotate; refusals name the file and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentaudit.schemas import KeyRing, KeysFileError, SigningKey, signed_message
from agentaudit.schemas.keys_file import add_key, read_keys, revoke_key, rotate_key


def test_add_revoke_rotate_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    old = SigningKey.generate("bot-1")
    add_key(path, key_id="bot-1", public_key=old.public_key, principal="agent:bot", tenant="acme", agents=["bot*"])
    assert read_keys(path).get("bot-1").agents == ("bot*",)  # type: ignore[union-attr]  # None fails the test
    new = SigningKey.generate("bot-2")
    ring = rotate_key(path, "bot-1", new, at="2026-12-24T10:00:00Z")
    document = json.loads(path.read_text())
    assert [k["id"] for k in document["keys"]] == ["bot-1", "bot-2"]
    assert document["keys"][0]["revoked_at"] == document["keys"][1]["not_before"] == "2026-12-24T10:00:00Z"
    assert document["keys"][1]["agents"] == ["bot*"] and document["keys"][1]["tenant"] == "acme"
    moment = 1_798_106_400_000_000  # 2026-12-24T10:00:00Z
    message = signed_message("stream-checkpoint", "acme", "bot-a", "s/bot-a", 5, "ab")
    assert ring.verify("bot-1", message, old.sign(message), tenant="acme", agent="bot-a", at_us=moment - 1).ok
    assert ring.verify("bot-1", message, old.sign(message), tenant="acme", agent="bot-a",
                       at_us=moment).verdict.value == "revoked"
    assert ring.verify("bot-2", message, new.sign(message), tenant="acme", agent="bot-a", at_us=moment).ok
    assert ring.verify("bot-2", message, new.sign(message), tenant="acme", agent="bot-a",
                       at_us=moment - 1).verdict.value == "revoked"  # not yet valid
    assert KeyRing.load(path).to_document() == ring.to_document()


def test_refusals(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key = SigningKey.generate("bot-1")
    add_key(path, key_id="bot-1", public_key=key.public_key, principal="agent:bot")
    with pytest.raises(KeysFileError, match="already registered"):
        add_key(path, key_id="bot-1", public_key=key.public_key, principal="agent:bot")
    with pytest.raises(KeysFileError, match="no key 'bot-9' to revoke"):
        revoke_key(path, "bot-9")
    with pytest.raises(KeysFileError, match="no key 'bot-9' to rotate"):
        rotate_key(path, "bot-9", SigningKey.generate("bot-10"))
    before = path.read_text()
    with pytest.raises(KeysFileError, match="principal must be"):  # an invalid entry is never written
        add_key(path, key_id="bot-2", public_key=key.public_key, principal="bot")
    with pytest.raises(KeysFileError, match="public_key is not base64"):
        add_key(path, key_id="bot-3", public_key="not-a-key", principal="agent:bot")
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.json"]  # no temporary file left behind
