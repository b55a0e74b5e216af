"""The OpenAI Agents SDK (the real ``openai-agents`` package) runs a tool-calling agent against the fake
OpenAI endpoint; :class:`AuditTracingProcessor` records its spans through the SDK on the real broker, and
the actions read back are the run's causal tree with the model's reported tokens."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    RunResult,
    Tool,
    function_tool,
    set_trace_processors,
)
from openai import AsyncOpenAI

from agentaudit.producers.integrations.openai_agents import AuditTracingProcessor
from agentaudit.settings import KafkaSettings
from tests.fixtures.fake_openai import FakeOpenAI, Reply, ToolCall
from tests.framework_support import ancestors, assert_one_tree, broker_client, stored_actions

pytestmark = [pytest.mark.integration, pytest.mark.broker]


@function_tool
def lookup_order(order_id: int) -> str:
    """Look an order up by its id."""
    return json.dumps({"order_id": order_id, "status": "shipped"})


@pytest.fixture
def agents_sdk(fake_openai: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The fake endpoint; the Agents SDK's process-wide trace processors are reset afterwards."""
    yield fake_openai
    set_trace_processors([])


def run_agent(fake: FakeOpenAI, api: str, prompt: str, tools: list[Tool], **agent: Any) -> RunResult:
    """Run an agent on the fake endpoint through ``api``, with a client made and closed in the run's loop."""
    async def run() -> RunResult:
        async with AsyncOpenAI(base_url=fake.base_url, api_key="sk-fake") as client:
            model_type = OpenAIResponsesModel if api == "responses" else OpenAIChatCompletionsModel
            model = model_type(model="gpt-4o-mini", openai_client=client)
            return await Runner.run(Agent(model=model, tools=tools, **agent), prompt)
    return asyncio.run(run())


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
def test_an_agent_run_is_recorded_as_its_span_tree_with_tokens(
        api: str, agents_sdk: FakeOpenAI, kafka_settings: KafkaSettings, topic_factory: Callable[..., str],
        tmp_path: Path) -> None:
    agents_sdk.script[:] = [Reply(tool_calls=[ToolCall("lookup_order", {"order_id": 42})], input_tokens=131,
                                  output_tokens=17),
                            Reply(text="Order 42 has shipped.", input_tokens=164, output_tokens=9)]
    audit = broker_client(kafka_settings, topic_factory, tmp_path)
    set_trace_processors([AuditTracingProcessor(audit)])  # no OpenAI exporter: nothing leaves loopback
    result = run_agent(agents_sdk, api, "Where is order 42?", [lookup_order], name="support",
                       instructions="Answer order questions.")
    assert result.final_output == "Order 42 has shipped."
    assert [s.path for s in agents_sdk.served] == [api.split("_", maxsplit=1)[0]] * 2

    actions = stored_actions(audit)
    root = assert_one_tree(actions)
    # task (the workflow) -> invoke_agent -> one turn per model call -> chat and the tools it asked for
    assert (root["kind"], root["name"], root["depth"]) == ("other", "task Agent workflow", 0)
    assert root["action_id"].startswith(root["trace_id"])
    (agent_action,) = [a for a in actions if a["kind"] == "invoke_agent"]
    assert (agent_action["name"], agent_action["agent_id"], agent_action["parent_action_id"],
            agent_action["depth"]) == ("support", "support", root["action_id"], 1)
    turns = [a for a in actions if a["name"].startswith("turn ")]
    assert [t["name"] for t in turns] == ["turn 1", "turn 2"]
    assert all(t["parent_action_id"] == agent_action["action_id"] and t["depth"] == 2 for t in turns)
    chats = [a for a in actions if a["kind"] == "chat"]
    tools = [a for a in actions if a["kind"] == "execute_tool"]
    assert [(c["input_tokens"], c["output_tokens"]) for c in chats] == [(131, 17), (164, 9)]
    assert all(c["model"] == "gpt-4o-mini" and c["name"] == "gpt-4o-mini" for c in chats)
    assert [(t["name"], t["status"], t["agent_id"]) for t in tools] == [("lookup_order", "ok", "support")]
    # the tool ran under the agent, between the two model calls; its arguments are a digest, not text
    assert tools[0]["parent_action_id"] == chats[0]["parent_action_id"] == turns[0]["action_id"]
    assert chats[1]["parent_action_id"] == turns[1]["action_id"] and tools[0]["depth"] == 3
    assert chats[0]["end_time_us"] <= tools[0]["start_time_us"] <= tools[0]["end_time_us"] <= chats[1]["start_time_us"]
    assert tools[0].start["input_digest"] and "42" not in json.dumps(tools[0].start["attributes"] or {})
    assert all(agent_action in ancestors(actions, a) for a in chats + tools + turns)
    assert sum(a["input_tokens"] for a in actions) == 131 + 164  # run/turn totals are not counted twice
    assert all(a["cost_usd"] == 0 for a in actions)  # the Agents SDK reports no cost


