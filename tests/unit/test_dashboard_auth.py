"""Sign-in from the configured user list, settings and the launch command."""

from __future__ import annotations

import importlib
import sys
import types

import pytest

from agentaudit.dashboard import APP_PATH, AuthError, DashboardSettings, User, dashboard_command, parse_users, sign_in
from agentaudit.exceptions import ConfigError


def test_parse_users():
    assert parse_users("alice:team-payments, bob:team-sre,carol") == [
        User("alice", "team-payments"), User("bob", "team-sre"), User("carol", "")]


@pytest.mark.parametrize("spec", ["", " , ", ":team", "alice:a,alice:b"])
def test_bad_user_lists_are_config_errors(spec):
    with pytest.raises(ConfigError):
        parse_users(spec)


def test_sign_in_checks_name_and_password():
    users = parse_users("alice:team-payments,bob:team-sre")
    assert sign_in(users, "bob") == User("bob", "team-sre")
    assert sign_in(users, "alice", "s3cret", required_password="s3cret").team == "team-payments"
    with pytest.raises(AuthError):
        sign_in(users, "mallory")
    with pytest.raises(AuthError):
        sign_in(users, "alice", "guess", required_password="s3cret")


def test_settings_from_environment_mask_the_password(monkeypatch):
    monkeypatch.setenv("AGENTAUDIT_DASHBOARD_USERS", "alice:x")
    monkeypatch.setenv("AGENTAUDIT_DASHBOARD_PASSWORD", "hunter2")
    monkeypatch.setenv("AGENTAUDIT_DASHBOARD_PORT", "9999")
    settings = DashboardSettings()
    assert settings.users == "alice:x" and settings.port == 9999
    assert "hunter2" not in repr(settings)


def test_dashboard_command_runs_streamlit_headless_on_loopback():
    argv = dashboard_command(8600)
    assert argv[:5] == [sys.executable, "-m", "streamlit", "run", str(APP_PATH)]
    options = dict(zip(argv[5::2], argv[6::2]))
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
