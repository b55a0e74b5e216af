"""The agent workload the end-to-end and peer benchmarks share, recorded two ways from one description.

A run is one ``invoke_agent`` step with two ``chat`` calls (model and tokens) and five ``execute_tool`` calls
(JSON arguments) under it: eight agent steps. :func:`record_sdk` records each step as one agentaudit action
(a start and an end event); :func:`record_otel` records each as one OpenTelemetry GenAI span, so both sides
carry the same tree, kinds, names, models, tokens and arguments.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

RUN_STEPS = 8
AGENT = "bench-bot"
MODEL = "gpt-4o"
TOOL = "orders.get"
#: OpenInference's span kinds, so that Phoenix shows the spans as an agent, LLM calls and tools
_SPAN_KIND = {"invoke_agent": "AGENT", "chat": "LLM", "execute_tool": "TOOL"}


@dataclass(frozen=True, slots=True)
class Step:
    """One agent step: what the SDK records as an action and OpenTelemetry as a span."""

    kind: str
    name: str
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    arguments: str | None = None  # a tool call's arguments, as the model wrote them (JSON)


@dataclass(frozen=True, slots=True)
class Run:
    """An agent run: the ``invoke_agent`` step and the steps under it."""

    agent: Step
    children: tuple[Step, ...]


def agent_runs(steps: int) -> list[Run]:
    """``steps`` agent steps (rounded up to whole runs of :data:`RUN_STEPS`), the same for every seed."""
    runs = []
    for run in range(-(-steps // RUN_STEPS)):
        chats = tuple(Step("chat", MODEL, model=MODEL, input_tokens=812 + turn, output_tokens=95)
                      for turn in range(2))
        tools = tuple(Step("execute_tool", TOOL, arguments=json.dumps({"order": run * 10 + tool, "fields": ["status"]}))
                      for tool in range(5))
        runs.append(Run(Step("invoke_agent", AGENT), chats + tools))
    return runs


def record_sdk(audit: Any, runs: Iterable[Run]) -> int:
    """Record ``runs`` through an :class:`~agentaudit.producers.AuditClient`; returns the steps recorded."""
    steps = 0
    for run in runs:
        with audit.action(run.agent.kind, name=run.agent.name):
            for step in run.children:
                with audit.action(step.kind, name=step.name, input=step.arguments, model=step.model) as act:
                    if step.input_tokens or step.output_tokens:
                        act.set_cost(input_tokens=step.input_tokens, output_tokens=step.output_tokens)
            steps += 1 + len(run.children)
    return steps


def span_attributes(step: Step) -> dict[str, str | int]:
    """The GenAI semantic-convention attributes of ``step``'s span (plus OpenInference's span kind)."""
    attributes: dict[str, str | int] = {"gen_ai.operation.name": step.kind,
                                        "openinference.span.kind": _SPAN_KIND[step.kind]}
    if step.kind == "invoke_agent":
        attributes["gen_ai.agent.name"] = step.name
    if step.model is not None:
        attributes["gen_ai.request.model"] = step.model
    if step.input_tokens or step.output_tokens:
        attributes["gen_ai.usage.input_tokens"] = step.input_tokens
        attributes["gen_ai.usage.output_tokens"] = step.output_tokens
    if step.kind == "execute_tool":
        attributes["gen_ai.tool.name"] = step.name
    if step.arguments is not None:
        attributes["gen_ai.tool.call.arguments"] = step.arguments
    return attributes


def record_otel(tracer: Any, runs: Iterable[Run]) -> int:
    """Record ``runs`` as nested spans through an OpenTelemetry tracer; returns the spans recorded."""
    spans = 0
    for run in runs:
        with tracer.start_as_current_span(f"{run.agent.kind} {run.agent.name}",
                                          attributes=span_attributes(run.agent)):
            for step in run.children:
                with tracer.start_as_current_span(f"{step.kind} {step.name}", attributes=span_attributes(step)):
                    pass
            spans += 1 + len(run.children)
    return spans
