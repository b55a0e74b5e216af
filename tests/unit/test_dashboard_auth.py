"""Sign-in from the users file (argon2id hashes, mode 0600), settings and the launch command."""

from __future__ import annotations

import importlib
import stat
import sys
import types

import pytest

from agentaudit.dashboard import (
    APP_PATH,
    AuthError,
    DashboardSettings,
    SignInThrottle,
    User,
    add_user,
    dashboard_command,
    ensure_first_operator,
    read_users,
    remove_user,
    set_password,
    sign_in,
)
from agentaudit.dashboard.auth import NO_PASSWORD
from agentaudit.exceptions import ConfigError


def test_users_file_round_trip(tmp_path):
    path = tmp_path / "users"
    alice = add_user(path, "alice", team="team-payments")
    assert add_user(path, "bob", team="team-sre", role="viewer", password="bob-battery-staple") == "bob-battery-staple"
    assert add_user(path, "carol@example.com", oidc=True) is None
    users = read_users(path)
    assert [c.user for c in users.values()] == [User("alice", "team-payments"), User("bob", "team-sre", "viewer"),
                                                User("carol@example.com")]
    assert users["carol@example.com"].hash == NO_PASSWORD and users["alice"].hash.startswith("$argon2id$")
    assert alice is not None and alice not in path.read_text()
    assert sign_in(users, "alice", alice) == User("alice", "team-payments")
    assert not sign_in(users, "bob", "bob-battery-staple").may_act
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_reset_and_remove(tmp_path):
    path = tmp_path / "users"
    old = add_user(path, "alice")
    new = set_password(path, "alice")
    users = read_users(path)
    with pytest.raises(AuthError):
        sign_in(users, "alice", old)
    assert sign_in(users, "alice", new).name == "alice"
    remove_user(path, "alice")
    assert read_users(path) == {}
    with pytest.raises(ConfigError, match="not in"):
        set_password(path, "alice")


def test_first_operator_only_once(tmp_path):
    path = tmp_path / "home" / "dashboard-users"
    password = ensure_first_operator(path)
    assert password and sign_in(read_users(path), "admin", password).may_act
    assert ensure_first_operator(path) is None  # a second start keeps the users as they are


@pytest.mark.parametrize("line, problem", [
    ("alice:team:operator", "expected name:team:role:hash"),
    ("alice:team:root:!", "role 'root'"),
    ("alice:team:operator:plaintext", "not an argon2 hash"),
    ("al ice:team:operator:!", "not allowed"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, problem):
    path = tmp_path / "users"
    path.write_text(f"# users\n{line}\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=problem) as info:
        read_users(path)
    assert f"{path}:2" in str(info.value)


def test_missing_file_says_how_to_create_it(tmp_path):
    with pytest.raises(ConfigError, match="dashboard-users add"):
        read_users(tmp_path / "nope")


def test_throttle_locks_a_name_after_five_failures_and_backs_off():
    now = [0.0]
    throttle = SignInThrottle(clock=lambda: now[0])
    for _ in range(4):
        throttle.failed("alice")
    throttle.check("alice")  # four failures: not locked yet
    throttle.failed("alice")
    with pytest.raises(AuthError, match="too many failed sign-ins"):
        throttle.check("alice")
    now[0] = 1.5
    throttle.check("alice")
    throttle.failed("alice")  # sixth: 2 s
    with pytest.raises(AuthError):
        throttle.check("alice")
    now[0] = 3.6
    throttle.check("alice")
    throttle.succeeded("alice")
    throttle.failed("alice")
    throttle.check("alice")  # the count started again
    throttle.check("bob")


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AGENTAUDIT_DASHBOARD_USERS_FILE", str(tmp_path / "u"))
    monkeypatch.setenv("AGENTAUDIT_DASHBOARD_PORT", "9999")
    settings = DashboardSettings()
    assert settings.users_file == tmp_path / "u" and settings.port == 9999
    assert settings.auth == "users" and settings.anonymous_view is False


@pytest.mark.parametrize("variable", ["AGENTAUDIT_DASHBOARD_USERS", "AGENTAUDIT_DASHBOARD_PASSWORD"])
def test_retired_shared_settings_stop_the_dashboard(monkeypatch, variable):
    monkeypatch.setenv(variable, "hunter2")
    with pytest.raises(ValueError, match="no longer used") as info:
        DashboardSettings()
    assert "hunter2" not in str(info.value)


def test_dashboard_command_runs_streamlit_headless_on_loopback():
    argv = dashboard_command(8600)
    assert argv[:5] == [sys.executable, "-m", "streamlit", "run", str(APP_PATH)]
    options = dict(zip(argv[5::2], argv[6::2], strict=False))
    assert options["--server.port"] == "8600"
    assert options["--server.address"] == "127.0.0.1"
    assert options["--server.headless"] == "true"
    assert APP_PATH.is_file()


def test_dashboard_all_is_complete():
    module = importlib.import_module("agentaudit.dashboard")
    public = {name for name, value in vars(module).items() if not name.startswith("_")
              and not isinstance(value, types.ModuleType) and getattr(value, "__module__", "").startswith("agentaudit")}
    assert public <= set(module.__all__)
    assert len(module.__all__) == len(set(module.__all__))
    assert all(hasattr(module, name) for name in module.__all__)
