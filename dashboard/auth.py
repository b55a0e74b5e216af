"""Who is signed in: the actor whose name every lifecycle event and control command carries.

Two sources: the users file (:mod:`agentaudit.dashboard.credentials`, a name, team, role and argon2id hash
per person; the default) and Streamlit's OIDC sign-in (``st.login``) with the users file as the list of
identities that may act. This module is pure logic: the page code asks Streamlit and passes what it found here.

There is no anonymous actor and no shared password: a password signs in as the one user it was set for.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from agentaudit.dashboard.exceptions import AuthError
from agentaudit.exceptions import ConfigError

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "NO_PASSWORD",
    "ROLES",
    "SESSION_COOKIE",
    "Credential",
    "Role",
    "SessionTokens",
    "SignInThrottle",
    "User",
    "check_name",
    "check_team",
    "hash_password",
    "new_password",
    "sign_in",
    "verify_password",
]

Role = Literal["operator", "viewer"]
#: ``operator`` acts (acknowledge, assign, resolve, kill, clear); ``viewer`` only reads.
ROLES: tuple[Role, ...] = ("operator", "viewer")
#: The hash of an entry that signs in through OIDC only: no password matches it.
NO_PASSWORD = "!"  # noqa: S105 - the unusable-password marker, not a password
#: Shortest password accepted when a person picks their own.
MIN_PASSWORD_LENGTH = 12

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
_TEAM = re.compile(r"[A-Za-z0-9._@+-]{0,128}")
# argon2-cffi's defaults (RFC 9106 low-memory profile: 3 passes over 64 MiB, 4 lanes): every guess costs that.
_HASHER = PasswordHasher()
# At most this many checks at once: each takes 64 MiB, and a flood of sign-ins must not exhaust memory.
_CHECKS = threading.BoundedSemaphore(4)


@functools.cache
def _decoy() -> str:
    """A hash unknown names are checked against, so they take as long as known ones (no enumeration by timing)."""
    return _HASHER.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class User:
    """A person who signed in, the team they belong to and whether they may act or only view."""

    name: str
    team: str = ""
    role: Role = "operator"

    @property
    def may_act(self) -> bool:
        """True for operators: they acknowledge, assign, resolve, kill and clear."""
        return self.role == "operator"


@dataclass(frozen=True, slots=True)
class Credential:
    """One line of the users file: the user and the argon2id hash of their password (``!``: OIDC only)."""

    user: User
    hash: str

    def __repr__(self) -> str:  # the hash is not a secret by itself, but keep it out of logs all the same
        return f"Credential(user={self.user!r}, hash='***')"


def check_name(name: str, *, what: str = "user name") -> str:
    """``name`` if it is a safe user name (letters, digits, ``._@+-``, up to 128); no ``:``, space or newline.

    :raises ConfigError: anything else, which could forge another line of the users file.
    """
    if not _NAME.fullmatch(name):
        raise ConfigError(f"{what} {name!r} is not allowed: use 1-128 letters, digits or ._@+- "
                          "(starting with a letter or digit)")
    return name


def check_team(team: str) -> str:
    """``team`` if it is empty or made of letters, digits and ``._@+-``.

    :raises ConfigError: anything else.
    """
    if not _TEAM.fullmatch(team):
        raise ConfigError(f"team {team!r} is not allowed: use up to 128 letters, digits or ._@+-")
    return team


def new_password() -> str:
    """A random password of 24 URL-safe characters (144 bits): what ``up`` and ``dashboard-users`` hand out."""
    return secrets.token_urlsafe(18)


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string, salt included) of ``password``.

    :raises ConfigError: a password shorter than :data:`MIN_PASSWORD_LENGTH` characters.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(f"a dashboard password needs at least {MIN_PASSWORD_LENGTH} characters "
                          "(leave it out to get a random one)")
    return _HASHER.hash(password)


def verify_password(stored: str, password: str) -> bool:
    """True when ``password`` matches the argon2 hash ``stored``; false for ``!`` (OIDC only) or a bad hash."""
    if stored == NO_PASSWORD or not password:
        _matches(_decoy(), password or "-")  # the same cost as a real check: the answer says nothing more
        return False
    return _matches(stored, password)


def _matches(stored: str, password: str) -> bool:
    try:
        with _CHECKS:
            return _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class SignInThrottle:
    """Slows password guessing against one user name beyond the hash cost.

    After ``free`` failed sign-ins in a row, the name is locked for ``2 ** (failures - free)`` seconds
    (at most ``cap``) after each further failure; a success resets it. Only names of real users are
    tracked, so made-up names cannot grow the table. One instance serves every session of the process.

    :param free: failures allowed before the lock starts, default 5.
    :param cap: longest lock in seconds, default 300.
    """

    def __init__(self, free: int = 5, cap: float = 300.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._free = free
        self._cap = cap
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[int, float]] = {}  # name -> (failures in a row, locked until)

    def check(self, name: str) -> None:
        """:raises AuthError: ``name`` is locked after too many failures."""
        with self._lock:
            failures, until = self._failures.get(name, (0, 0.0))
        wait = until - self._clock()
        if wait > 0:
            raise AuthError(f"too many failed sign-ins for {name!r} ({failures} in a row); "
                            f"try again in {wait:.0f} s")

    def failed(self, name: str) -> None:
        """Count a wrong password for ``name``."""
        with self._lock:
            failures = self._failures.get(name, (0, 0.0))[0] + 1
            delay = min(self._cap, 2.0 ** (failures - self._free)) if failures >= self._free else 0.0
            self._failures[name] = (failures, self._clock() + delay)

    def succeeded(self, name: str) -> None:
        """Forget ``name``'s failures."""
        with self._lock:
            self._failures.pop(name, None)


