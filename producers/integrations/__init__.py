"""Framework integrations: agent frameworks' own tracing hooks, recorded as agentaudit actions.

One module per framework; each imports its framework only when used, so the base install needs none:

- :mod:`.openai_agents`: :class:`~.openai_agents.AuditTracingProcessor` for the OpenAI Agents SDK
  (``pip install 'agentaudit[integrations]'`` or ``openai-agents``).
- :mod:`.langchain`: :class:`~.langchain.AuditCallbackHandler` for LangChain and LangGraph
  (``langchain-core``).
- The OpenTelemetry OpenAI instrumentation (``opentelemetry-instrumentation-openai-v2``) needs no module
  here: its spans follow the GenAI conventions, so :class:`agentaudit.producers.otel.AuditSpanProcessor`
  (or ``agentaudit otlp``) records them.

Every integration describes what the framework reports as a :class:`~agentaudit.producers._genai.SpanRecord`
and records it with the one GenAI mapping the OTel paths use, so a tool call is the same action whichever
way it arrives. A hook never raises into the agent: trouble is logged and counted by the client.
"""

from __future__ import annotations

import typing
from typing import Any

if typing.TYPE_CHECKING:
    from agentaudit.producers.integrations.langchain import AuditCallbackHandler
    from agentaudit.producers.integrations.openai_agents import AuditTracingProcessor

__all__ = ["AuditCallbackHandler", "AuditTracingProcessor"]


def __getattr__(name: str) -> Any:
    # lazy: importing the package must not import a framework
    if name == "AuditTracingProcessor":
        from agentaudit.producers.integrations.openai_agents import AuditTracingProcessor
        return AuditTracingProcessor
    if name == "AuditCallbackHandler":
        from agentaudit.producers.integrations.langchain import AuditCallbackHandler
        return AuditCallbackHandler
    raise AttributeError(name)
