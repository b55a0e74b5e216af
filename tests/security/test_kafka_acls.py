"""Attack: forge control and lifecycle records with an agent's Kafka credentials, or with none.

Issue 12 showed that a plain Kafka producer could publish a ``clear`` by ``human:alice`` on the
control topic and a ``resolved`` on the lifecycle topic. With SASL and agentaudit's ACLs
(:func:`agentaudit.infra.kafka.acls.grants`) on a broker with an authorizer, the broker itself refuses
such records from an agent principal, from a client without credentials and from a wrong password;
the operator and dashboard principals may still publish them.

Runs only against a SASL listener with the StandardAuthorizer (the Apache Kafka tier of ``.ci/run``,
started by ``.ci/kafka/start.sh``): ``AGENTAUDIT_TEST_SASL_BOOTSTRAP`` names it and
``AGENTAUDIT_TEST_SASL_USERS`` the JSON file with the users' passwords. The embedded tansu broker
has neither SASL users nor an authorizer, so there is nothing to test there.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from agentaudit.infra.kafka import KafkaAdmin, KafkaError, KafkaProducer, read_all
from agentaudit.infra.kafka.acls import CONTROL_RETENTION, Grant, grants
from agentaudit.producers import AuditClient
from agentaudit.settings import KafkaSecurity, KafkaSettings, TopicNames

SASL_BOOTSTRAP_ENV = "AGENTAUDIT_TEST_SASL_BOOTSTRAP"
SASL_USERS_ENV = "AGENTAUDIT_TEST_SASL_USERS"

pytestmark = [
    pytest.mark.broker,
    pytest.mark.integration,
    pytest.mark.skipif(not (os.environ.get(SASL_BOOTSTRAP_ENV) and os.environ.get(SASL_USERS_ENV)),
                       reason=f"needs a SASL listener with an authorizer: set {SASL_BOOTSTRAP_ENV} and {SASL_USERS_ENV} "
                              "(the Apache Kafka tier of .ci/run does; the embedded tansu has no SASL users or ACLs)"),
]

#: The forgeries of issue 12, as an agent would send them (the broker refuses before reading a byte).
FORGED_CLEAR = b'{"type":"clear","issuer":"human:alice","target":"agent:billing-bot","tenant":"acme"}'
FORGED_KILL_ALL = b'{"type":"kill_agent","issuer":"human:alice","target":"*"}'
FORGED_RESOLVED = b'{"type":"resolved","actor":"alice","incident_id":"inc-1"}'

REFUSED = "TOPIC_AUTHORIZATION_FAILED"


def _users() -> dict[str, str]:
    return json.loads(Path(os.environ[SASL_USERS_ENV]).read_text())["users"]  # type: ignore[no-any-return]  # parsed JSON


def security(**fields: Any) -> KafkaSecurity:
    """Every field explicit, so that AGENTAUDIT_KAFKA_* in the environment (the tier logs in as admin) adds nothing."""
    return KafkaSecurity(**{**{name: f.default for name, f in KafkaSecurity.model_fields.items()}, **fields})


def as_user(user: str, topics: TopicNames, *, password: str | None = None,
            mechanism: str = "SCRAM-SHA-512") -> KafkaSettings:
    """Settings of a client logged in as ``user``."""
    security_ = security(security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism, sasl_username=user,
                         sasl_password=password if password is not None else _users()[user])
    return KafkaSettings(bootstrap_servers=os.environ[SASL_BOOTSTRAP_ENV], topics=topics, security=security_)


def produce(settings: KafkaSettings, topic: str, value: bytes, timeout: float = 10.0) -> KafkaError | None:
    """Produce one message and wait for its report: None when the broker stored it, else the error."""
    reports: list[KafkaError | None] = []
    producer = KafkaProducer(settings, {"message.timeout.ms": int(timeout * 1000), "linger.ms": 0})
    try:
        producer.produce(topic, value, on_delivery=lambda err, _msg: reports.append(err))
        producer.flush(timeout + 5)
    finally:
        producer.flush(0)
    assert len(reports) == 1, f"no delivery report for {topic!r} within {timeout + 5}s"
    return reports[0]


def stored_values(admin: KafkaSettings, topic: str) -> list[bytes]:
    """Every value of ``topic`` (idle 3 s: the first fetch of a fresh consumer can take over a second under load)."""
    return [m.value() for m in read_all(admin, topic, timeout=20, idle=3.0)]


def is_stored(admin: KafkaSettings, topic: str, value: bytes, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while value not in stored_values(admin, topic):
        if time.monotonic() >= deadline:
            return False
    return True


def everything_stored(admin: KafkaSettings, topic: str) -> list[bytes]:
    """All values of a one-partition ``topic``, read up to a marker admin writes now (so an empty read is no pass)."""
    marker = f"marker-{uuid.uuid4()}".encode()
    assert produce(admin, topic, marker) is None
    deadline = time.monotonic() + 30
    while marker not in (values := stored_values(admin, topic)):
        assert time.monotonic() < deadline, f"the marker never showed up on {topic!r}"
    return values


@pytest.fixture(scope="module")
def topics() -> TopicNames:
    """uuid-named agentaudit topics, created by admin, with agentaudit's ACLs applied to them."""
    prefix = f"aa-acl-{uuid.uuid4().hex[:12]}"
    names = TopicNames(**{field: f"{prefix}.{field}" for field in TopicNames.model_fields})
    admin = KafkaAdmin(as_user("admin", names))
    admin.ensure_topics([names.actions, names.incidents, names.lifecycle, names.dlq, names.repartition], partitions=1)
    admin.ensure_topics([names.control], partitions=1, config=CONTROL_RETENTION)
    admin.create_acls(grants(names))
    # The controller commits ACLs before the broker applies them: wait until the first allowed write goes through.
    deadline = time.monotonic() + 20
    while (err := produce(as_user("agent", names), names.actions, b"acl-probe", timeout=3)) is not None:
        assert err.code == REFUSED and time.monotonic() < deadline, f"ACLs never took effect: {err}"
        time.sleep(0.2)
    return names


