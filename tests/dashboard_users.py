"""Dashboard users for tests: a real users file (argon2id hashes, mode 0600) and signing in through the form."""

from __future__ import annotations

from pathlib import Path

from agentaudit.dashboard import add_user

#: Who the dashboard tests sign in as, with their passwords.
PASSWORDS = {"alice": "alice-correct-horse", "bob": "bob-battery-staple"}
TEAMS = {"alice": "team-payments", "bob": "team-sre"}


def users_file(directory: Path, *, viewer: str | None = None) -> Path:
    """``directory/dashboard-users`` with alice (team-payments) and bob (team-sre), operators, and ``viewer``."""
    path = directory / "dashboard-users"
    for name, password in PASSWORDS.items():
        add_user(path, name, team=TEAMS[name], password=password)
    if viewer is not None:
        add_user(path, viewer, team="team-audit", role="viewer", password=f"{viewer}-read-only-pass")
    return path


def sign_in(at, name: str, password: str | None = None):  # type: ignore[no-untyped-def]  # streamlit's AppTest
    """Fill the sidebar sign-in form of an AppTest and submit it; returns the AppTest after the run."""
    at.text_input(key="sign_in_user").set_value(name)
    at.text_input(key="sign_in_password").set_value(PASSWORDS.get(name, "") if password is None else password)
    return at.form_submit_button[0].click().run()
