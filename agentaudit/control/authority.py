"""Who may command agents and decide incidents: signed records, and the grants that authorize them.

Every control command and incident lifecycle event is signed by an operator identity. The
signature travels in two Kafka headers (:data:`KEY_HEADER`, :data:`SIGNATURE_HEADER`) and covers
the record's purpose, its topic and its exact value bytes (:func:`record_message`), so a record
cannot be edited, moved to another topic, or passed off as another kind.

An authority file says which keys exist and what their principals may do::

    keys:                                   # same entries as a keys file (agentaudit.schemas.signing)
      - {id: ops-alice-1, public_key: "...", principal: "human:alice"}
      - {id: dashboard-1, public_key: "...", principal: "service:dashboard"}
    grants:
      - principal: "human:alice"            # globs allowed: "human:*"
        may: [kill, pause, block, require_approval, clear, promote, acknowledge, assign, resolve]
        tenants: ["*"]
      - principal: "service:dashboard"      # signs for the person it names in the record
        on_behalf_of: ["human:*"]

A record is applied when (1) its signature verifies with a registered key in force when it was
issued, (2) the issuer it names is the key's principal, or the key's principal may sign on
behalf of that issuer, and (3) the issuer holds a grant for the action and the tenant.
Anything else is refused with a reason; callers ignore it and raise an integrity incident.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agentaudit.exceptions import AgentAuditError
from agentaudit.schemas import KeyRing, KeysFileError, SigningKey, signed_message
from agentaudit.schemas.signing import KEYS_FILE_MAX_BYTES, load_plain_yaml

__all__ = [
    "ACTIONS",
    "KEY_HEADER",
    "SIGNATURE_HEADER",
    "Authority",
    "AuthorityError",
    "Grant",
    "Verdict",
    "read_signature",
    "record_message",
    "sign_headers",
]

KEY_HEADER = "agentaudit-key-id"
SIGNATURE_HEADER = "agentaudit-signature"

#: What a grant may name: control command types and lifecycle decisions, in people's words.
ACTIONS = frozenset({"kill", "pause", "block", "require_approval", "clear", "promote",
                     "acknowledge", "assign", "resolve", "reopen", "comment", "escalate", "open", "notify"})


class AuthorityError(AgentAuditError):
    """An authority file cannot be used; the message names the file and the entry."""


def record_message(purpose: str, topic: str, value: bytes) -> bytes:
    """The bytes a control or lifecycle record's signature covers."""
    return signed_message(purpose, topic, value)


def sign_headers(key: SigningKey, purpose: str, topic: str, value: bytes) -> list[tuple[str, bytes]]:
    """The two headers that sign ``value`` for ``topic``; pass them to ``produce(headers=...)``."""
    return [(KEY_HEADER, key.key_id.encode()), (SIGNATURE_HEADER, key.sign(record_message(purpose, topic, value)))]


@dataclass(frozen=True, slots=True)
class Grant:
    """What the principals matching ``principal`` may do, for which tenants, and for whom they sign."""

    principal: str
    may: frozenset[str] = frozenset()
    tenants: tuple[str, ...] = ("*",)
    on_behalf_of: tuple[str, ...] = ()

    def matches(self, principal: str) -> bool:
        return fnmatch.fnmatchcase(principal, self.principal)

    def allows(self, action: str, tenant: str) -> bool:
        return action in self.may and any(fnmatch.fnmatchcase(tenant, t) for t in self.tenants)

    def speaks_for(self, issuer: str) -> bool:
        return any(fnmatch.fnmatchcase(issuer, pattern) for pattern in self.on_behalf_of)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a record may be applied; ``reason`` says why not, ``signer`` is the key's principal."""

    ok: bool
    reason: str = ""
    signer: str = ""
    key_id: str = ""


