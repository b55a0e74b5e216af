"""The dashboard's Control page (AppTest, real store and broker): Kill and Clear publish control commands
by the signed-in user to the control topic; nothing is written to ClickHouse."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from agentaudit.dashboard import APP_PATH, AuthError, ControlDesk, PublishError
from agentaudit.infra.kafka import read_all
from agentaudit.schemas import AvroCodec, ControlCommand, ControlType
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.authority_support import Operators, make_operators
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
def operators(tmp_path) -> Operators:
    """Signed: the dashboard signs with its service key for the signed-in person; people may kill and clear."""
    operators = make_operators(tmp_path, people_may=["kill", "clear"])
    operators.dashboard.save(tmp_path / "dashboard-1.key")
    return operators


@pytest.fixture
def app(seeded, kafka, users, operators, tmp_path, monkeypatch) -> AppTest:
    settings, _ = seeded
    monkeypatch.setenv("AGENTAUDIT_AUTHORITY_FILE", str(operators.path))
    monkeypatch.setenv("AGENTAUDIT_SERVICE_KEY_FILE", str(tmp_path / "dashboard-1.key"))
    monkeypatch.setenv("AGENTAUDIT_CLICKHOUSE_URL", settings.clickhouse_url)
    monkeypatch.setenv("AGENTAUDIT_DATABASE", settings.database)
    monkeypatch.setenv("AGENTAUDIT_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    for name in ("control", "lifecycle"):
        monkeypatch.setenv(f"AGENTAUDIT_TOPIC_{name.upper()}", getattr(kafka.topics, name))
    monkeypatch.setenv("AGENTAUDIT_DASHBOARD_USERS_FILE", str(users))
    monkeypatch.setenv("AGENTAUDIT_DASHBOARD_ANONYMOUS_VIEW", "true")  # the page shows; acting still needs sign-in
    at = AppTest.from_file(str(APP_PATH), default_timeout=60)
    at.query_params["page"] = "control"
    return at


@pytest.fixture(scope="module")
def users(tmp_path_factory):
    return users_file(tmp_path_factory.mktemp("users"))


def commands(kafka: KafkaSettings, expected: int) -> list[ControlCommand]:
    codec = AvroCodec("control")
    messages = read_all(kafka, kafka.topics.control, expected=expected, timeout=15, idle=3)
    return [ControlCommand.from_avro(codec.decode(m.value())) for m in messages]


def test_kill_per_agent_then_clear_publish_commands_by_the_signed_in_user(app, kafka, operators):
    app.run()
    sign_in(app, "alice")
    assert not app.exception, app.exception
    assert app.title[0].value == "Control"
    assert any("No control command is in force" in i.value for i in app.info)

    app.text_input(key="control_note").set_value("runaway refunds")
    app.button(key="kill:acme:payments-bot").click().run()
    assert not app.exception, app.exception
    (kill,) = commands(kafka, 1)
    assert (kill.type, kill.agent_id, kill.tenant, kill.issuer.id, kill.issuer.type.value, kill.reason) == (
        ControlType.KILL_AGENT, "payments-bot", "acme", "alice", "human", "runaway refunds")
    assert any(kill.command_id in s.value and "by alice" in s.value for s in app.success)
    in_force = app.dataframe[0].value  # the page read the topic again: the kill is listed with its issuer
    assert list(in_force["command"]) == [kill.command_id] and list(in_force["issuer"]) == ["human:alice"]

    app.button(key="sign_out").click().run()
    sign_in(app, "bob")
    app.text_input(key="control_note").set_value("refund loop fixed")
    app.button(key=f"clear:{kill.command_id}").click().run()
    assert not app.exception, app.exception
    kill_again, clear = commands(kafka, 2)
    assert kill_again.command_id == kill.command_id
    assert (clear.type, clear.clears_command_id, clear.agent_id, clear.issuer.id, clear.attributes["note"]) == (
        ControlType.CLEAR, kill.command_id, "payments-bot", "bob", "refund loop fixed")
    assert any("No control command is in force" in i.value for i in app.info)

    with ControlDesk(kafka, authority=operators.authority) as desk:  # the fold agrees: the kill cleared by bob
        state = desk.state()
    assert [c.command_id for c in state.history] == [kill.command_id, clear.command_id]  # both signed, admitted
    assert state.active(clear.issued_at_us + 1) == [] and state.cleared_by(kill.command_id).issuer.id == "bob"


def test_kill_a_typed_agent_id_and_refusals_publish_nothing(app, kafka):
    app.run()
    app.text_input(key="kill_agent_id").set_value("ghost-bot")
    app.text_input(key="control_note").set_value("not ours")
    app.button(key="kill_typed").click().run()
    assert any("Sign in" in e.value for e in app.error)  # nobody signed in: refused before Kafka

    sign_in(app, "alice")
    app.text_input(key="control_note").set_value("")
    app.button(key="kill_typed").click().run()
    assert any("needs a note" in e.value for e in app.error)

    app.text_input(key="control_note").set_value("unknown agent spending money")
    app.button(key="kill_typed").click().run()
    assert not app.exception, app.exception
    (kill,) = commands(kafka, 1)
    assert (kill.type, kill.agent_id, kill.tenant, kill.issuer.id) == (ControlType.KILL_AGENT, "ghost-bot", "", "alice")


def test_the_desk_refuses_a_kill_without_actor_agent_or_reason_before_kafka():
    with ControlDesk(KafkaSettings(bootstrap_servers="127.0.0.1:9")) as desk:
        with pytest.raises(AuthError):
            desk.kill("bot", actor="", reason="why")
        with pytest.raises(PublishError, match="agent id"):
            desk.kill(" ", actor="alice", reason="why")
        with pytest.raises(PublishError, match="needs a note"):
            desk.kill("bot", actor="alice", reason=" ")
