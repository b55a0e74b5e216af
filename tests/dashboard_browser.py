"""The real dashboard as a subprocess for the browser tests (Playwright driving Debian's chromium)."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agentaudit.dashboard import dashboard_command
from agentaudit.settings import KafkaSettings, StoreSettings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def need_chromium() -> None:
    """Skip unless Debian's chromium and Playwright are installed (.ci/run installs both)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api")


@contextmanager
def serve_dashboard(port: int, cwd: Path, *, kafka: KafkaSettings, store: StoreSettings,
                    env: dict[str, str]) -> Iterator[str]:
    """``agentaudit``'s Streamlit app on loopback ``port``, run in ``cwd`` (where ``.streamlit/`` is read)."""
    full = {**os.environ, "AGENTAUDIT_CLICKHOUSE_URL": store.clickhouse_url, "AGENTAUDIT_DATABASE": store.database,
            "AGENTAUDIT_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, **env}
    full.update({f"AGENTAUDIT_TOPIC_{name.upper()}": topic for name, topic in kafka.topics.model_dump().items()})
    log = cwd / "dashboard.log"
    with log.open("w") as sink:
        process = subprocess.Popen(dashboard_command(port), env=full, stdout=sink, stderr=subprocess.STDOUT,
                                   cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"dashboard exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:  # noqa: S310 - loopback
                    if response.read() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dashboard did not answer in 60s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
