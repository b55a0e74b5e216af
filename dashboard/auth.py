"""Who is signed in: the actor whose name every lifecycle event carries.

Two sources: a configured user list (``AGENTAUDIT_DASHBOARD_USERS``, the embedded default) and
Streamlit's own OIDC sign-in (``st.login``) in production. This module is pure logic; the page
code asks Streamlit and passes what it found here.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from agentaudit.dashboard.exceptions import AuthError
from agentaudit.exceptions import ConfigError

__all__ = ["User", "parse_users", "sign_in"]


@dataclass(frozen=True, slots=True)
class User:
    """A person who may act on incidents, and the team they belong to."""

    name: str
    team: str = ""


def parse_users(spec: str) -> list[User]:
    """Parse ``"alice:team-payments,bob:team-sre"`` (team optional) into users, in order.

    :raises ConfigError: an entry is empty or a name repeats.
    """
    users: list[User] = []
    seen: set[str] = set()
    for entry in (part.strip() for part in spec.split(",")):
        if not entry:
            continue
        name, _, team = (piece.strip() for piece in entry.partition(":"))
        if not name:
            raise ConfigError(f"AGENTAUDIT_DASHBOARD_USERS entry {entry!r} has no name; use name:team")
        if name in seen:
            raise ConfigError(f"AGENTAUDIT_DASHBOARD_USERS names {name!r} twice")
        seen.add(name)
        users.append(User(name, team))
    if not users:
        raise ConfigError("AGENTAUDIT_DASHBOARD_USERS is empty; list at least one name:team")
    return users


def sign_in(users: list[User], name: str, password: str = "", *, required_password: str = "") -> User:
    """The listed user called ``name`` when the password matches (or none is required).

    :raises AuthError: unknown name or wrong password.
    """
    user = next((u for u in users if u.name == name), None)
    if user is None:
        raise AuthError(f"{name!r} is not a dashboard user; add it to AGENTAUDIT_DASHBOARD_USERS")
    if required_password and not hmac.compare_digest(password.encode(), required_password.encode()):
        raise AuthError("wrong password for the dashboard (AGENTAUDIT_DASHBOARD_PASSWORD)")
    return user