def sign_in(credentials: Mapping[str, Credential], name: str, password: str, *,
            throttle: SignInThrottle | None = None) -> User:
    """The user called ``name`` when ``password`` matches their hash in the users file.

    Unknown names cost as much as known ones and get the same answer.

    :raises AuthError: unknown name, wrong or empty password, OIDC-only user, or a name locked by ``throttle``.
    """
    refused = AuthError("wrong user name or password")
    entry = credentials.get(name)
    if entry is None:
        verify_password(NO_PASSWORD, password)  # as slow as a real check
        raise refused
    if throttle is not None:
        throttle.check(name)
    if not verify_password(entry.hash, password):
        if throttle is not None:
            throttle.failed(name)
        raise refused
    if throttle is not None:
        throttle.succeeded(name)
    return entry.user


#: The cookie that keeps a password sign-in across reloads and tabs.
SESSION_COOKIE = "agentaudit_session"


class SessionTokens:
    """Signed sign-in tokens for a browser cookie, so that a reload or a new tab stays signed in.

    A token names the user and its expiry, MACed (HMAC-SHA256) with a key made when the process starts and
    with the user's current password hash: a restart, a password reset or a removal voids it, and signing
    out revokes it. It grants no more than the sign-in it came from.

    :param ttl: seconds a token lasts, default 12 hours.
    """

    def __init__(self, ttl: float = 12 * 3600, *, clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self._key = secrets.token_bytes(32)
        self._clock = clock
        self._lock = threading.Lock()
        self._revoked: dict[str, float] = {}  # token -> expiry, dropped once expired

    def _mac(self, payload: str, credential: Credential) -> str:
        return hmac.new(self._key, f"{payload}|{credential.hash}".encode(), hashlib.sha256).hexdigest()

    def issue(self, credential: Credential) -> str:
        """A token for ``credential``'s user, valid for ``ttl`` seconds."""
        name = base64.urlsafe_b64encode(credential.user.name.encode()).decode().rstrip("=")
        payload = f"{name}.{int(self._clock() + self.ttl)}"
        return f"{payload}.{self._mac(payload, credential)}"

    def check(self, credentials: Mapping[str, Credential], token: str) -> User | None:
        """The user ``token`` was issued to, if it is intact, unexpired, unrevoked and their hash is unchanged."""
        try:
            name_b64, expiry, mac = token.split(".")
            name = base64.urlsafe_b64decode(name_b64 + "=" * (-len(name_b64) % 4)).decode()
            expires = int(expiry)
        except (ValueError, UnicodeDecodeError):
            return None
        entry = credentials.get(name)
        now = self._clock()
        if entry is None or expires < now or not hmac.compare_digest(mac, self._mac(f"{name_b64}.{expiry}", entry)):
            return None
        with self._lock:
            if token in self._revoked:
                return None
        return entry.user

    def revoke(self, token: str) -> None:
        """Refuse ``token`` from now on (sign-out)."""
        now = self._clock()
        with self._lock:
            self._revoked = {t: e for t, e in self._revoked.items() if e >= now}
            self._revoked[token] = now + self.ttl
