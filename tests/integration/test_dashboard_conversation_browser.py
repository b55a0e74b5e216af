"""A conversation-mode incident in headless Chromium (issue 13): the simulator's conversation runs judged by the
shipped pack, and the incident of a flat run (one root, 33 children) whose booking write the user never
confirmed. Opened by its deep link on a 1440x900 screen, the
detail shows the violating write and the missing approval in the first viewport, and the chain graph runs
left to right with the loop folded into "… N more" nodes. The incidents page labels every owner's bar.
Screenshots go to tests/artifacts/conversation_*.png."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from urllib.parse import urlencode

import pyarrow as pa
import pytest

from agentaudit.consumers._columns import INCIDENTS_SCHEMA
from agentaudit.dashboard import queries as q
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.embedded import free_port
from agentaudit.producers.simulator.conversation import WRITE_TOOLS
from tests.dashboard_browser import CHROMIUM, CHROMIUM_ARGS, need_chromium, serve_dashboard
from tests.dashboard_support import HOUR_US, NOW_US, seed_conversations, seeded_database
from tests.dashboard_users import users_file

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
VIEWPORT = {"width": 1440, "height": 900}
MORE_OWNERS = ["team-bookings", "team-search-and-retrieval", "team-platform"]


@pytest.fixture
def dashboard(store_server, kafka_settings_factory, tmp_path):
    need_chromium()
    kafka = kafka_settings_factory(partitions=1)
    store_settings, seeded = seeded_database(store_server.url, big_trace_actions=20)
    base = seeded.incidents["inc-low-open"]
    extra = [dict(base, incident_id=f"inc-owner-{n}", tenant="acme", owner=owner, severity="medium", severity_rank=2,
                  summary=f"{owner} incident", key=str(uuid.uuid4()), first_seen=NOW_US - HOUR_US)
             for n, owner in enumerate(MORE_OWNERS)]
    with connect(store_settings) as store:
        conversation = seed_conversations(store)
        store.insert_arrow("incidents", pa.Table.from_pylist(extra, schema=INCIDENTS_SCHEMA))
        owners = {o or "(unowned)" for o in q.counts_by_owner(store)}
    assert len(owners) >= 6, owners  # as in the issue: 2 of 6 bars were labelled
    with serve_dashboard(free_port(), tmp_path, kafka=kafka, store=store_settings,
                         env={"AGENTAUDIT_DASHBOARD_ANONYMOUS_VIEW": "true",
                              "AGENTAUDIT_DASHBOARD_USERS_FILE": str(users_file(tmp_path))}) as url:
        yield url, store_settings, conversation, owners


def test_a_conversation_incident_shows_the_unconfirmed_write_on_the_first_screen(dashboard):
    from playwright.sync_api import expect, sync_playwright

    url, store_settings, conversation, owners = dashboard
    assert conversation.actions >= 31
    with connect(store_settings, readonly=True) as reader:
        incident = q.incident(reader, conversation.incident_id)
        write = q.triggering_events(reader, "acme", [conversation.event_id]).iloc[0]
    assert incident["trace_id"] == conversation.trace_id and write["name"] in WRITE_TOOLS
    violating_action = write["action_id"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=30_000)  # two cores shared with the store
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(30_000)
            page.goto(f"{url}/?{urlencode({'page': 'incident', 'incident': conversation.incident_id})}")
            expect(page.get_by_text("without a human approval").first).to_be_visible()
            timeline = page.locator("table.aa-timeline")
            expect(timeline).to_be_visible()
            violation = timeline.locator("tr[data-mark='violation']")
            missing = timeline.locator("tr[data-mark='missing-approval']")
            expect(violation).to_have_count(1)
            expect(violation).to_contain_text(write["name"])
            page.screenshot(path=str(ARTIFACTS / "conversation_first_screen.png"))
            expect(missing).to_have_count(1)
            expect(missing).to_contain_text(f"nothing authorized this execute_tool {write['name']}")
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "conversation_first_screen.png"))
            box, gap = violation.bounding_box(), missing.bounding_box()
            assert box is not None and gap is not None
            assert 0 <= gap["y"] < box["y"] and box["y"] + box["height"] <= VIEWPORT["height"], (gap, box)
            # The first screen is the window around the write; the rows before it are the conversation that led there.
            rows = timeline.locator("tr.aa-row")
            texts = [rows.nth(i).inner_text() for i in range(rows.count())]
            hit = next(i for i, t in enumerate(texts) if "the violating action" in t)
            assert hit >= 5 and len(texts) < conversation.actions
            assert any("message" in t for t in texts[:hit]), texts[:hit]

            page.get_by_text(f"Show all {conversation.actions}").click()
            expect(timeline.locator("tr.aa-row")).to_have_count(conversation.actions + 1)  # and the missing approval

            graph = page.locator("[data-testid='stGraphVizChart'] svg").first
            graph.scroll_into_view_if_needed()
            expect(graph).to_contain_text(re.compile(r"… \d+ more actions"))
            nodes = graph.locator("g.node")
            root = nodes.filter(has_text="invoke_agent").first.bounding_box()
            target = graph.locator(f"xpath=.//*[local-name()='g' and contains(@class,'node')]"
                                   f"[.//*[local-name()='a' and @*[local-name()='title']='{violating_action}']]")
            expect(target).to_have_count(1)
            hit_box, whole = target.bounding_box(), graph.bounding_box()
            graph.screenshot(path=str(ARTIFACTS / "conversation_graph.png"))
            assert root["x"] + root["width"] <= hit_box["x"], (root, hit_box)  # left to right
            assert nodes.count() <= 12  # 35 children folded around the red path
            assert whole["height"] <= VIEWPORT["height"], whole  # the whole graph, red path included, fits a screen
            assert hit_box["height"] < 60, hit_box  # nodes sized for their text, not stretched

            # The trace explorer's deep link opens the same conversation (nothing marked: it names no incident).
            page.goto(f"{url}/?{urlencode({'page': 'traces', 'trace': conversation.trace_id})}")
            expect(page.locator("table.aa-timeline tr.aa-row")).to_have_count(conversation.actions)

            page.goto(f"{url}/?page=incidents")
            chart = page.locator("[data-testid='stVegaLiteChart']").first
            expect(chart).to_be_visible()
            page.wait_for_timeout(1000)
            chart.screenshot(path=str(ARTIFACTS / "owners_chart.png"))
            labels = set(chart.locator("svg g.role-axis-label text").all_text_contents())
            assert owners <= labels, (owners, labels)
        finally:
            browser.close()
            expect.set_options(timeout=5_000)
