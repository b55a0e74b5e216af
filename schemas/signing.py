"""Signatures in the contract: who signed a record, with which key, and whether that key may.

The one place that knows how Ed25519 signatures are made: the bytes signed (:func:`signed_message`,
domain-separated so a signature for one purpose never verifies for another), private keys on disk
(:class:`SigningKey`, mode 0600) and the registry of public keys (:class:`KeyRing`). The keys file
format: ``docs/signing.md``.

>>> key = SigningKey.load_or_create(Path("~/.agentaudit/keys/acme.key").expanduser(), key_id="acme-1")
>>> sig = key.sign(signed_message("stream-checkpoint", "acme", "c1/bot", 1000, "ab12..."))
>>> ring = KeyRing.load("keys.yaml")
>>> ring.verify("acme-1", message, sig, tenant="acme", agent="bot", at_us=now).ok
True
"""

from __future__ import annotations

import base64
import binascii
import enum
import fnmatch
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agentaudit.schemas.exceptions import SchemaError

__all__ = [
    "KEYS_FILE_MAX_BYTES",
    "KeyEntry",
    "KeyRing",
    "KeysFileError",
    "SignatureCheck",
    "SignatureVerdict",
    "SigningKey",
    "dump_keys",
    "load_plain_yaml",
    "public_key_text",
    "signed_message",
]

#: A keys file is small; a bigger one is refused before it is parsed.
KEYS_FILE_MAX_BYTES = 1 << 20
_SEPARATOR = b"\x1f"  # ASCII unit separator: never in ids, and fields are length-prefixed anyway


class KeysFileError(SchemaError):
    """A keys file or a private key file cannot be used; the message names the file and the entry."""


def signed_message(purpose: str, *fields: str | int | bytes) -> bytes:
    """The exact bytes a signature covers: ``agentaudit/<purpose>`` then each field, length-prefixed.

    Length prefixes make the join unambiguous (``"a|b" + "c"`` never equals ``"a" + "b|c"``) and the
    purpose keeps a stream checkpoint from ever verifying as a control command.
    """
    parts = [f"agentaudit/{purpose}".encode()]
    for value in fields:
        data = value if isinstance(value, bytes) else str(value).encode()
        parts.append(b"%d:" % len(data) + data)
    return _SEPARATOR.join(parts)


