"""LangChain and LangGraph: a callback handler that records runs as actions.

>>> graph.invoke(inputs, config={"callbacks": [AuditCallbackHandler(audit, agent="support")]})

Each finished run becomes an action, with ``parent_run_id`` as the parent, so the causal tree is the run
tree, and the outermost run's id as the trace: the outermost run is ``invoke_agent`` (named ``agent``
when given, else by the run), chat models are ``chat`` and completion models ``text_completion`` (model,
and tokens from ``usage_metadata`` or ``llm_output``), tools are ``execute_tool`` (arguments and result
as digests), and inner chains (graph nodes, runnables) and retrievers are ``other`` named by the run.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from agentaudit.producers._capture import type_name
from agentaudit.producers._genai import SpanRecord, record_span
from agentaudit.producers.client import AuditClient
from agentaudit.producers.integrations._common import MAX_OPEN, hook_failed, id_int, now_ns, plain, text

__all__ = ["AuditCallbackHandler"]

_Hook = TypeVar("_Hook", bound=Callable[..., None])


def _guarded(hook: _Hook) -> _Hook:
    """A callback that never raises into the run: any trouble is logged and counted by the client."""
    @functools.wraps(hook)
    def guarded(self: AuditCallbackHandler, *args: Any, **kwargs: Any) -> None:
        try:
            hook(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a callback must never break the agent
            hook_failed(self.client, "langchain_run", exc)
    return cast(_Hook, guarded)  # functools.wraps keeps the hook's signature


@dataclass(slots=True)
class _Run:
    trace_id: int
    parent: int | None
    depth: int
    name: str
    start_ns: int
    attributes: dict[str, Any]


def _run_name(serialized: Any, kwargs: Mapping[str, Any], default: str) -> str:
    name = kwargs.get("name")
    if not name and isinstance(serialized, Mapping):
        name = serialized.get("name") or (serialized.get("id") or [None])[-1]
    return text(name or default, 256)


def _model(kwargs: Mapping[str, Any], metadata: Mapping[str, Any] | None) -> Any:
    params = kwargs.get("invocation_params")
    params = params if isinstance(params, Mapping) else {}
    return params.get("model") or params.get("model_name") or (metadata or {}).get("ls_model_name")


def _usage(response: Any) -> tuple[dict[str, Any], Any]:
    """Tokens and response model of an ``LLMResult``: the messages' ``usage_metadata`` summed, else the
    provider's ``llm_output`` (``token_usage``/``usage``)."""
    tokens = {"gen_ai.usage.input_tokens": 0, "gen_ai.usage.output_tokens": 0}
    found = False
    model = None
    for generations in getattr(response, "generations", None) or ():
        for generation in generations or ():
            message = getattr(generation, "message", None)
            usage = getattr(message, "usage_metadata", None)
            if isinstance(usage, Mapping):
                found = True
                tokens["gen_ai.usage.input_tokens"] += int(usage.get("input_tokens") or 0)
                tokens["gen_ai.usage.output_tokens"] += int(usage.get("output_tokens") or 0)
            meta = getattr(message, "response_metadata", None)
            if isinstance(meta, Mapping):
                model = model or meta.get("model_name") or meta.get("model")
    output = getattr(response, "llm_output", None)
    if isinstance(output, Mapping):
        model = model or output.get("model_name") or output.get("model")
        usage = output.get("token_usage") or output.get("usage")
        if not found and isinstance(usage, Mapping):
            tokens["gen_ai.usage.input_tokens"] = usage.get("prompt_tokens", usage.get("input_tokens", 0))
            tokens["gen_ai.usage.output_tokens"] = usage.get("completion_tokens", usage.get("output_tokens", 0))
    return tokens, model


def _generations(response: Any) -> Any:
    return [[getattr(g, "message", None) or getattr(g, "text", None) for g in gens or ()]
            for gens in getattr(response, "generations", None) or ()]