def test_agent_may_produce_actions(topics: TopicNames) -> None:
    assert produce(as_user("agent", topics), topics.actions, b"an action event") is None


@pytest.mark.parametrize(("topic_field", "payload"), [
    ("control", FORGED_CLEAR), ("control", FORGED_KILL_ALL), ("lifecycle", FORGED_RESOLVED),
    ("incidents", FORGED_RESOLVED),
], ids=["clear-own-kill", "kill-every-agent", "resolve-incident", "fake-incident"])
def test_agent_is_refused_control_and_lifecycle(topics: TopicNames, topic_field: str, payload: bytes) -> None:
    topic = getattr(topics, topic_field)
    err = produce(as_user("agent", topics), topic, payload)
    assert err is not None and err.code == REFUSED, err
    assert payload not in everything_stored(as_user("admin", topics), topic)


@pytest.mark.parametrize(("user", "mechanism"), [
    ("operator", "SCRAM-SHA-512"), ("operator", "PLAIN"), ("dashboard", "SCRAM-SHA-512"), ("dashboard", "PLAIN"),
])
@pytest.mark.parametrize("topic_field", ["control", "lifecycle"])
def test_operator_and_dashboard_may_produce_control_and_lifecycle(topics: TopicNames, user: str, mechanism: str,
                                                                  topic_field: str) -> None:
    value = f"{user} {mechanism} {uuid.uuid4()}".encode()
    topic = getattr(topics, topic_field)
    assert produce(as_user(user, topics, mechanism=mechanism), topic, value) is None
    assert is_stored(as_user("admin", topics), topic, value)


def test_unauthenticated_client_is_refused(topics: TopicNames) -> None:
    """A client that skips SASL (security.protocol=PLAINTEXT) on the SASL listener gets nothing, not even metadata."""
    anonymous = KafkaSettings(bootstrap_servers=os.environ[SASL_BOOTSTRAP_ENV], topics=topics,
                              security=security(security_protocol="PLAINTEXT"))
    assert KafkaAdmin(anonymous).ping(timeout=3) is False
    err = produce(anonymous, topics.control, FORGED_CLEAR, timeout=4)
    assert err is not None and err.code == "_MSG_TIMED_OUT", err
    assert FORGED_CLEAR not in everything_stored(as_user("admin", topics), topics.control)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_wrong_password_is_refused(topics: TopicNames, mechanism: str) -> None:
    guess = f"guess-{uuid.uuid4().hex}"
    settings = as_user("operator", topics, password=guess, mechanism=mechanism)
    assert KafkaAdmin(settings).ping(timeout=3) is False
    err = produce(settings, topics.control, FORGED_CLEAR, timeout=4)
    assert err is not None and err.code in {"_AUTHENTICATION", "_MSG_TIMED_OUT"}, err
    assert guess not in str(err)
    assert FORGED_CLEAR not in everything_stored(as_user("admin", topics), topics.control)


def test_agent_cannot_grant_itself_control(topics: TopicNames) -> None:
    """Payload: CreateAcls ``ALLOW User:agent WRITE topic <control>``, sent with the agent's credentials."""
    with pytest.raises(KafkaError) as raised:
        KafkaAdmin(as_user("agent", topics)).create_acls([Grant("agent", "topic", topics.control, "WRITE")])
    assert raised.value.code == "CLUSTER_AUTHORIZATION_FAILED"
    assert produce(as_user("agent", topics), topics.control, FORGED_CLEAR).code == REFUSED  # type: ignore[union-attr]  # None fails the test


def test_agent_cannot_create_a_topic(topics: TopicNames) -> None:
    shadow = f"{topics.control}-shadow"
    with pytest.raises(KafkaError) as raised:
        KafkaAdmin(as_user("agent", topics)).ensure_topics([shadow], timeout=10)
    assert raised.value.code == REFUSED
    assert "may not create it" in str(raised.value)


