"""``agentaudit up`` makes the first operator: the password it prints once signs in to the dashboard it started.

Attack covered: a fresh ``up`` used to leave the dashboard open to anyone (anonymous ``oncall``). Expected now:
the home holds a mode-0600 users file with one argon2id hash, the page shows nothing before sign-in, a wrong
password is refused, and the printed one signs in (real ``up`` subprocess, real Chromium).
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time

import pytest

from agentaudit.dashboard import ensure_first_operator, read_users
from tests.dashboard_browser import CHROMIUM, CHROMIUM_ARGS, need_chromium
from tests.process_lines import LineReader
from tests.up_ports import up_port_env

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

_PRINTED = re.compile(r"Dashboard sign-in: user (\S+), password (\S+)")


def _read_until(lines: LineReader, pattern: re.Pattern, timeout: float) -> tuple[re.Match, str]:
    """Lines of the process's stdout until one matches ``pattern`` (fails with the output after ``timeout``)."""
    seen = ""
    deadline = time.monotonic() + timeout
    while (line := lines.next_line(deadline)) is not None:
        seen += line
        match = pattern.search(line)
        if match:
            return match, seen
    pytest.fail(f"no line matching {pattern.pattern!r} within {timeout}s (stdout closed: {lines.closed}):\n{seen[-3000:]}")


def test_the_password_printed_by_up_signs_in_and_nothing_else_does(tmp_path):
    need_chromium()
    from playwright.sync_api import expect, sync_playwright

    home = tmp_path / "home"
    ports = up_port_env()
    dashboard_port = int(ports["AGENTAUDIT_DASHBOARD_PORT"])
    env = {**os.environ, "AGENTAUDIT_HOME": str(home), **ports, "AGENTAUDIT_SIMULATE_RATE": "0", "PYTHONUNBUFFERED": "1",
           "COLUMNS": "400"}
    up = subprocess.Popen([sys.executable, "-m", "agentaudit.cli", "up"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = LineReader(up)
    try:
        match, output = _read_until(lines, _PRINTED, 120)
        name, password = match.groups()
        output += _read_until(lines, re.compile("Press Ctrl-C to stop"), 30)[1]
        users = home / "dashboard-users"
        assert stat.S_IMODE(users.stat().st_mode) == 0o600
        assert password not in users.read_text()  # only its hash is kept
        (credential,) = read_users(users).values()
        assert credential.user.name == name == "admin" and credential.user.may_act
        assert credential.hash.startswith("$argon2id$")

        expect.set_options(timeout=30_000)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1200})
                page.set_default_timeout(30_000)
                page.goto(f"http://127.0.0.1:{dashboard_port}/?page=control")
                expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
                page.get_by_label("User", exact=True).fill(name)
                page.get_by_label("Password", exact=True).fill(password[:-1])
                page.get_by_role("button", name="Sign in").click()
                expect(page.get_by_text("wrong user name or password")).to_be_visible()
                page.get_by_label("Password", exact=True).fill(password)
                page.get_by_role("button", name="Sign in").click()
                expect(page.get_by_text(f"Signed in as {name}")).to_be_visible()
                expect(page.get_by_role("heading", name="Control")).to_be_visible()
            finally:
                browser.close()
                expect.set_options(timeout=5_000)
    finally:
        up.send_signal(signal.SIGINT)
        rest = lines.rest(60)
        up.wait(10)
        up.stdout.close()
    output += rest
    assert up.returncode == 0, output
    assert output.count(password) == 1  # printed once
    assert ensure_first_operator(home / "dashboard-users") is None  # the next start keeps it and prints none
