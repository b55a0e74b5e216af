"""The real dashboard in headless Chromium: sign in, acknowledge an incident, see the event on Kafka
and the state change once the sink stored it. Screenshots go to tests/artifacts/ (and, with
AGENTAUDIT_UPDATE_DOCS_IMG=1, the incident detail to docs/img/incident_detail.png for the README)."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.dashboard import dashboard_command
from agentaudit.dashboard import queries as q
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.embedded import free_port
from agentaudit.infra.kafka import read_all
from agentaudit.schemas import AvroCodec
from tests.dashboard_support import seeded_database

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture
def dashboard(store_server, kafka_settings_factory, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api")
    kafka = kafka_settings_factory(partitions=1)
    store_settings, seeded = seeded_database(store_server.url, big_trace_actions=40)
    port = free_port()
    env = {**os.environ, "AGENTAUDIT_CLICKHOUSE_URL": store_settings.clickhouse_url,
           "AGENTAUDIT_DATABASE": store_settings.database, "AGENTAUDIT_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
           "AGENTAUDIT_DASHBOARD_USERS": "alice:team-payments,bob:team-sre"}
    env.update({f"AGENTAUDIT_TOPIC_{name.upper()}": topic for name, topic in kafka.topics.model_dump().items()})
    log = tmp_path / "dashboard.log"
    with log.open("w") as sink:
        process = subprocess.Popen(dashboard_command(port), env=env, stdout=sink, stderr=subprocess.STDOUT,  # noqa: S603
                                   cwd=tmp_path)
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
        yield url, kafka, store_settings, seeded
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_acknowledge_an_incident_in_the_browser(dashboard, group_factory):
    from playwright.sync_api import expect, sync_playwright

    url, kafka, store_settings, seeded = dashboard
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 2300})
            page.set_default_timeout(30_000)
            page.goto(url)
            expect(page.get_by_role("heading", name="Incidents")).to_be_visible()
            expect(page.locator("[data-testid='stDataFrame']").first).to_be_visible()
            # The grid draws on a canvas; its accessible cells hold the values.
            expect(page.get_by_text("payments-bot ran forbidden tool shell.exec").first).to_be_attached()
            page.screenshot(path=str(ARTIFACTS / "incidents.png"), full_page=True)

            page.goto(f"{url}/?page=incident&incident=inc-critical-open")
            expect(page.get_by_text("not acknowledged")).to_be_visible()
            graph = page.locator("[data-testid='stGraphVizChart'] svg")
            expect(graph.first).to_be_visible()
            expect(graph.first).to_contain_text("shell.exec")
            page.wait_for_timeout(500)  # let the graph finish its layout transition
            detail = ARTIFACTS / "incident_detail.png"
            page.screenshot(path=str(detail), full_page=True)
            if os.environ.get("AGENTAUDIT_UPDATE_DOCS_IMG") == "1":
                (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ROOT / "docs" / "img" / "incident_detail.png"),
                                clip={"x": 0, "y": 0, "width": 1500, "height": 1520})

            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_text("Signed in as alice")).to_be_visible()
            page.get_by_label("Note").fill("looking at the shell.exec call")
            page.get_by_label("Note").press("Enter")
            page.get_by_role("button", name="Acknowledge").click()
            expect(page.get_by_text("acknowledged by alice published")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "incident_acknowledged_published.png"), full_page=True)

            messages = read_all(kafka, kafka.topics.lifecycle, expected=1, timeout=15, idle=5)
            events = [AvroCodec("incident_lifecycle").decode(m.value()) for m in messages]
            assert [(m.key(), e["type"], e["actor"]["id"], e["note"]) for m, e in zip(messages, events, strict=True)] == [
                (b"inc-critical-open", "acknowledged", "alice", "looking at the shell.exec call")]

            sink_settings = SinkSettings(group=group_factory(), batch_timeout_ms=200, session_timeout_ms=6000,
                                         heartbeat_interval_ms=1000)
            with connect(store_settings, readonly=True) as reader, Sink(kafka, store_settings, sink_settings) as sink:
                deadline = time.monotonic() + 40
                while q.lifecycle_history(reader, "inc-critical-open").empty and time.monotonic() < deadline:
                    sink.run_once()
                assert q.incident(reader, "inc-critical-open")["status"] == "acknowledged"

            page.reload()
            expect(page.get_by_text("acknowledged by alice after")).to_be_visible()
            expect(page.get_by_role("button", name="Acknowledge")).to_be_disabled()
            page.screenshot(path=str(ARTIFACTS / "incident_acknowledged.png"), full_page=True)
        finally:
            browser.close()
