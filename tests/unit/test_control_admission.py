"""ControlAdmission and check_lifecycle without a broker: the order-dependent rules of the control log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from agentaudit.control.admission import (
    MAX_HELD_CLEARS,
    ControlAdmission,
    check_lifecycle,
)
from agentaudit.control.authority import Authority, sign_headers
from agentaudit.schemas import (
    Actor,
    ActorType,
    AvroCodec,
    ControlCommand,
    ControlType,
    SigningKey,
)

TOPIC = "agentaudit.control"


@dataclass
class FakeMessage:
    """What admission reads of a Kafka message (topic, partition, offset, value, headers)."""

    _value: bytes
    _headers: list
    _offset: int = 0
    _topic: str = TOPIC

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list:
        return self._headers


@pytest.fixture
def alice() -> SigningKey:
    return SigningKey.generate("alice-1")


@pytest.fixture
def authority(alice: SigningKey) -> Authority:
    return Authority.from_document({
        "keys": [{"id": "alice-1", "public_key": alice.public_key, "principal": "human:alice"}],
        "grants": [{"principal": "human:alice", "may": ["kill", "clear", "resolve"]}],
    })


def _signed(key: SigningKey | None, command: ControlCommand, offset: int = 0) -> FakeMessage:
    value = AvroCodec("control").encode(command.to_avro())
    return FakeMessage(value, sign_headers(key, "control", TOPIC, value) if key else [], offset)


def _command(type: ControlType, at: int, **fields) -> ControlCommand:
    return ControlCommand(command_id=str(uuid.uuid4()), type=type, agent_id="bot", tenant="acme",
                          issuer=Actor(type=ActorType.HUMAN, id="alice"), issued_at_us=at, **fields)


def test_without_an_authority_every_record_is_applied_as_before():
    admission = ControlAdmission(None)
    kill = _command(ControlType.KILL_AGENT, 10)
    assert admission.admit(kill, _signed(None, kill)) == [kill]
    assert admission.admit(kill, _signed(None, kill)) == [kill]  # duplicates fold as one in ControlState


def test_a_clear_read_first_is_held_and_released_by_its_target(authority, alice):
    admission = ControlAdmission(authority)
    kill = _command(ControlType.KILL_AGENT, 10)
    clear = _command(ControlType.CLEAR, 20, clears_command_id=kill.command_id)
    assert admission.admit(clear, _signed(alice, clear)) == [] and admission.held == 1
    assert admission.admit(kill, _signed(alice, kill)) == [kill, clear] and admission.held == 0
    assert admission.admit(kill, _signed(alice, kill)) == []  # a replay
    assert admission.refusals == []


def test_refusal_incidents_are_deterministic_and_name_the_record(authority, alice):
    kill = _command(ControlType.KILL_AGENT, 10)
    message = _signed(None, kill, offset=7)
    first, second = ControlAdmission(authority), ControlAdmission(authority)
    first.admit(kill, message)
    second.admit(kill, message)
    [a], [b] = first.take_refusals(), second.take_refusals()
    incident = a.incident()
    assert incident == b.incident() and incident.rule_id == "integrity.unauthorized-command"
    assert incident.attributes["record_id"] == kill.command_id and incident.attributes["offset"] == "7"
    assert incident.attributes["issuer"] == "human:alice" and first.refusals == [] and first.refused == 1


def test_held_clears_are_bounded(authority, alice):
    admission = ControlAdmission(authority)
    for n in range(MAX_HELD_CLEARS + 5):
        clear = _command(ControlType.CLEAR, 20, clears_command_id=f"nothing-{n}")
        admission.admit(clear, _signed(alice, clear))
    assert admission.held == MAX_HELD_CLEARS and admission.refused == 5


def test_a_lifecycle_event_is_checked_on_its_own_topic_and_purpose(authority, alice):
    record = {"event_id": "e1", "incident_id": "i1", "tenant": "acme", "type": "resolved",
              "actor": {"type": "human", "id": "alice"}, "at_us": 10}
    value = b"the lifecycle event's Avro bytes"
    good = FakeMessage(value, sign_headers(alice, "lifecycle", "agentaudit.lifecycle", value),
                       _topic="agentaudit.lifecycle")
    assert check_lifecycle(authority, record, good) is None
    as_control = FakeMessage(value, sign_headers(alice, "control", "agentaudit.lifecycle", value),
                             _topic="agentaudit.lifecycle")  # a control signature does not verify as lifecycle
    refusal = check_lifecycle(authority, record, as_control)
    assert refusal is not None and refusal.reason.startswith("bad_signature")
    assert refusal.incident().rule_id == "integrity.unauthorized-lifecycle" and refusal.target == "i1"
