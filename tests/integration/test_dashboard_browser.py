"""The real dashboard in headless Chromium: sign in with a password from the users file, acknowledge an incident, see
the event on Kafka
and the state change once the sink stored it. Screenshots go to tests/artifacts/ (and, with
AGENTAUDIT_UPDATE_DOCS_IMG=1, the incident detail to docs/img/incident_detail.png for the README)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.dashboard import queries as q
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.embedded import free_port
from agentaudit.infra.kafka import read_all
from agentaudit.schemas import AvroCodec
from tests.dashboard_browser import CHROMIUM, CHROMIUM_ARGS, need_chromium, serve_dashboard
from tests.dashboard_support import seeded_database
from tests.dashboard_users import PASSWORDS, users_file

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture
def dashboard(store_server, kafka_settings_factory, tmp_path):
    need_chromium()
    kafka = kafka_settings_factory(partitions=1)
    store_settings, seeded = seeded_database(store_server.url, big_trace_actions=40)
    users = users_file(tmp_path)
    with serve_dashboard(free_port(), tmp_path, kafka=kafka, store=store_settings,
                         env={"AGENTAUDIT_DASHBOARD_USERS_FILE": str(users)}) as url:
        yield url, kafka, store_settings, seeded


def test_acknowledge_an_incident_in_the_browser(dashboard, group_factory):
    from playwright.sync_api import expect, sync_playwright

    url, kafka, store_settings, _seeded = dashboard
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=30_000)  # two cores shared with the broker and the store
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 2300})
            page.set_default_timeout(30_000)
            page.goto(url)
            # Nothing shows before sign-in; alice signs in with her own password.
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            expect(page.get_by_text("payments-bot")).to_have_count(0)
            page.get_by_label("User", exact=True).fill("alice")
            page.get_by_label("Password", exact=True).fill(PASSWORDS["alice"])
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_text("Signed in as alice")).to_be_visible()
            expect(page.get_by_role("heading", name="Incidents")).to_be_visible()
            expect(page.locator("[data-testid='stDataFrame']").first).to_be_visible()
            # The grid draws on a canvas; its accessible cells hold the values.
            expect(page.get_by_text("payments-bot ran forbidden tool shell.exec").first).to_be_attached()
            page.screenshot(path=str(ARTIFACTS / "incidents.png"), full_page=True)

            # The sign-in cookie keeps alice signed in across page loads (deep links, reloads, new tabs).
            page.goto(f"{url}/?page=incident&incident=inc-critical-open")
            expect(page.get_by_text("Signed in as alice")).to_be_visible()
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

            # Signing out deletes the cookie and revokes its token: a reload, or the old cookie replayed, shows nothing.
            token = next(c["value"] for c in page.context.cookies() if c["name"] == "agentaudit_session")
            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            page.reload()
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            page.context.add_cookies([{"name": "agentaudit_session", "value": token, "url": url}])
            page.reload()
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            expect(page.get_by_text("Signed in as alice")).to_have_count(0)
        finally:
            browser.close()
            expect.set_options(timeout=5_000)  # Playwright's default, for the tests that follow
