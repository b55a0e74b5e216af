"""Keyed digests of inputs, outputs and approved arguments: HMAC-SHA256 with a per-tenant key.

An unkeyed SHA-256 of a short secret (a one-time code, a PIN) gives the secret back to anyone who
hashes every candidate, in well under a second for a 6-digit code. Keyed, the stored digest says
only "same input or not" to whoever lacks the key.

The key, first found wins (read once, when the client is built):

1. ``digest_key`` (``AGENTAUDIT_DIGEST_KEY``): the operator's secret. Give every process of a
   tenant the same one: the agents, and whatever records approvals for them.
2. ``digest_key_file`` (``AGENTAUDIT_DIGEST_KEY_FILE``): a file holding that secret (surrounding
   whitespace ignored); refused when group or others may read it.
3. Otherwise a random 32-byte secret generated on first use and kept at
   ``<spool dir>/keys/digest-<tenant>.key`` (mode 0600), reused by later clients on that host.

The tenant key is ``HMAC-SHA256(secret, "agentaudit digest v1" NUL tenant)``: one secret serves many
tenants, and their digests of the same input differ.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
from pathlib import Path

from agentaudit.producers.exceptions import SdkConfigError

__all__ = ["Digester", "key_path"]

_CONTEXT = b"agentaudit digest v1\x00"
_BIND = b"args_hash\x00"


def key_path(spool_dir: Path, tenant: str) -> Path:
    """Where a generated key of ``tenant`` is kept: a file name that no tenant name can escape from."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", tenant)[:64].lstrip(".") or "_"
    suffix = hashlib.sha256(tenant.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return spool_dir / "keys" / f"digest-{safe}-{suffix}.key"


class Digester:
    """Computes the digests an event carries, with the tenant's key.

    :param secret: the secret the tenant key is derived from.
    :param tenant: the tenant whose key this is.
    :param source: where the secret came from (``setting``, a file path), for logs.
    """

    __slots__ = ("_inner", "_key", "_outer", "key_id", "source")

    def __init__(self, secret: bytes, tenant: str, source: str) -> None:
        if len(secret) < 16:
            raise SdkConfigError(f"the digest key from {source} has {len(secret)} bytes; use at least 16 "
                                 "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)")
        self._key = hmac.digest(secret, _CONTEXT + tenant.encode("utf-8", "surrogatepass"), "sha256")
        # HMAC (RFC 2104) with its two keyed SHA-256 states made once: each digest copies them, about a
        # third of the cost of hmac.digest() per call (which keys OpenSSL afresh); a test checks equality
        block = self._key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        #: Names the key without revealing it: two processes agree on digests iff their key ids match.
        self.key_id = hashlib.sha256(b"agentaudit key id\x00" + self._key).hexdigest()[:16]
        self.source = source

    def digest(self, text: str) -> str:
        """Hex HMAC-SHA256 of canonical text (see :func:`~agentaudit.producers.redaction.canonical`)."""
        inner = self._inner.copy()
        inner.update(text.encode("utf-8", "surrogatepass"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def bind(self, args_hash: str) -> str:
        """What an event records for an approval's ``args_hash`` (the plain SHA-256 the approval holds).

        Both the approval event and the approved action record this, so the rules still match them.
        """
        return hmac.digest(self._key, _BIND + args_hash.encode("ascii", "replace"), "sha256").hex()

    def __repr__(self) -> str:
        return f"Digester(key_id={self.key_id!r}, source={self.source!r})"

    @classmethod
    def load(cls, tenant: str, *, secret: str | None, key_file: Path | None, spool_dir: Path) -> Digester:
        """The tenant's digester from the setting, the key file, or the generated key (in that order).

        :raises SdkConfigError: the key file is unreadable, readable by others, or too short.
        """
        if secret:
            return cls(secret.strip().encode("utf-8"), tenant, "AGENTAUDIT_DIGEST_KEY")
        if key_file is not None:
            return cls(_read_key(Path(key_file)), tenant, str(key_file))
        path = key_path(spool_dir, tenant)
        return cls(_read_or_create(path), tenant, str(path))


def _read_key(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SdkConfigError(f"digest key file {path} is open to group or others (mode {stat.filemode(mode)}); "
                                 f"run `chmod 600 {path}`")
        return path.read_bytes().strip()
    except OSError as exc:
        raise SdkConfigError(f"cannot read the digest key file {path}: {exc}; check AGENTAUDIT_DIGEST_KEY_FILE") \
            from exc


def _read_or_create(path: Path) -> bytes:
    """The key at ``path``, created first (mode 0600, atomically: concurrent clients agree) if missing."""
    if path.exists():
        return _read_key(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another client created it first: then both use that one
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise SdkConfigError(f"cannot create the digest key {path}: {exc}; set AGENTAUDIT_DIGEST_KEY or "
                             "AGENTAUDIT_DIGEST_KEY_FILE, or make the spool directory writable") from exc
    return _read_key(path)
