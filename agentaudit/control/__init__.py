"""The control plane: commands that slow, stop or require approval of agents, and who may issue them.

Shared by both sides: the SDK obeys it (:class:`ControlListener`, the inline :class:`Guard`,
approvals), the consumers publish what enforce-mode rules decide, and people issue commands
through :class:`ControlIssuer` (CLI and dashboard). It imports the rule engine and the contract,
never the producers, consumers or dashboard.
"""

from agentaudit.control._blocked import ActionBlocked
from agentaudit.control.admission import ControlAdmission, Refusal, check_lifecycle
from agentaudit.control.approvals import Approval, args_hash
from agentaudit.control.authority import Authority, AuthorityError, sign_headers
from agentaudit.control.guard import Guard, RuleModeLookup
from agentaudit.control.issuer import ControlIssuer
from agentaudit.control.listener import LISTENER_DEFAULTS, ControlListener
from agentaudit.control.settings import AuthoritySettings
from agentaudit.control.topic import CONTROL_TOPIC_CONFIG, ensure_control_topic, read_control_state

__all__ = [
    "CONTROL_TOPIC_CONFIG",
    "LISTENER_DEFAULTS",
    "ActionBlocked",
    "Approval",
    "Authority",
    "AuthorityError",
    "AuthoritySettings",
    "ControlAdmission",
    "ControlIssuer",
    "ControlListener",
    "Guard",
    "Refusal",
    "RuleModeLookup",
    "args_hash",
    "check_lifecycle",
    "ensure_control_topic",
    "read_control_state",
    "sign_headers",
]
