"""Attack: make a framework integration raise into the agent, or lose the record of what it did.

The integrations run inside the agent's process, in hooks the frameworks call on every step; whoever
controls a prompt, a tool's arguments or a tool's result controls what those hooks see. The claim: a
hook never raises (whatever the payload, whether the client is closed or the broker is away), the agent
run completes with its own result, and with the broker away the actions are still sealed in the spool.
The hooks are also called directly, since both frameworks would swallow a raising callback themselves
and so hide a broken hook from an end-to-end run."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_trace_processors
from agents.tracing import custom_span, function_span, generation_span, trace
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from openai import AsyncOpenAI

from agentaudit.producers import AuditClient
from agentaudit.producers.integrations._common import MAX_OPEN
from agentaudit.producers.integrations.langchain import AuditCallbackHandler
from agentaudit.producers.integrations.openai_agents import AuditTracingProcessor
from tests.fixtures.fake_openai import FakeOpenAI
from tests.sdk_support import offline_client, records_of


class Hostile:
    """A third-party object whose every text form and attribute raises."""

    def __str__(self) -> str:
        raise RuntimeError("str")

    def __repr__(self) -> str:
        raise RuntimeError("repr")

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"getattr {name}")

    def model_dump(self, **kwargs: Any) -> Any:
        raise RuntimeError("model_dump")


class HostileError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str of an error")


def _loop() -> dict[str, Any]:
    looped: dict[str, Any] = {"a": [1, 2]}
    looped["self"] = looped  # a self-referencing payload
    return looped


HOSTILE_VALUES: list[Any] = [Hostile(), _loop(), "x" * (5 << 20), b"\xff\xfe", {Hostile(): Hostile()},
                             float("nan"), object(), [Hostile()] * 1000, {"nested": [[[[[[[[[[[[[1]]]]]]]]]]]]]}]


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


def test_langchain_hooks_take_hostile_values_and_still_record(spool: Path) -> None:
    client = offline_client(spool)
    handler = AuditCallbackHandler(client, agent="victim")
    root, tool_run, chat_run = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for value in HOSTILE_VALUES:
        # every hook, every hostile value, in every argument the framework fills from agent data
        handler.on_chain_start(value, value, run_id=root, parent_run_id=None, tags=value, metadata=value, name=value)
        handler.on_chat_model_start(value, value, run_id=chat_run, parent_run_id=root, metadata=value,
                                    invocation_params=value)
        handler.on_llm_end(value, run_id=chat_run)
        handler.on_tool_start(value, value, run_id=tool_run, parent_run_id=root, inputs=value, name="lookup")
        handler.on_tool_error(HostileError(), run_id=tool_run)
        handler.on_llm_start(value, value, run_id=uuid.uuid4(), parent_run_id=value)
        handler.on_retriever_end(value, run_id=uuid.uuid4())  # an end without a start
        handler.on_chain_error(value, run_id=value)  # not even an error, nor a UUID
        handler.on_chain_end(value, run_id=root)
    client.close(5)
    records = records_of(spool)
    ends = [r for r in records if r["phase"] == "end"]
    tools = [r for r in ends if r["kind"] == "execute_tool"]
    assert len(tools) == len(HOSTILE_VALUES)
    assert all(t["name"] == "lookup" and t["status"] == "error" and t["error_type"] == "HostileError" for t in tools)
    assert sum(r["kind"] == "invoke_agent" for r in ends) == len(HOSTILE_VALUES)
    assert all(r["agent_id"] == "victim" for r in ends)
    assert all(len(r["attributes"] or {}) <= 40 for r in records)


def test_the_agents_sdk_processor_takes_hostile_spans_and_still_records(spool: Path) -> None:
    client = offline_client(spool)
    processor = AuditTracingProcessor(client)
    set_trace_processors([processor])
    try:
        for value in HOSTILE_VALUES:
            with trace(workflow_name="hostile"), custom_span(name="step", data={"payload": value}):
                with generation_span(input=[{"content": value}], output=value, model="gpt-4o-mini",
                                     usage={"input_tokens": value, "output_tokens": 3}):
                    pass
                with function_span(name="lookup", input=value, output=value):
                    pass
        # spans that are not what the SDK makes: odd ids, unreadable times, span data whose attributes raise
        odd = SimpleNamespace(trace_id=Hostile(), span_id=None, parent_id=12, span_data=Hostile(),
                              started_at="yesterday", ended_at=Hostile(), error={"message": Hostile()})
        processor.on_trace_start(Hostile())  # type: ignore[arg-type]  # hostile input
        processor.on_span_start(odd)  # type: ignore[arg-type]  # hostile input
        processor.on_span_end(odd)  # type: ignore[arg-type]  # hostile input
        processor.on_span_end(Hostile())  # type: ignore[arg-type]  # hostile input
        processor.on_trace_end(Hostile())  # type: ignore[arg-type]  # hostile input
    finally:
        set_trace_processors([])
    client.close(5)
    ends = [r for r in records_of(spool) if r["phase"] == "end"]
    tools = [r for r in ends if r["kind"] == "execute_tool"]
    chats = [r for r in ends if r["kind"] == "chat"]
    assert [t["name"] for t in tools] == ["lookup"] * len(HOSTILE_VALUES)
    assert len(chats) == len(HOSTILE_VALUES) and all(c["output_tokens"] == 3 for c in chats)
    ids = {r["action_id"] for r in ends}
    assert all(r["parent_action_id"] in ids for r in tools + chats)  # the tree holds despite the payloads


def test_runs_that_never_end_cannot_grow_a_hook_without_bound(spool: Path) -> None:
    client = offline_client(spool)
    handler = AuditCallbackHandler(client)
    processor = AuditTracingProcessor(client)
    for i in range(MAX_OPEN + 500):  # an agent whose runs start and never end (crashes, cancelled tasks)
        handler.on_tool_start({"name": "t"}, "{}", run_id=uuid.uuid4(), parent_run_id=None)
        processor.on_trace_start(SimpleNamespace(trace_id=f"trace_{i:032x}", name="w"))  # type: ignore[arg-type]  # hostile input
        processor.on_span_start(SimpleNamespace(trace_id=f"trace_{i:032x}", span_id=f"span_{i:024x}",  # type: ignore[arg-type]  # hostile input
                                                parent_id=None, span_data=SimpleNamespace(type="custom")))
    assert len(handler._open) == len(processor._open) == len(processor._workflows) == MAX_OPEN
    client.close(1)


def _agents_run(fake: FakeOpenAI, client: AuditClient) -> str:
    @function_tool
    def lookup_order(order_id: int) -> str:
        """Look an order up."""
        return "shipped"

    async def run() -> str:
        async with AsyncOpenAI(base_url=fake.base_url, api_key="sk-fake") as openai:
            model = OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=openai)
            result = await Runner.run(Agent(name="support", model=model, tools=[lookup_order]), "order 42?")
            return str(result.final_output)
    set_trace_processors([AuditTracingProcessor(client)])
    try:
        return asyncio.run(run())
    finally:
        set_trace_processors([])


def _langchain_run(fake: FakeOpenAI, client: AuditClient) -> str:
    @tool
    def lookup_order(order_id: int) -> str:
        """Look an order up."""
        return "shipped"

    handler = AuditCallbackHandler(client, agent="support")
    model = ChatOpenAI(model="gpt-4o-mini", base_url=fake.base_url, api_key="sk-fake").bind_tools([lookup_order])
    messages: list[Any] = [HumanMessage("order 42?")]
    messages.append(model.invoke(messages, config={"callbacks": [handler]}))
    messages.append(lookup_order.invoke(messages[-1].tool_calls[0], config={"callbacks": [handler]}))
    return str(model.invoke(messages, config={"callbacks": [handler]}).content)


@pytest.mark.parametrize("framework", ["openai_agents", "langchain"])
@pytest.mark.parametrize("trouble", ["client_closed", "broker_down"])
def test_an_agent_run_completes_whatever_happens_to_the_pipeline(
        framework: str, trouble: str, fake_openai: FakeOpenAI, spool: Path) -> None:
    client = offline_client(spool)
    if trouble == "client_closed":
        client.close(1)
    run = _agents_run if framework == "openai_agents" else _langchain_run
    # the fake model calls the tool once, then answers
    assert run(fake_openai, client) == "Done."
    assert len(fake_openai.served) == 2
    client.close(5)
    names = {r["name"] for r in records_of(spool) if r["phase"] == "end"} if spool.exists() else set()
    if trouble == "broker_down":  # sealed and kept for delivery
        assert {"lookup_order", "gpt-4o-mini"} <= names, names
    else:
        assert "lookup_order" not in names
