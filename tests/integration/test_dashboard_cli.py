"""``agentaudit dashboard`` serves the app and stops cleanly (with its Streamlit child) on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agentaudit.infra.embedded import free_port

pytestmark = pytest.mark.integration


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_cli_serves_the_dashboard_and_stops_on_sigterm(store_server, tmp_path):
    port = free_port()
    env = {**os.environ, "AGENTAUDIT_CLICKHOUSE_URL": store_server.url, "AGENTAUDIT_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    log = tmp_path / "cli.log"
    with log.open("w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "agentaudit.cli", "dashboard", "--port", str(port)],
                                   env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        children = _children(process.pid)
        assert children, "the CLI runs streamlit as a child process"
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0, log.read_text()
        for child in children:  # the Streamlit child is gone too: no orphans
            stat = Path(f"/proc/{child}/stat")
            assert not stat.exists() or stat.read_text().split()[2] == "Z"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