def test_sdk_records_actions_as_the_agent_principal(topics: TopicNames, tmp_path: Path) -> None:
    """The real SDK, with only the agent's grants: it finds the existing topic (no CREATE) and delivers."""
    settings = as_user("agent", topics)
    audit = AuditClient(kafka=settings, topic=topics.actions, tenant="acme", agent="billing-bot",
                        spool_dir=tmp_path / "spool")
    try:
        with audit.action("tool_call", name="crm.lookup"):
            pass
    finally:
        audit.close()
    stats: dict[str, Any] = audit.stats()
    assert stats["delivered"] >= 2, stats  # start and end
    assert len(stored_values(as_user("admin", topics), topics.actions)) >= 3  # + the probe and earlier writes


def test_setup_command_sets_users_topics_and_acls() -> None:
    """``python -m agentaudit.infra.kafka --scram-users --create-topics`` (compose's kafka-setup) as admin, then
    the new agent user may write actions and is refused control."""
    import subprocess
    import sys

    prefix = f"aa-setup-{uuid.uuid4().hex[:12]}"
    names = TopicNames(**{field: f"{prefix}.{field}" for field in TopicNames.model_fields})
    agent_user, agent_password = f"agent-{prefix}", uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTAUDIT_KAFKA_", "AGENTAUDIT_TOPIC_"))}
    env.update({f"AGENTAUDIT_TOPIC_{field.upper()}": getattr(names, field) for field in TopicNames.model_fields})
    env.update(AGENTAUDIT_BOOTSTRAP_SERVERS=os.environ[SASL_BOOTSTRAP_ENV], AGENTAUDIT_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
               AGENTAUDIT_KAFKA_SASL_USERNAME="admin", AGENTAUDIT_KAFKA_SASL_PASSWORD=_users()["admin"],
               AGENTAUDIT_SCRAM_PASSWORD_AGENT=agent_password)
    done = subprocess.run([sys.executable, "-m", "agentaudit.infra.kafka", "--scram-users", "--create-topics",
                           "--agent", agent_user], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert f"SCRAM-SHA-512 users set: ['{agent_user}']" in done.stdout
    assert agent_password not in done.stdout + done.stderr
    agent = as_user(agent_user, names, password=agent_password)
    deadline = time.monotonic() + 20
    while (err := produce(agent, names.actions, b"first action", timeout=3)) is not None:
        assert time.monotonic() < deadline, f"the new agent user never got in: {err}"
        time.sleep(0.3)
    err = produce(agent, names.control, FORGED_CLEAR)
    assert err is not None and err.code == REFUSED, err


# -- the same over TLS (SASL_SSL): the CA and hostname settings of KafkaSecurity, against a real TLS listener --

def _tls() -> dict[str, str]:
    tls = json.loads(Path(os.environ[SASL_USERS_ENV]).read_text()).get("tls")
    if not tls:
        pytest.skip("the broker has no SASL_SSL listener (.ci/kafka/start.sh makes one when `cryptography` is installed)")
    return tls  # type: ignore[no-any-return]  # parsed JSON


def over_tls(user: str, topics: TopicNames, *, ca: bool = True, host: str = "127.0.0.1",
             check_hostname: bool = True) -> KafkaSettings:
    tls = _tls()
    port = tls["bootstrap"].rsplit(":", 1)[1]
    security_ = security(security_protocol="SASL_SSL", sasl_username=user, sasl_password=_users()[user],
                         ssl_ca_location=tls["ca_location"] if ca else None, ssl_check_hostname=check_hostname)
    return KafkaSettings(bootstrap_servers=f"{host}:{port}", topics=topics, security=security_)


def test_tls_operator_may_publish_and_agent_is_still_refused(topics: TopicNames) -> None:
    value = f"over tls {uuid.uuid4()}".encode()
    assert produce(over_tls("operator", topics), topics.control, value) is None
    assert is_stored(as_user("admin", topics), topics.control, value)
    err = produce(over_tls("agent", topics), topics.control, FORGED_CLEAR)
    assert err is not None and err.code == REFUSED, err


def test_tls_refuses_a_broker_the_ca_did_not_sign(topics: TopicNames) -> None:
    """Without our CA the client trusts only the system store, which never signed this broker: no connection."""
    assert KafkaAdmin(over_tls("operator", topics, ca=False)).ping(timeout=3) is False


def test_tls_checks_the_host_name(topics: TopicNames) -> None:
    """The certificate names IP 127.0.0.1 only: dialling `localhost` fails unless the check is turned off."""
    assert KafkaAdmin(over_tls("operator", topics, host="localhost")).ping(timeout=3) is False
    assert KafkaAdmin(over_tls("operator", topics, host="localhost", check_hostname=False)).ping(timeout=5) is True


def test_tls_listener_refuses_a_client_without_tls(topics: TopicNames) -> None:
    tls = _tls()
    settings = as_user("operator", topics).model_copy(update={"bootstrap_servers": tls["bootstrap"]})
    assert KafkaAdmin(settings).ping(timeout=3) is False
