"""Attacks on the running dashboard (Streamlit AppTest, real store and broker): act without signing in, act as
a viewer, keep acting after a password reset, act under someone else's name.

Each test states the attack and the expected refusal; "nothing published" is checked on the real Kafka topics.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from agentaudit.dashboard import APP_PATH, set_password
from agentaudit.infra.kafka import read_all
from agentaudit.schemas import AvroCodec
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.dashboard_support import Seeded, seeded_database
from tests.dashboard_users import sign_in, users_file

pytestmark = [pytest.mark.integration, pytest.mark.broker]


@pytest.fixture(scope="module")
def seeded(store_server) -> tuple[StoreSettings, Seeded]:
    return seeded_database(store_server.url, big_trace_actions=5)


@pytest.fixture
def kafka(kafka_settings_factory) -> KafkaSettings:
    return kafka_settings_factory(partitions=1)


@pytest.fixture
def users(tmp_path):
    return users_file(tmp_path, viewer="vera")


@pytest.fixture
def make_app(seeded, kafka, users, monkeypatch):
    settings, _ = seeded
    monkeypatch.setenv("AGENTAUDIT_CLICKHOUSE_URL", settings.clickhouse_url)
    monkeypatch.setenv("AGENTAUDIT_DATABASE", settings.database)
    monkeypatch.setenv("AGENTAUDIT_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    for name in ("control", "lifecycle"):
        monkeypatch.setenv(f"AGENTAUDIT_TOPIC_{name.upper()}", getattr(kafka.topics, name))
    monkeypatch.setenv("AGENTAUDIT_DASHBOARD_USERS_FILE", str(users))

    def make(page: str, **params: str) -> AppTest:
        at = AppTest.from_file(str(APP_PATH), default_timeout=60)
        at.query_params.update(page=page, **params)
        return at

    return make


def _published(kafka: KafkaSettings, topic: str, expected: int | None = None) -> list[dict]:
    codec = AvroCodec("incident_lifecycle" if topic == kafka.topics.lifecycle else "control")
    return [codec.decode(m.value()) for m in read_all(kafka, topic, expected=expected, timeout=10, idle=3)]


def _keys(at: AppTest) -> set[str]:
    return {b.key for b in at.button if b.key}


def test_the_old_default_user_list_no_longer_signs_anyone_in(make_app, monkeypatch):
    """Attack: the former default, AGENTAUDIT_DASHBOARD_USERS=oncall:sre with no password (anonymous sessions
    signed in as oncall and could kill agents). Expected: the dashboard refuses to run on it and shows nothing."""
    monkeypatch.setenv("AGENTAUDIT_DASHBOARD_USERS", "oncall:sre")
    at = make_app("control")
    at.run()
    assert any("no longer used" in e.value for e in at.error)
    assert not _keys(at) and not at.dataframe and not at.form_submit_button


def test_without_a_users_file_no_one_signs_in(make_app, monkeypatch, tmp_path):
    """Attack: a fresh install with no users file. Expected: a configuration error, no sign-in form, no data."""
    monkeypatch.setenv("AGENTAUDIT_DASHBOARD_USERS_FILE", str(tmp_path / "missing"))
    at = make_app("incidents")
    at.run()
    assert any("no dashboard users file" in e.value for e in at.error)
    assert not at.dataframe and not at.form_submit_button


def test_an_anonymous_session_sees_no_data_and_no_action(make_app, kafka):
    """Attack: open /?page=incident&incident=inc-critical-open and /?page=control without signing in.
    Expected: only the sign-in form; no incident data, no Acknowledge/Kill/Clear buttons; nothing on Kafka."""
    for page, params in (("incident", {"incident": "inc-critical-open"}), ("control", {})):
        at = make_app(page, **params)
        at.run()
        assert not at.exception, at.exception
        assert [t.value for t in at.title] == ["Sign in"]
        assert not at.dataframe
        assert _keys(at) == {"FormSubmitter:sign_in-Sign in"}  # the sign-in form is the only button
    assert _published(kafka, kafka.topics.lifecycle) == [] and _published(kafka, kafka.topics.control) == []


def test_anonymous_view_still_cannot_act(make_app, kafka, monkeypatch):
    """Attack: with AGENTAUDIT_DASHBOARD_ANONYMOUS_VIEW=true, click Acknowledge, Assign, Resolve, a per-agent Kill
    and a typed Kill ('*', every agent of the tenant) without signing in. Expected: each refused, nothing on Kafka."""
    monkeypatch.setenv("AGENTAUDIT_DASHBOARD_ANONYMOUS_VIEW", "true")
    at = make_app("incident", incident="inc-critical-open")
    at.run()
    at.text_input(key="action_note").set_value("anonymous ack")
    for key in ("btn_ack", "btn_assign", "btn_resolve"):
        at.button(key=key).click().run()
        assert any("Sign in" in e.value for e in at.error), key
    control = make_app("control")
    control.run()
    control.text_input(key="control_note").set_value("anonymous kill")
    control.button(key="kill:acme:payments-bot").click().run()
    assert any("Sign in" in e.value for e in control.error)
    control.text_input(key="kill_agent_id").set_value("*")
    control.button(key="kill_typed").click().run()
    assert any("Sign in" in e.value for e in control.error)
    assert _published(kafka, kafka.topics.lifecycle) == [] and _published(kafka, kafka.topics.control) == []


def test_a_viewer_cannot_act(make_app, kafka):
    """Attack: vera (role viewer) signs in with her own password and clicks Acknowledge and Kill.
    Expected: she reads the pages; both actions refused; nothing on Kafka."""
    at = make_app("incident", incident="inc-critical-open")
    at.run()
    sign_in(at, "vera", "vera-read-only-pass")
    assert at.title[0].value == "Incident"
    at.button(key="btn_ack").click().run()
    assert any("operator" in e.value for e in at.error)
    at.query_params["page"] = "control"
    at.session_state["nav_page"] = "control"
    at.run()
    at.text_input(key="control_note").set_value("viewer kill")
    at.button(key="kill:acme:payments-bot").click().run()
    assert any("Sign in" in e.value for e in at.error)
    assert _published(kafka, kafka.topics.lifecycle) == [] and _published(kafka, kafka.topics.control) == []


def test_a_session_ends_when_the_password_is_reset(make_app, kafka, users):
    """Attack: alice's session was hijacked (or her password leaked); the operator resets her password.
    Expected: the open session is signed out at its next run and its Acknowledge is refused."""
    at = make_app("incident", incident="inc-critical-open")
    at.run()
    sign_in(at, "alice")
    assert any("Signed in as **alice**" in c.value for c in at.sidebar.caption)
    set_password(users, "alice")
    at.button(key="btn_ack").click().run()
    assert any("Signed out" in w.value for w in at.warning)
    assert [t.value for t in at.title] == ["Sign in"]
    assert _published(kafka, kafka.topics.lifecycle) == []


def test_an_action_names_the_signed_in_user_only(make_app, kafka):
    """Attack: bob wants his acknowledgement recorded as alice's: he types alice in the sign-in form with his own
    password, then signs in as himself. Expected: the first is refused; the event names bob."""
    at = make_app("incident", incident="inc-critical-open")
    at.run()
    sign_in(at, "alice", "bob-battery-staple")
    assert any("wrong user name or password" in e.value for e in at.error)
    sign_in(at, "bob")
    at.text_input(key="action_note").set_value("mine")
    at.button(key="btn_ack").click().run()
    assert not at.exception, at.exception
    (event,) = _published(kafka, kafka.topics.lifecycle, expected=1)
    assert (event["type"], event["actor"]["type"], event["actor"]["id"]) == ("acknowledged", "human", "bob")
