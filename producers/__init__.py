"""The producer SDK: where agent events are born.

>>> from agentaudit.producers import AuditClient
>>> with AuditClient("127.0.0.1:9092", tenant="acme", agent="support-bot") as audit:
...     with audit.action("execute_tool", name="crm.lookup", input={"customer": 42}) as act:
...         act.set_output(lookup(42))

Actions and point events are hash-chained per stream (client instance x agent), produced by a
background thread, and spooled on disk while the broker is away. See the README's SDK section.
"""

# One import path: this folder is the package agentaudit.producers (setup.py maps it); importing it as
# `producers` from the repository root would load every module twice, with two of each class.
if __name__ != "agentaudit.producers":
    raise ImportError(f"import agentaudit.producers, not {__name__}: the producers/ folder is the agentaudit.producers package")

from agentaudit.control import ActionBlocked
from agentaudit.producers._context import ContextExecutor, current_frame, wrap
from agentaudit.producers.client import Action, AuditClient, get_client
from agentaudit.producers.exceptions import ProducerError, SdkConfigError, SpoolError
from agentaudit.producers.redaction import Redactor, redact
from agentaudit.producers.settings import SdkSettings

__all__ = [
    "Action",
    "ActionBlocked",
    "AuditClient",
    "ContextExecutor",
    "ProducerError",
    "Redactor",
    "SdkConfigError",
    "SdkSettings",
    "SpoolError",
    "current_frame",
    "get_client",
    "redact",
    "wrap",
]
