"""Streamlit AppTest of every dashboard page against a real ``agentaudit store`` with seeded data."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from agentaudit.dashboard import APP_PATH, read_users
from agentaudit.settings import StoreSettings
from tests.dashboard_support import Seeded, seeded_database
from tests.dashboard_users import sign_in, users_file

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def seeded(store_server) -> tuple[StoreSettings, Seeded]:
    return seeded_database(store_server.url)


@pytest.fixture(scope="module")
def users(tmp_path_factory):
    return users_file(tmp_path_factory.mktemp("users"), viewer="vera")


@pytest.fixture
def visitor(seeded, users, monkeypatch) -> AppTest:
    """The app as a browser session that has not signed in yet."""
    settings, _ = seeded
    monkeypatch.setenv("AGENTAUDIT_CLICKHOUSE_URL", settings.clickhouse_url)
    monkeypatch.setenv("AGENTAUDIT_DATABASE", settings.database)
    # A broker nobody listens on: pages render without Kafka; publishing is tested elsewhere.
    monkeypatch.setenv("AGENTAUDIT_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    monkeypatch.setenv("AGENTAUDIT_DASHBOARD_USERS_FILE", str(users))
    return AppTest.from_file(str(APP_PATH), default_timeout=30)


@pytest.fixture
def app(visitor, users) -> AppTest:
    """A session in which alice (operator) signed in: what the form leaves in the session (the form is tested below).

    Not run yet, so the query parameters a test sets still pick the page.
    """
    visitor.session_state["signed_in"] = ("alice", read_users(users)["alice"].hash)
    return visitor


def _text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title]
    parts += [str(m.label) + str(m.value) for m in at.metric]
    return "\n".join(parts).replace("\\", "")  # event data is Markdown-escaped


def test_incidents_page_lists_open_first_with_counts(app):
    app.run()
    assert not app.exception, app.exception
    assert app.title[0].value == "Incidents"
    frame = app.dataframe[0].value
    assert list(frame["incident"])[:3] == ["inc-critical-open", "inc-high-reopened", "inc-low-open"]
    assert list(frame["incident"])[-1] == "inc-medium-resolved"
    assert {"owner", "age", "severity", "status"} <= set(frame.columns)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Unresolved"] == "4"
    assert metrics["🔴 critical"] == "1" and metrics["🟠 high"] == "2"


def test_incidents_filters_narrow_the_list(app):
    app.run()
    app.multiselect(key="f_severity").set_value(["high"]).run()
    assert not app.exception
    assert set(app.dataframe[0].value["incident"]) == {"inc-high-acked", "inc-high-reopened"}
    app.multiselect(key="f_owner").set_value(["team-support"]).run()
    assert list(app.dataframe[0].value["incident"]) == ["inc-high-acked"]
    app.text_input(key="f_search").set_value("no such thing' OR 1=1 --").run()
    assert not app.exception
    assert any("No incidents match" in i.value for i in app.info)


def test_open_detail_button_navigates_to_the_incident(app):
    app.run()
    app.selectbox(key="open_incident").set_value("inc-high-acked")
    app.button(key="open_detail").click().run()
    assert not app.exception, app.exception
    assert app.title[0].value == "Incident"
    assert app.text_input(key="incident_id_input").value == "inc-high-acked"


def test_event_data_cannot_inject_markdown(app):
    app.query_params.update(page="incident", incident="inc-critical-open")
    app.run()
    header = next(m.value for m in app.markdown if "payments" in m.value and "###" in m.value)
    assert "payments\\-bot ran forbidden tool shell\\.exec" in header


def test_incident_detail_shows_rule_owner_chain_and_history(app, seeded):
    app.query_params["page"] = "incident"
    app.query_params["incident"] = "inc-critical-open"
    app.run()
    assert not app.exception, app.exception
    text = _text(app)
    assert "security.forbidden-tool" in text and "rev-a1b2c3" in text and "team-payments" in text
    assert "not acknowledged" in text
    triggering = app.dataframe[0].value
    assert list(triggering["event_id"]) == [seeded[1].violating_event]
    assert "60 actions" in text and "the violating action" in text
    charts = app.get("graphviz_chart")
    assert charts and "shell.exec" in charts[0].proto.spec
    waterfall = [c for c in app.get("vega_lite_chart") if "x2" in c.proto.spec]
    assert waterfall, "the waterfall tab draws the timeline"
    assert any("No lifecycle events yet" in c.value for c in app.caption)


def test_incident_detail_history_of_a_reopened_incident(app):
    app.query_params.update(page="incident", incident="inc-high-reopened")
    app.run()
    assert not app.exception
    history = app.dataframe[-1].value
    assert list(history["type"]) == ["acknowledged", "resolved", "reopened"]
    assert list(history["actor_id"]) == ["alice", "alice", "bob"]


def test_nothing_shows_before_sign_in(visitor):
    visitor.query_params.update(page="incident", incident="inc-critical-open")
    visitor.run()
    assert not visitor.exception, visitor.exception
    assert [t.value for t in visitor.title] == ["Sign in"]
    assert not visitor.dataframe and "payments-bot" not in _text(visitor)
    assert not [b for b in visitor.button if b.key == "btn_ack"]


def test_anonymous_view_reads_but_cannot_act(visitor, monkeypatch):
    monkeypatch.setenv("AGENTAUDIT_DASHBOARD_ANONYMOUS_VIEW", "true")
    visitor.query_params.update(page="incident", incident="inc-critical-open")
    visitor.run()
    assert visitor.title[0].value == "Incident"
    visitor.button(key="btn_ack").click().run()
    assert any("Sign in" in e.value for e in visitor.error)


def test_sign_in_with_name_and_password(visitor):
    visitor.run()
    sign_in(visitor, "bob")
    assert not visitor.exception
    assert visitor.session_state["signed_in"][0] == "bob"
    assert any("Signed in as **bob**" in c.value for c in visitor.sidebar.caption)
    assert visitor.title[0].value == "Incidents"


def test_a_wrong_password_is_refused(visitor):
    visitor.run()
    sign_in(visitor, "bob", "alice-correct-horse")  # alice's password does not open bob's account
    assert any("wrong user name or password" in e.value for e in visitor.error)
    assert "signed_in" not in visitor.session_state
    assert [t.value for t in visitor.title] == ["Sign in"]


def test_a_viewer_reads_but_cannot_act(visitor):
    visitor.query_params.update(page="incident", incident="inc-critical-open")
    visitor.run()
    sign_in(visitor, "vera", "vera-read-only-pass")
    assert visitor.title[0].value == "Incident"
    assert any("viewer" in c.value for c in visitor.sidebar.caption)
    visitor.button(key="btn_ack").click().run()
    assert any("Sign in" in e.value and "operator" in e.value for e in visitor.error)


@pytest.mark.parametrize("page, title", [("owners", "Owners"), ("agents", "Agents"), ("rules", "Rules"),
                                         ("traces", "Trace explorer")])
def test_every_page_renders(app, page, title):
    app.query_params["page"] = page
    app.run()
    assert not app.exception, app.exception
    assert app.title[0].value == title
    assert not app.error, [e.value for e in app.error]


def test_owners_page_names_unowned_agents(app):
    app.query_params["page"] = "owners"
    app.run()
    unowned = app.dataframe[1].value
    assert list(unowned["agent_id"]) == ["shadow-bot"]
    teams = app.dataframe[0].value
    assert "team-payments" in set(teams["team"])


def test_trace_explorer_opens_a_pasted_trace(app):
    app.query_params.update(page="traces", trace="tr-sup-1")
    app.run()
    assert not app.exception
    assert any("25 actions" in c.value for c in app.caption)
    assert app.get("graphviz_chart")


def test_rules_page_joins_the_pack_with_hit_counts(app):
    app.query_params["page"] = "rules"
    app.run()
    assert not app.exception
    rules = app.dataframe[0].value.set_index("rule_id")
    assert rules.loc["cost.spend-spike", "incidents"] == 2 and rules.loc["cost.spend-spike", "hits"] == 10
    assert "tool that no agent may call" in rules.loc["security.forbidden-tool", "desc"]
    assert rules.loc["autonomy.tool-loop", "incidents"] == 0  # in the pack, never hit


def test_agents_page_per_owner(app, seeded):
    app.query_params["page"] = "agents"
    app.run()
    app.radio(key="agents_by").set_value("owner").run()
    assert not app.exception
    totals = app.dataframe[0].value.set_index("subject")
    assert set(totals.index) == {"team-payments", "team-support", "(unowned)"}
    assert totals["events"].sum() == seeded[1].actions
