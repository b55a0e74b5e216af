"""The control topic itself: its config, how it is created, read and folded into state.

The topic is the state of the control plane: every command is kept forever and folded in order,
so anyone who reads it from the beginning (an agent, the CLI, the dashboard) sees the same state.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from agentaudit.control.admission import ControlAdmission
from agentaudit.control.authority import Authority
from agentaudit.infra.kafka import (
    KafkaAdmin,
    Message,
    read_all,
)
from agentaudit.logs import get_logger
from agentaudit.schemas import (
    AvroCodec,
    ControlCommand,
    ControlState,
    DecodeError,
)
from agentaudit.settings import KafkaSettings

__all__ = ["CONTROL_TOPIC_CONFIG", "decode_commands", "decode_records", "ensure_control_topic", "read_control_state",
           "wall_clock_us"]

_log = get_logger("agentaudit.control")

#: The control topic is the state: it must never age out (a kill without expiry would silently lapse).
CONTROL_TOPIC_CONFIG: Mapping[str, str] = {"retention.ms": "-1"}


def wall_clock_us() -> int:
    return time.time_ns() // 1000


def decode_commands(codec: AvroCodec, messages: Iterable[Message]) -> list[ControlCommand]:
    return [command for _, command in decode_records(codec, messages)]


def decode_records(codec: AvroCodec, messages: Iterable[Message]) -> list[tuple[Message, ControlCommand]]:
    """Each decodable message with its command (the message's headers carry the signature)."""
    records: list[tuple[Message, ControlCommand]] = []
    for msg in messages:
        try:
            # A tombstone (no value) is undecodable like any bad record, not a TypeError that stops the fold.
            records.append((msg, ControlCommand.from_avro(codec.decode(msg.value() or b""))))
        except (DecodeError, ValueError) as exc:
            # One bad record must not blind every agent; it is logged with its position.
            _log.warning("control.undecodable", topic=msg.topic(), partition=msg.partition(), offset=msg.offset(),
                         error=exc)
    return records



def ensure_control_topic(settings: KafkaSettings, admin: KafkaAdmin | None = None) -> None:
    """Create the control topic if missing, with infinite retention (:data:`CONTROL_TOPIC_CONFIG`)."""
    (admin or KafkaAdmin(settings)).ensure_topics([settings.topics.control], config=CONTROL_TOPIC_CONFIG)


def read_control_state(settings: KafkaSettings, timeout: float = 15.0, idle: float = 2.0, *,
                       authority: Authority | None = None) -> ControlState:
    """The current control state, folded from the whole control topic (CLI, dashboard).

    :param authority: apply only records it authorizes (:class:`~agentaudit.control.admission.ControlAdmission`);
        default None, every record (the caller warns that nothing is authenticated).
    """
    codec = AvroCodec("control", schema_registry_url=settings.schema_registry_url, topic=settings.topics.control)
    messages = read_all(settings, settings.topics.control, timeout=timeout, idle=idle)
    messages.sort(key=lambda m: (m.timestamp()[1], m.partition(), m.offset()))
    admission = ControlAdmission(authority, record_refusals=False)
    state = ControlState()
    for message, command in decode_records(codec, messages):
        # confluent's stub types headers for produce too (a dict, str values); a consumed message's are
        # always a list of (str, bytes | None), which is what admission reads.
        for ready in admission.admit(command, message):  # type: ignore[arg-type]  # see the comment above
            state.apply(ready)
    return state


