"""The control fold: what is in force after a sequence of commands (pure logic, no broker)."""

from __future__ import annotations

import pytest

from agentaudit.schemas import (
    ANY_AGENT,
    Actor,
    ActorType,
    AvroCodec,
    ControlCommand,
    ControlState,
    ControlType,
    RuleMode,
    command_id_for,
)

NOW = 1_700_000_000_000_000


def cmd(type_: ControlType, agent: str = "a1", **fields) -> ControlCommand:
    base = dict(command_id=f"{type_.value}-{agent}-{fields.get('tool')}", type=type_, tenant="acme", agent_id=agent,
                issued_at_us=NOW, issuer=Actor(type=ActorType.HUMAN, id="alice"))
    base.update(fields)
    return ControlCommand(**base)


def test_avro_round_trip_keeps_every_field() -> None:
    codec = AvroCodec("control")
    original = cmd(ControlType.BLOCK_TOOL, tool="shell.exec", reason="r", incident_id="inc", expires_at_us=NOW + 1,
                   attributes={"rule_id": "x"})
    assert ControlCommand.from_avro(codec.decode(codec.encode(original.to_avro()))) == original


def test_pause_blocks_every_action_of_that_agent_only() -> None:
    state = ControlState().apply_all([cmd(ControlType.PAUSE_AGENT)])
    assert state.blocking("acme", "a1", "search", NOW).type is ControlType.PAUSE_AGENT
    assert state.blocking("acme", "a2", "search", NOW) is None
    assert state.blocking("other-tenant", "a1", "search", NOW) is None


def test_block_tool_blocks_that_tool_only() -> None:
    state = ControlState().apply_all([cmd(ControlType.BLOCK_TOOL, tool="shell.exec")])
    assert state.blocking("acme", "a1", "shell.exec", NOW) is not None
    assert state.blocking("acme", "a1", "search", NOW) is None


def test_kill_outranks_pause_and_wildcard_reaches_every_agent() -> None:
    state = ControlState().apply_all([cmd(ControlType.PAUSE_AGENT), cmd(ControlType.KILL_AGENT, agent=ANY_AGENT)])
    assert state.blocking("acme", "a1", "x", NOW).type is ControlType.KILL_AGENT
    assert state.blocking("acme", "zz", "x", NOW).type is ControlType.KILL_AGENT


def test_expired_commands_stop_blocking() -> None:
    state = ControlState().apply_all([cmd(ControlType.PAUSE_AGENT, expires_at_us=NOW + 10)])
    assert state.blocking("acme", "a1", "x", NOW + 9) is not None
    assert state.blocking("acme", "a1", "x", NOW + 10) is None
    assert state.active(NOW + 10) == []


def test_clear_lifts_only_its_target_and_names_who() -> None:
    pause, block = cmd(ControlType.PAUSE_AGENT), cmd(ControlType.BLOCK_TOOL, tool="t")
    clear = cmd(ControlType.CLEAR, command_id="c1", clears_command_id=pause.command_id)
    state = ControlState().apply_all([pause, block, clear])
    assert state.blocking("acme", "a1", "x", NOW) is None
    assert state.blocking("acme", "a1", "t", NOW) == block
    assert state.cleared_by(pause.command_id).issuer.id == "alice"


def test_clear_before_its_command_still_wins_and_republishing_stays_cleared() -> None:
    pause = cmd(ControlType.PAUSE_AGENT)
    clear = cmd(ControlType.CLEAR, command_id="c1", clears_command_id=pause.command_id)
    state = ControlState().apply_all([clear, pause, pause])
    assert state.blocking("acme", "a1", "x", NOW) is None


def test_clear_without_id_lifts_everything_on_the_agent() -> None:
    state = ControlState().apply_all([cmd(ControlType.PAUSE_AGENT), cmd(ControlType.BLOCK_TOOL, tool="t"),
                                      cmd(ControlType.CLEAR, command_id="c1")])
    assert state.active(NOW) == []


def test_simulated_commands_are_listed_but_never_obeyed() -> None:
    sim = cmd(ControlType.PAUSE_AGENT, attributes={"simulated": "true"})
    state = ControlState().apply_all([sim])
    assert state.blocking("acme", "a1", "x", NOW) is None
    assert state.history == [sim]


def test_require_approval_is_separate_from_blocking() -> None:
    state = ControlState().apply_all([cmd(ControlType.REQUIRE_APPROVAL, tool="payments.refund")])
    assert state.blocking("acme", "a1", "payments.refund", NOW) is None
    assert state.approval_required("acme", "a1", "payments.refund", NOW) is not None
    assert state.approval_required("acme", "a1", "search", NOW) is None


@pytest.mark.parametrize("modes", [["simulate"], ["simulate", "enforce"], ["enforce", "detect"]])
def test_promotions_fold_last_one_wins(modes: list[str]) -> None:
    state = ControlState()
    for i, mode in enumerate(modes):
        state.apply(cmd(ControlType.PROMOTE_RULE, agent="", command_id=f"p{i}",
                        attributes={"rule_id": "r1", "to_mode": mode}))
    assert state.rule_modes == {"r1": RuleMode(modes[-1])}


def test_command_ids_from_origin_are_stable_and_distinct() -> None:
    assert command_id_for("inc-1", "pause_agent") == command_id_for("inc-1", "pause_agent")
    assert command_id_for("inc-1", "pause_agent") != command_id_for("inc-2", "pause_agent")


def test_a_tombstone_on_the_control_topic_is_skipped_not_a_crash() -> None:
    # found by mypy: a message without a value reached codec.decode(None), a TypeError no caller caught
    from confluent_kafka import Message

    from agentaudit.control.topic import decode_records

    codec = AvroCodec("control")
    good = cmd(ControlType.BLOCK_TOOL, tool="shell")
    messages = [Message(topic="control", partition=0, offset=0, value=None),
                Message(topic="control", partition=0, offset=1, value=codec.encode(good.to_avro()))]
    assert [command for _, command in decode_records(codec, messages)] == [good]