class AuditCallbackHandler(BaseCallbackHandler):
    """Records LangChain/LangGraph runs (chains, chat and completion models, tools, retrievers) as actions.

    :param client: where the events go.
    :param agent: the agent the run is (its ``invoke_agent`` name and the events' agent), default the
        client's agent.
    """

    raise_error = False  # a failing callback must never fail the run

    def __init__(self, client: AuditClient, *, agent: str | None = None) -> None:
        self.client = client
        self.agent = agent
        self._open: dict[UUID, _Run] = {}
        self._lock = threading.Lock()

    # starts --------------------------------------------------------------------------------------------
    def _start(self, run_id: UUID, parent_run_id: UUID | None, name: str, attributes: dict[str, Any]) -> None:
        with self._lock:
            parent = self._open.get(parent_run_id) if parent_run_id is not None else None
            if parent is None:  # the outermost run we see is the agent
                attributes.setdefault("gen_ai.operation.name", "invoke_agent")
                if self.agent:
                    attributes["gen_ai.agent.name"] = self.agent
                run = _Run(id_int(run_id), None, 0, name, now_ns(), attributes)
            else:
                run = _Run(parent.trace_id, id_int(parent_run_id), parent.depth + 1, name, now_ns(), attributes)
            if len(self._open) >= MAX_OPEN:
                self._open.pop(next(iter(self._open)))
            self._open[run_id] = run

    @_guarded
    def on_chain_start(self, serialized: dict[str, Any], inputs: dict[str, Any], *, run_id: UUID,
                       parent_run_id: UUID | None = None, tags: list[str] | None = None,
                       metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._start(run_id, parent_run_id, _run_name(serialized, kwargs, "chain"),
                    {"langchain.run_type": "chain", "gen_ai.input.messages": plain(inputs)})

    @_guarded
    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[Any]], *, run_id: UUID,
                            parent_run_id: UUID | None = None, tags: list[str] | None = None,
                            metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._start(run_id, parent_run_id, _run_name(serialized, kwargs, "chat_model"),
                    {"gen_ai.operation.name": "chat", "gen_ai.request.model": _model(kwargs, metadata),
                     "gen_ai.input.messages": plain(messages)})

    @_guarded
    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID,
                     parent_run_id: UUID | None = None, tags: list[str] | None = None,
                     metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._start(run_id, parent_run_id, _run_name(serialized, kwargs, "llm"),
                    {"gen_ai.operation.name": "text_completion", "gen_ai.request.model": _model(kwargs, metadata),
                     "gen_ai.prompt": plain(prompts)})

    @_guarded
    def on_tool_start(self, serialized: dict[str, Any], input_str: str, *, run_id: UUID,
                      parent_run_id: UUID | None = None, tags: list[str] | None = None,
                      metadata: dict[str, Any] | None = None, inputs: dict[str, Any] | None = None,
                      **kwargs: Any) -> None:
        name = _run_name(serialized, kwargs, "tool")
        self._start(run_id, parent_run_id, name, {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
            "gen_ai.tool.call.arguments": plain(inputs if inputs is not None else input_str)})

    @_guarded
    def on_retriever_start(self, serialized: dict[str, Any], query: str, *, run_id: UUID,
                           parent_run_id: UUID | None = None, tags: list[str] | None = None,
                           metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._start(run_id, parent_run_id, _run_name(serialized, kwargs, "retriever"),
                    {"langchain.run_type": "retriever", "gen_ai.prompt": plain(query)})

    # ends ----------------------------------------------------------------------------------------------
    def _end(self, run_id: UUID, extra: Mapping[str, Any], error: BaseException | None = None) -> None:
        with self._lock:
            run = self._open.pop(run_id, None)
        if run is None:  # an end without a start we saw: nothing to place in the tree
            return
        attributes = {k: v for k, v in {**run.attributes, **extra}.items() if v is not None}
        if error is not None:
            attributes["error.type"] = type_name(error)
        record = SpanRecord(
            trace_id=run.trace_id, span_id=id_int(run_id), parent_span_id=run.parent, name=run.name,
            attributes=attributes, start_ns=run.start_ns, end_ns=now_ns(), error=error is not None,
            status_message=text(error) if error is not None else None, depth=run.depth, inherited_agent=self.agent)
        record_span(self.client, record, include_all=True)

    @_guarded
    def on_chain_end(self, outputs: dict[str, Any], *, run_id: UUID, parent_run_id: UUID | None = None,
                     **kwargs: Any) -> None:
        self._end(run_id, {"gen_ai.output.messages": plain(outputs)})

    @_guarded
    def on_llm_end(self, response: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        try:
            tokens, model = _usage(response)
            extra = {**tokens, "gen_ai.response.model": model, "gen_ai.output.messages": plain(_generations(response))}
        except Exception as exc:  # noqa: BLE001 - an odd result still ends its run
            hook_failed(self.client, "langchain_usage", exc)
            extra = {}
        self._end(run_id, extra)

    @_guarded
    def on_tool_end(self, output: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self._end(run_id, {"gen_ai.tool.call.result": plain(getattr(output, "content", output))})

    @_guarded
    def on_retriever_end(self, documents: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                         **kwargs: Any) -> None:
        self._end(run_id, {"gen_ai.completion": plain(documents)})

    @_guarded
    def on_chain_error(self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None,
                       **kwargs: Any) -> None:
        self._end(run_id, {}, error)

    @_guarded
    def on_llm_error(self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None,
                     **kwargs: Any) -> None:
        self._end(run_id, {}, error)

    @_guarded
    def on_tool_error(self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None,
                      **kwargs: Any) -> None:
        self._end(run_id, {}, error)

    @_guarded
    def on_retriever_error(self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None,
                           **kwargs: Any) -> None:
        self._end(run_id, {}, error)
