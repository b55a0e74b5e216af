"""The dashboard's users file: who may sign in, their team, their role and their password hash.

One line per person, ``name:team:role:hash``; ``#`` starts a comment::

    # agentaudit dashboard users: name:team:role:argon2id hash ('!' signs in through OIDC only)
    admin:ops:operator:$argon2id$v=19$m=65536,t=3,p=4$...$...
    carol@example.com:team-sre:operator:!

The file is written whole to a new mode-0600 file that replaces the old one, and read only while no
one but its owner may read or write it: a readable hash can be guessed offline, a writable one replaced.
``agentaudit up`` creates it with the first operator; ``agentaudit dashboard-users`` adds, resets and removes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from agentaudit.dashboard.auth import (
    NO_PASSWORD,
    ROLES,
    Credential,
    Role,
    User,
    check_name,
    check_team,
    hash_password,
    new_password,
)
from agentaudit.exceptions import ConfigError

__all__ = ["FILE_MODE", "add_user", "ensure_first_operator", "read_users", "remove_user", "set_password",
           "write_users"]

#: Owner read and write only.
FILE_MODE = 0o600
_HEADER = "# agentaudit dashboard users: name:team:role:argon2id hash ('!' signs in through OIDC only)\n"


def read_users(path: Path | str) -> dict[str, Credential]:
    """The users in ``path``, by name, in file order.

    :raises ConfigError: the file is missing, readable or writable by others than its owner, or has a bad line
        (named by file and line).
    """
    path = Path(path)
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"no dashboard users file at {path}: `agentaudit dashboard-users add NAME` creates one "
                          "(`agentaudit up` creates it with the first operator)") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the dashboard users file {path}: {exc}") from exc
    if info.st_mode & 0o077:
        raise ConfigError(f"dashboard users file {path} has mode {stat.filemode(info.st_mode)}: others may read or "
                          f"change its hashes; run `chmod 600 {path}`")
    users: dict[str, Credential] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{number}"
        parts = line.split(":", 3)
        if len(parts) != 4:
            raise ConfigError(f"{where}: expected name:team:role:hash, got {len(parts)} fields")
        name, team, role, hashed = parts
        try:
            check_name(name)
            check_team(team)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        if role not in ROLES:
            raise ConfigError(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
        if hashed != NO_PASSWORD and not hashed.startswith("$argon2"):
            raise ConfigError(f"{where}: the hash of {name!r} is not an argon2 hash (nor '!' for OIDC only); "
                              f"reset it with `agentaudit dashboard-users reset {name}`")
        if name in users:
            raise ConfigError(f"{where}: {name!r} is listed twice")
        users[name] = Credential(User(name, team, role), hashed)
    return users


def write_users(path: Path | str, credentials: Iterable[Credential]) -> None:
    """Replace ``path`` with these users: a new mode-0600 file renamed over the old one (never a moment at 0644)."""
    path = Path(path)
    lines = [_HEADER]
    for c in credentials:
        check_name(c.user.name)
        check_team(c.user.team)
        lines.append(f"{c.user.name}:{c.user.team}:{c.user.role}:{c.hash}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.writelines(lines)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, FILE_MODE)  # the umask may have taken bits away, never added: make it exact
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _existing(path: Path) -> dict[str, Credential]:
    return read_users(path) if path.exists() else {}


def add_user(path: Path | str, name: str, *, team: str = "", role: Role = "operator", password: str | None = None,
             oidc: bool = False) -> str | None:
    """Add ``name`` to the users file (created if missing) and return the password it signs in with.

    :param password: the password to set; default a new random one (returned).
    :param oidc: the user signs in through OIDC only (no password; returns None).
    :raises ConfigError: the name is taken or not allowed, the role is unknown.
    """
    path = Path(path)
    users = _existing(path)
    check_name(name)
    check_team(team)
    if role not in ROLES:
        raise ConfigError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if name in users:
        raise ConfigError(f"{name!r} is already in {path}; use `agentaudit dashboard-users reset {name}`")
    secret = None if oidc else (password or new_password())
    users[name] = Credential(User(name, team, role), NO_PASSWORD if secret is None else hash_password(secret))
    write_users(path, users.values())
    return secret


def set_password(path: Path | str, name: str, password: str | None = None) -> str:
    """Give ``name`` a new password (default a random one) and return it; sessions signed in with the old one end.

    :raises ConfigError: no such user.
    """
    path = Path(path)
    users = read_users(path)
    if name not in users:
        raise ConfigError(f"{name!r} is not in {path}; add it with `agentaudit dashboard-users add {name}`")
    secret = password or new_password()
    users[name] = Credential(users[name].user, hash_password(secret))
    write_users(path, users.values())
    return secret


def remove_user(path: Path | str, name: str) -> None:
    """Take ``name`` out of the users file; their sessions end at their next page run.

    :raises ConfigError: no such user.
    """
    path = Path(path)
    users = read_users(path)
    if users.pop(name, None) is None:
        raise ConfigError(f"{name!r} is not in {path}")
    write_users(path, users.values())


def ensure_first_operator(path: Path | str, name: str = "admin", team: str = "ops") -> str | None:
    """Create the users file with one operator when it does not exist; return their password (else None).

    ``agentaudit up`` calls this on every start and prints the password the one time it is created.
    """
    path = Path(path)
    if path.exists():
        return None
    return add_user(path, name, team=team, role="operator")
