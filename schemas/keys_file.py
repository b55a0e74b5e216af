"""Changing a keys file: register, revoke and rotate producer keys (what ``agentaudit keys`` does).

Every change reads the file, applies the change to its document, checks the result as
:meth:`KeyRing.from_document` would read it, and replaces the file atomically (a reader sees
the old file or the new one, never half of one). Revoking never deletes: a revoked key still
verifies what it signed before ``revoked_at``, which is what rotation relies on::

    rotate_key(path, "acme-bot-1", SigningKey.generate("acme-bot-2"))   # old revoked now, new in force now
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentaudit.schemas.signing import KeyRing, KeysFileError, SigningKey, dump_keys

__all__ = ["add_key", "read_keys", "revoke_key", "rotate_key", "utc_now_iso"]


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def read_keys(path: str | Path) -> KeyRing:
    """The keys file at ``path``; an absent file is an empty ring (the first ``add`` creates it)."""
    path = Path(path)
    return KeyRing.load(path) if path.exists() else KeyRing(source=str(path))


def add_key(path: str | Path, *, key_id: str, public_key: str, principal: str, tenant: str = "*",
            agents: list[str] | None = None, not_before: str | None = None) -> KeyRing:
    """Register a public key. :raises KeysFileError: the id is taken, or the entry is invalid."""
    ring = read_keys(path)
    if key_id in ring:
        raise KeysFileError(f"{path}: key id {key_id!r} is already registered; pick another id (rotate makes a new one)")
    entry: dict[str, Any] = {"id": key_id, "public_key": public_key, "principal": principal, "tenant": tenant,
                             "agents": agents or ["*"]}
    if not_before:
        entry["not_before"] = not_before
    document = ring.to_document()
    document["keys"].append(entry)
    return _write(path, document)


def revoke_key(path: str | Path, key_id: str, *, at: str | None = None) -> KeyRing:
    """Set ``revoked_at`` (default now): signatures at or after it no longer verify, earlier ones still do."""
    ring = read_keys(path)
    if key_id not in ring:
        raise KeysFileError(f"{path}: no key {key_id!r} to revoke; `agentaudit keys list` shows the ids")
    document = ring.to_document()
    for entry in document["keys"]:
        if entry["id"] == key_id:
            entry["revoked_at"] = at or utc_now_iso()
    return _write(path, document)


def rotate_key(path: str | Path, old_id: str, new_key: SigningKey, *, at: str | None = None) -> KeyRing:
    """Register ``new_key`` for what ``old_id`` covers (principal, tenant, agents), in force from ``at``
    (default now), and revoke ``old_id`` at the same moment."""
    ring = read_keys(path)
    old = ring.get(old_id)
    if old is None:
        raise KeysFileError(f"{path}: no key {old_id!r} to rotate; `agentaudit keys list` shows the ids")
    if new_key.key_id in ring:
        raise KeysFileError(f"{path}: key id {new_key.key_id!r} is already registered; pick another id")
    moment = at or utc_now_iso()
    document = ring.to_document()
    for entry in document["keys"]:
        if entry["id"] == old_id:
            entry["revoked_at"] = moment
    document["keys"].append({"id": new_key.key_id, "public_key": new_key.public_key, "principal": old.principal,
                             "tenant": old.tenant, "agents": list(old.agents), "not_before": moment})
    return _write(path, document)


def _write(path: str | Path, document: dict[str, Any]) -> KeyRing:
    path = Path(path)
    ring = KeyRing.from_document(document, source=str(path))  # refuse to write what could not be read back
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(dump_keys(ring))
        os.chmod(tmp, 0o644)  # public keys: readable by the consumers
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ring