class SigningKey:
    """A private Ed25519 key with the id it is registered under.

    :param key_id: the id that signatures carry and the keys file registers.
    :param private: the key itself.
    """

    __slots__ = ("key_id", "_private")

    def __init__(self, key_id: str, private: Ed25519PrivateKey) -> None:
        if not key_id or any(c.isspace() for c in key_id):
            raise KeysFileError(f"key id {key_id!r} must be a non-empty word")
        self.key_id = key_id
        self._private = private

    def __repr__(self) -> str:  # never prints the key
        return f"SigningKey(key_id={self.key_id!r}, private=***)"

    @classmethod
    def generate(cls, key_id: str) -> SigningKey:
        return cls(key_id, Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: str | Path, *, key_id: str | None = None) -> SigningKey:
        """Read a PEM (PKCS#8) private key; the key id defaults to the file's stem.

        :raises KeysFileError: missing, unreadable, not Ed25519, or readable by others.
        """
        path = Path(path)
        try:
            mode = path.stat().st_mode & 0o077
            data = path.read_bytes()
        except OSError as exc:
            raise KeysFileError(f"{path}: cannot read the private key: {exc.strerror or exc}") from exc
        if mode:
            raise KeysFileError(f"{path}: a private key must be readable by its owner only (chmod 600 {path})")
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise KeysFileError(f"{path}: not a PEM private key: {exc}") from exc
        if not isinstance(private, Ed25519PrivateKey):
            raise KeysFileError(f"{path}: an Ed25519 key is needed, got {type(private).__name__}")
        return cls(key_id or path.stem, private)

    @classmethod
    def load_or_create(cls, path: str | Path, *, key_id: str | None = None) -> SigningKey:
        """Load the key at ``path``, or create it there (mode 0600, parent 0700) when it is missing."""
        path = Path(path)
        if path.exists():
            return cls.load(path, key_id=key_id)
        key = cls.generate(key_id or path.stem)
        key.save(path)
        return key

    def save(self, path: str | Path) -> None:
        """Write the private key as PEM, readable by its owner only; never overwrites."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = self._private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    @property
    def public_key(self) -> str:
        """Base64 of the raw public key, as a keys file registers it."""
        return public_key_text(self._private.public_key())


def public_key_text(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


class SignatureVerdict(str, enum.Enum):  # noqa: UP042 - StrEnum would change str() of a verdict from the member name to its value
    """What a signature check found; everything but ``valid`` is an integrity finding."""

    VALID = "valid"
    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    NOT_AUTHORIZED = "not_authorized"  # a real key, but not registered for this tenant or agent
    REVOKED = "revoked"  # signed at or after revoked_at, or before not_before


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    verdict: SignatureVerdict
    key_id: str = ""
    principal: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict is SignatureVerdict.VALID


@dataclass(frozen=True)
class KeyEntry:
    """One registered public key."""

    key_id: str
    public: Ed25519PublicKey = field(repr=False)
    principal: str
    tenant: str = "*"
    agents: tuple[str, ...] = ("*",)
    not_before_us: int | None = None
    revoked_at_us: int | None = None

    def covers(self, tenant: str, agent: str | None) -> bool:
        if self.tenant not in ("*", tenant):
            return False
        return agent is None or any(fnmatch.fnmatchcase(agent, pattern) for pattern in self.agents)

    def in_force(self, at_us: int | None) -> bool:
        if at_us is None:
            return self.revoked_at_us is None
        if self.not_before_us is not None and at_us < self.not_before_us:
            return False
        return self.revoked_at_us is None or at_us < self.revoked_at_us


class KeyRing:
    """The registered public keys; :meth:`verify` says whether a signature may be believed.

    An empty ring verifies nothing: every signature is ``unknown_key``.
    """

    def __init__(self, entries: Iterable[KeyEntry] = (), *, source: str = "<memory>") -> None:
        self.source = source
        self._keys: dict[str, KeyEntry] = {}
        for entry in entries:
            if entry.key_id in self._keys:
                raise KeysFileError(f"{source}: key id {entry.key_id!r} is registered twice")
            self._keys[entry.key_id] = entry

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def get(self, key_id: str) -> KeyEntry | None:
        return self._keys.get(key_id)

    @classmethod
    def load(cls, path: str | Path) -> KeyRing:
        """Read a keys file. :raises KeysFileError: naming the file and the entry at fault."""
        path = Path(path)
        try:
            size = path.stat().st_size
            if size > KEYS_FILE_MAX_BYTES:
                raise KeysFileError(f"{path}: {size} bytes is over the {KEYS_FILE_MAX_BYTES}-byte bound of a keys file")
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise KeysFileError(f"{path}: cannot read the keys file: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise KeysFileError(f"{path}: not UTF-8 text: {exc}") from exc
        try:
            document = load_plain_yaml(text)
        except yaml.YAMLError as exc:
            raise KeysFileError(f"{path}: not valid YAML: {exc}") from exc
        return cls.from_document(document, source=str(path))

    @classmethod
    def from_document(cls, document: Any, *, source: str = "<memory>") -> KeyRing:
        if document is None:
            return cls(source=source)
        if not isinstance(document, Mapping) or not isinstance(document.get("keys", []), list):
            raise KeysFileError(f"{source}: a keys file is a mapping with a 'keys' list")
        return cls((_entry(item, i, source) for i, item in enumerate(document.get("keys") or [])), source=source)

    def to_document(self) -> dict[str, Any]:
        """The ring as a keys-file document (for ``agentaudit keys`` to write back)."""
        out = []
        for e in self._keys.values():
            item: dict[str, Any] = {"id": e.key_id, "public_key": public_key_text(e.public), "principal": e.principal,
                                    "tenant": e.tenant, "agents": list(e.agents)}
            if e.not_before_us is not None:
                item["not_before"] = _iso(e.not_before_us)
            if e.revoked_at_us is not None:
                item["revoked_at"] = _iso(e.revoked_at_us)
            out.append(item)
        return {"keys": out}

    def verify(self, key_id: str | None, message: bytes, signature: bytes | None, *, tenant: str,
               agent: str | None = None, at_us: int | None = None) -> SignatureCheck:
        """Check ``signature`` over ``message`` by ``key_id``, for ``tenant`` (and ``agent``) at ``at_us``."""
        if not key_id or not signature:
            return SignatureCheck(SignatureVerdict.UNSIGNED, key_id or "")
        entry = self._keys.get(key_id)
        if entry is None:
            return SignatureCheck(SignatureVerdict.UNKNOWN_KEY, key_id, detail=f"key {key_id!r} is not registered")
        try:
            entry.public.verify(signature, message)
        except InvalidSignature:
            return SignatureCheck(SignatureVerdict.BAD_SIGNATURE, key_id, entry.principal,
                                  f"signature does not verify with key {key_id!r}")
        if not entry.covers(tenant, agent):
            return SignatureCheck(SignatureVerdict.NOT_AUTHORIZED, key_id, entry.principal,
                                  f"key {key_id!r} is registered for tenant {entry.tenant!r}, agents {list(entry.agents)}, "
                                  f"not tenant {tenant!r} agent {agent!r}")
        if not entry.in_force(at_us):
            return SignatureCheck(SignatureVerdict.REVOKED, key_id, entry.principal,
                                  f"key {key_id!r} was not in force at {at_us}")
        return SignatureCheck(SignatureVerdict.VALID, key_id, entry.principal)


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML that refuses anchors and aliases: a keys file never needs them, and they are how a
    few hundred bytes expand into gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]  # PyYAML's stubs leave it unannotated
            raise yaml.YAMLError(f"aliases are not allowed (line {event.start_mark.line + 1})")
        return super().compose_node(parent, index)


def load_plain_yaml(text: str) -> Any:
    """Parse YAML with the safe loader, refusing anchors and aliases.

    :raises yaml.YAMLError: malformed text, or an alias (named with its line).
    """
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass that also refuses aliases


def _entry(item: Any, index: int, source: str) -> KeyEntry:
    where = f"{source}: keys[{index}]"
    if not isinstance(item, Mapping):
        raise KeysFileError(f"{where}: an entry is a mapping with id, public_key and principal")
    unknown = set(item) - {"id", "public_key", "principal", "tenant", "agents", "not_before", "revoked_at"}
    if unknown:
        raise KeysFileError(f"{where}: unknown field(s) {sorted(unknown)}")
    for name in ("id", "public_key", "principal"):
        if not isinstance(item.get(name), str) or not item[name]:
            raise KeysFileError(f"{where}: '{name}' is required (a string)")
    try:
        raw = base64.b64decode(item["public_key"], validate=True)
        public = Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise KeysFileError(f"{where} ({item['id']}): public_key is not base64 of a 32-byte Ed25519 key") from exc
    agents = item.get("agents", ["*"])
    if isinstance(agents, str):
        agents = [agents]
    if not isinstance(agents, list) or not all(isinstance(a, str) and a for a in agents):
        raise KeysFileError(f"{where} ({item['id']}): agents is a list of agent ids or globs")
    principal = item["principal"]
    if principal.split(":", 1)[0] not in ("agent", "human", "service") or ":" not in principal:
        raise KeysFileError(f"{where} ({item['id']}): principal must be agent:<id>, human:<id> or service:<id>")
    return KeyEntry(key_id=item["id"], public=public, principal=principal, tenant=str(item.get("tenant", "*")),
                    agents=tuple(agents), not_before_us=_time_us(item.get("not_before"), where),
                    revoked_at_us=_time_us(item.get("revoked_at"), where))


def _time_us(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise KeysFileError(f"{where}: {value!r} is not an ISO-8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC).isoformat().replace("+00:00", "Z")


def dump_keys(ring: KeyRing) -> str:
    """A keys file's text for ``ring`` (JSON is valid YAML, and diffs cleanly)."""
    return json.dumps(ring.to_document(), indent=2) + "\n"
