"""The event contract: Avro schemas, their pydantic faces, the wire codec and the ClickHouse DDL."""

# One import path: this folder is the package agentaudit.schemas (setup.py maps it); importing it as
# `schemas` from the repository root would load every module twice, with two of each class.
if __name__ != "agentaudit.schemas":
    raise ImportError(f"import agentaudit.schemas, not {__name__}: the schemas/ folder is the agentaudit.schemas package")

from agentaudit.schemas.action_fields import (
    ACTION_DEFAULTS,
    ACTION_FIELD_NAMES,
    ACTION_FIELDS,
    ACTION_LEAVES,
    ActionField,
)
from agentaudit.schemas.codec import CONFLUENT_MAGIC, SINGLE_OBJECT_MAGIC, AvroCodec, DecodeFailure, frame_body
from agentaudit.schemas.control import ANY_AGENT, ControlCommand, ControlState, ControlType, command_id_for
from agentaudit.schemas.exceptions import (
    DecodeError,
    EncodeError,
    MessageTooLargeError,
    SchemaError,
    UnknownFingerprintError,
)
from agentaudit.schemas.integrity import ChainViolation, StreamChain, body_hash, verify_stream, verify_streams
from agentaudit.schemas.models import (
    ActionEvent,
    ActionKind,
    Actor,
    ActorType,
    Incident,
    IncidentLifecycleEvent,
    IncidentState,
    IncidentStatus,
    LifecycleType,
    Phase,
    RuleMode,
    Severity,
    Status,
)
from agentaudit.schemas.registry import SchemaInfo, known_schemas
from agentaudit.schemas.signing import (
    KeyRing,
    KeysFileError,
    SignatureCheck,
    SignatureVerdict,
    SigningKey,
    signed_message,
)
from agentaudit.schemas.validation import check_action

__all__ = [
    "ACTION_DEFAULTS",
    "ACTION_FIELDS",
    "ACTION_FIELD_NAMES",
    "ACTION_LEAVES",
    "ANY_AGENT",
    "CONFLUENT_MAGIC",
    "SINGLE_OBJECT_MAGIC",
    "ActionEvent",
    "ActionField",
    "ActionKind",
    "Actor",
    "ActorType",
    "AvroCodec",
    "ChainViolation",
    "ControlCommand",
    "ControlState",
    "ControlType",
    "DecodeError",
    "DecodeFailure",
    "EncodeError",
    "Incident",
    "IncidentLifecycleEvent",
    "IncidentState",
    "IncidentStatus",
    "KeyRing",
    "KeysFileError",
    "LifecycleType",
    "MessageTooLargeError",
    "Phase",
    "RuleMode",
    "SchemaError",
    "SchemaInfo",
    "Severity",
    "SignatureCheck",
    "SignatureVerdict",
    "SigningKey",
    "Status",
    "StreamChain",
    "UnknownFingerprintError",
    "body_hash",
    "check_action",
    "command_id_for",
    "frame_body",
    "known_schemas",
    "signed_message",
    "verify_stream",
    "verify_streams",
]