class Authority:
    """Registered operator keys and their grants; :meth:`check` decides one record.

    :param keys: the public keys of operators and services.
    :param grants: who may do what, for which tenants.
    """

    def __init__(self, keys: KeyRing, grants: Sequence[Grant] = (), *, source: str = "<memory>") -> None:
        self.keys = keys
        self.grants = tuple(grants)
        self.source = source

    @classmethod
    def load(cls, path: str | Path) -> Authority:
        """Read an authority file. :raises AuthorityError: naming the file and the entry at fault."""
        path = Path(path)
        try:
            size = path.stat().st_size
            if size > KEYS_FILE_MAX_BYTES:
                raise AuthorityError(f"{path}: {size} bytes is over the {KEYS_FILE_MAX_BYTES}-byte bound")
            document = load_plain_yaml(path.read_text(encoding="utf-8")) if size else {}
        except OSError as exc:
            raise AuthorityError(f"{path}: cannot read the authority file: {exc.strerror or exc}") from exc
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise AuthorityError(f"{path}: not valid YAML: {exc}") from exc
        return cls.from_document(document, source=str(path))

    @classmethod
    def from_document(cls, document: Any, *, source: str = "<memory>") -> Authority:
        if document is None:
            document = {}
        if not isinstance(document, Mapping):
            raise AuthorityError(f"{source}: an authority file is a mapping with 'keys' and 'grants'")
        unknown = set(document) - {"keys", "grants"}
        if unknown:
            raise AuthorityError(f"{source}: unknown section(s) {sorted(unknown)}; expected keys and grants")
        try:
            keys = KeyRing.from_document({"keys": document.get("keys") or []}, source=source)
        except KeysFileError as exc:
            raise AuthorityError(str(exc)) from exc
        raw = document.get("grants") or []
        if not isinstance(raw, list):
            raise AuthorityError(f"{source}: 'grants' is a list")
        return cls(keys, [_grant(item, i, source) for i, item in enumerate(raw)], source=source)

    def may(self, issuer: str, action: str, tenant: str) -> bool:
        """Whether ``issuer`` holds a grant for ``action`` on ``tenant``."""
        return any(g.matches(issuer) and g.allows(action, tenant) for g in self.grants)

    def check(self, *, purpose: str, topic: str, value: bytes, headers: Iterable[tuple[str, bytes | None]] | None,
              action: str, tenant: str, issuer: str, at_us: int | None) -> Verdict:
        """Decide whether a record naming ``issuer`` doing ``action`` on ``tenant`` may be applied."""
        key_id, signature = read_signature(headers)
        check = self.keys.verify(key_id, record_message(purpose, topic, value), signature, tenant=tenant,
                                 at_us=at_us)
        if not check.ok:
            return Verdict(False, f"{check.verdict.value}: {check.detail or 'no signature headers'}",
                           check.principal, check.key_id)
        signer = check.principal
        if signer != issuer and not any(g.matches(signer) and g.speaks_for(issuer) for g in self.grants):
            return Verdict(False, f"key {key_id!r} belongs to {signer}, who may not sign for {issuer}", signer,
                           check.key_id)
        if not self.may(issuer, action, tenant):
            return Verdict(False, f"{issuer} holds no grant to {action} on tenant {tenant!r}", signer, check.key_id)
        return Verdict(True, "", signer, check.key_id)


def read_signature(headers: Iterable[tuple[str, bytes | None]] | None) -> tuple[str | None, bytes | None]:
    """``(key id, signature)`` from a message's headers; the first of each counts."""
    key_id: str | None = None
    signature: bytes | None = None
    for name, value in headers or ():
        if name == KEY_HEADER and key_id is None and value:
            key_id = value.decode("utf-8", "replace")
        elif name == SIGNATURE_HEADER and signature is None and value:
            signature = bytes(value)
    return key_id, signature


def _grant(item: Any, index: int, source: str) -> Grant:
    where = f"{source}: grants[{index}]"
    if not isinstance(item, Mapping) or not isinstance(item.get("principal"), str) or not item["principal"]:
        raise AuthorityError(f"{where}: a grant is a mapping with a 'principal'")
    unknown = set(item) - {"principal", "may", "tenants", "on_behalf_of"}
    if unknown:
        raise AuthorityError(f"{where} ({item['principal']}): unknown field(s) {sorted(unknown)}")
    may = _strings(item.get("may", []), f"{where} ({item['principal']}): may")
    bad = set(may) - ACTIONS
    if bad:
        raise AuthorityError(f"{where} ({item['principal']}): unknown action(s) {sorted(bad)}; "
                             f"known: {sorted(ACTIONS)}")
    return Grant(principal=item["principal"], may=frozenset(may),
                 tenants=tuple(_strings(item.get("tenants", ["*"]), f"{where}: tenants")),
                 on_behalf_of=tuple(_strings(item.get("on_behalf_of", []), f"{where}: on_behalf_of")))


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise AuthorityError(f"{where} is a list of strings")
    return value