def test_a_failing_tool_is_an_error_action_and_the_run_goes_on(
        agents_sdk: FakeOpenAI, kafka_settings: KafkaSettings, topic_factory: Callable[..., str],
        tmp_path: Path) -> None:
    @function_tool
    def refund(order_id: int) -> str:
        """Refund an order."""
        raise PermissionError("refunds need approval")

    agents_sdk.script[:] = [Reply(tool_calls=[ToolCall("refund", {"order_id": 7})], input_tokens=50, output_tokens=5),
                            Reply(text="I could not refund it.", input_tokens=70, output_tokens=6)]
    audit = broker_client(kafka_settings, topic_factory, tmp_path)
    set_trace_processors([AuditTracingProcessor(audit)])
    result = run_agent(agents_sdk, "chat_completions", "Refund order 7", [refund], name="billing")
    assert result.final_output == "I could not refund it."
    actions = stored_actions(audit)
    assert_one_tree(actions)
    (tool,) = [a for a in actions if a["kind"] == "execute_tool"]
    assert (tool["name"], tool["status"], tool["agent_id"]) == ("refund", "error", "billing")
    assert tool["error_message"]


def test_a_handoff_is_recorded_between_the_two_agents_runs(
        agents_sdk: FakeOpenAI, kafka_settings: KafkaSettings, topic_factory: Callable[..., str],
        tmp_path: Path) -> None:
    agents_sdk.script[:] = [Reply(tool_calls=[ToolCall("transfer_to_billing", {})], input_tokens=60, output_tokens=4),
                            Reply(text="Billing here: refund issued.", input_tokens=75, output_tokens=8)]
    audit = broker_client(kafka_settings, topic_factory, tmp_path)
    set_trace_processors([AuditTracingProcessor(audit)])

    async def run() -> RunResult:
        async with AsyncOpenAI(base_url=agents_sdk.base_url, api_key="sk-fake") as client:
            model = OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client)
            billing = Agent(name="billing", model=model, handoff_description="Refunds and invoices.")
            return await Runner.run(Agent(name="triage", model=model, handoffs=[billing]), "Refund order 7")
    result = asyncio.run(run())
    assert result.final_output == "Billing here: refund issued." and result.last_agent.name == "billing"
    actions = stored_actions(audit)
    root = assert_one_tree(actions)
    agents = {a["name"]: a for a in actions if a["kind"] == "invoke_agent"}
    assert set(agents) == {"triage", "billing"}
    assert all(a["parent_action_id"] == root["action_id"] for a in agents.values())
    (handoff,) = [a for a in actions if a["name"].startswith("handoff ")]
    assert handoff["name"] == "handoff triage -> billing" and handoff["agent_id"] == "triage"
    assert agents["triage"]["end_time_us"] <= agents["billing"]["start_time_us"]
    chats = sorted((a for a in actions if a["kind"] == "chat"), key=lambda a: a["start_time_us"])
    assert [(c["agent_id"], c["input_tokens"]) for c in chats] == [("triage", 60), ("billing", 75)]


def test_a_streamed_run_records_the_same_tree_and_the_streamed_usage(
        agents_sdk: FakeOpenAI, kafka_settings: KafkaSettings, topic_factory: Callable[..., str],
        tmp_path: Path) -> None:
    agents_sdk.script[:] = [Reply(tool_calls=[ToolCall("lookup_order", {"order_id": 42})], input_tokens=131,
                                  output_tokens=17),
                            Reply(text="Order 42 has shipped.", input_tokens=164, output_tokens=9)]
    audit = broker_client(kafka_settings, topic_factory, tmp_path)
    set_trace_processors([AuditTracingProcessor(audit)])

    async def run() -> str:
        async with AsyncOpenAI(base_url=agents_sdk.base_url, api_key="sk-fake") as client:
            model = OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client)
            # the SDK asks for streamed usage by itself only from api.openai.com
            agent = Agent(name="support", model=model, tools=[lookup_order],
                          model_settings=ModelSettings(include_usage=True))
            streamed = Runner.run_streamed(agent, "order 42?")
            deltas = [e async for e in streamed.stream_events() if e.type == "raw_response_event"]
            assert len(deltas) > 4  # it did stream
            return str(streamed.final_output)
    assert asyncio.run(run()) == "Order 42 has shipped."
    assert all(s.request.get("stream") for s in agents_sdk.served)
    actions = stored_actions(audit)
    assert_one_tree(actions)
    chats = [a for a in actions if a["kind"] == "chat"]
    assert [(c["input_tokens"], c["output_tokens"]) for c in chats] == [(131, 17), (164, 9)]
    assert [a["name"] for a in actions if a["kind"] == "execute_tool"] == ["lookup_order"]
