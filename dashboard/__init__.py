"""The dashboard: what is on fire, who owns it, which chain of actions led there, what to do next.

A Streamlit app (``app.py``, started by ``agentaudit dashboard``) over a read-only ClickHouse
session (:mod:`agentaudit.dashboard.queries`); its only writes are lifecycle events published to
Kafka (:class:`LifecyclePublisher`) and control commands, kill and clear (:class:`ControlDesk`), all
under the signed-in operator's name (no anonymous actor: :mod:`~agentaudit.dashboard.credentials`).
"""

# One import path: this folder is the package agentaudit.dashboard (setup.py maps it); importing it as
# `dashboard` from the repository root would load every module twice, with two of each class.
if __name__ != "agentaudit.dashboard":
    raise ImportError(f"import agentaudit.dashboard, not {__name__}: the dashboard/ folder is the agentaudit.dashboard package")

from agentaudit.dashboard.auth import Credential, SessionTokens, SignInThrottle, User, sign_in
from agentaudit.dashboard.chain import ActionNode, TraceTree, to_dot, waterfall_rows
from agentaudit.dashboard.control import ControlDesk
from agentaudit.dashboard.credentials import add_user, ensure_first_operator, read_users, remove_user, set_password
from agentaudit.dashboard.exceptions import AuthError, DashboardError, PublishError
from agentaudit.dashboard.launch import APP_PATH, dashboard_command
from agentaudit.dashboard.lifecycle import LifecyclePublisher
from agentaudit.dashboard.queries import IncidentFilter
from agentaudit.dashboard.settings import DashboardSettings
from agentaudit.dashboard.timeline import TimelineRow, is_wide, timeline

__all__ = [
    "APP_PATH",
    "ActionNode",
    "AuthError",
    "ControlDesk",
    "Credential",
    "DashboardError",
    "DashboardSettings",
    "IncidentFilter",
    "LifecyclePublisher",
    "PublishError",
    "SessionTokens",
    "SignInThrottle",
    "TimelineRow",
    "TraceTree",
    "User",
    "add_user",
    "dashboard_command",
    "ensure_first_operator",
    "is_wide",
    "read_users",
    "remove_user",
    "set_password",
    "sign_in",
    "timeline",
    "to_dot",
    "waterfall_rows",
]
