"""LangChain and LangGraph (the real ``langchain-core``, ``langchain-openai`` and ``langgraph`` packages)
run a tool-calling agent against the fake OpenAI endpoint; :class:`AuditCallbackHandler` records the runs
through the SDK on the real broker, and the actions read back are the run tree with the model's tokens. One
run goes on through the real sink into the chDB store, where the rule pack judges its code-executing tool."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from agentaudit.producers import AuditClient
from agentaudit.producers.integrations.langchain import AuditCallbackHandler
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.fixtures.fake_openai import FakeOpenAI, Reply, ToolCall
from tests.framework_support import ancestors, assert_one_tree, broker_client, stored_actions
from tests.otlp_support import actions as stored_rows
from tests.otlp_support import incidents, store_and_judge

pytestmark = [pytest.mark.integration, pytest.mark.broker]


@tool
def lookup_order(order_id: int) -> str:
    """Look an order up by its id."""
    return json.dumps({"order_id": order_id, "status": "shipped"})


@tool
def refund(order_id: int) -> str:
    """Refund an order."""
    raise PermissionError("refunds need approval")


def react_graph(model: ChatOpenAI, tools: list) -> object:
    """The ReAct loop as a LangGraph graph: the model node, a ToolNode, and the stock tools_condition."""
    bound = model.bind_tools(tools)
    graph = StateGraph(MessagesState)

    async def agent(state: MessagesState) -> dict:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    def agent_sync(state: MessagesState) -> dict:
        return {"messages": [bound.invoke(state["messages"])]}

    graph.add_node("agent", RunnableLambda(agent_sync, afunc=agent, name="agent"))
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile()


@pytest.mark.parametrize("mode", ["sync", "async", "streamed"])
def test_a_langgraph_agent_is_recorded_as_its_run_tree_with_tokens(
        mode: str, fake_openai: FakeOpenAI, kafka_settings: KafkaSettings, topic_factory: Callable[..., str],
        tmp_path: Path) -> None:
    fake_openai.script[:] = [Reply(tool_calls=[ToolCall("lookup_order", {"order_id": 42})], input_tokens=97,
                                   output_tokens=14),
                             Reply(text="Order 42 has shipped.", input_tokens=121, output_tokens=8)]
    audit = broker_client(kafka_settings, topic_factory, tmp_path)
    model = ChatOpenAI(model="gpt-4o-mini", base_url=fake_openai.base_url, api_key="sk-fake",
                       streaming=mode == "streamed", stream_usage=True)
    graph = react_graph(model, [lookup_order])
    inputs = {"messages": [HumanMessage("Where is order 42?")]}
    config = {"callbacks": [AuditCallbackHandler(audit, agent="support")]}
    state = graph.invoke(inputs, config=config) if mode == "sync" else asyncio.run(graph.ainvoke(inputs, config=config))
    assert state["messages"][-1].content == "Order 42 has shipped."
    assert isinstance(state["messages"][2], ToolMessage) and len(fake_openai.served) == 2
    assert all(bool(s.request.get("stream")) == (mode == "streamed") for s in fake_openai.served)

    actions = stored_actions(audit)
    root = assert_one_tree(actions)
    assert (root["kind"], root["name"], root["agent_id"], root["depth"]) == ("invoke_agent", "support", "support", 0)
    chats = [a for a in actions if a["kind"] == "chat"]
    tools = [a for a in actions if a["kind"] == "execute_tool"]
    assert [(c["name"], c["model"], c["input_tokens"], c["output_tokens"]) for c in chats] == [
        ("gpt-4o-mini", "gpt-4o-mini", 97, 14), ("gpt-4o-mini", "gpt-4o-mini", 121, 8)]
    assert [(t["name"], t["status"]) for t in tools] == [("lookup_order", "ok")]
    assert all(a["agent_id"] == "support" for a in actions)
    # graph nodes are the inner runs: each chat sits under an 'agent' node, the tool under the 'tools' node
    by_id = {a["action_id"]: a for a in actions}
    assert [by_id[c["parent_action_id"]]["name"] for c in chats] == ["agent", "agent"]
    assert by_id[tools[0]["parent_action_id"]]["name"] == "tools"
    assert all(root in ancestors(actions, a) for a in chats + tools)
    assert all(a["depth"] == len(ancestors(actions, a)) for a in actions)
    assert chats[0]["end_time_us"] <= tools[0]["start_time_us"] <= tools[0]["end_time_us"] <= chats[1]["start_time_us"]
    assert tools[0].start["input_digest"] and tools[0]["output_digest"]
    assert sum(a["input_tokens"] for a in actions) == 97 + 121 and all(a["cost_usd"] == 0 for a in actions)


def test_a_plain_tool_calling_loop_records_a_failing_tool_as_an_error(
        fake_openai: FakeOpenAI, kafka_settings: KafkaSettings, topic_factory: Callable[..., str],
        tmp_path: Path) -> None:
    fake_openai.script[:] = [Reply(tool_calls=[ToolCall("refund", {"order_id": 7})], input_tokens=40, output_tokens=6)]
    audit = broker_client(kafka_settings, topic_factory, tmp_path)
    handler = AuditCallbackHandler(audit)
    model = ChatOpenAI(model="gpt-4o-mini", base_url=fake_openai.base_url, api_key="sk-fake").bind_tools([refund])
    reply = model.invoke([HumanMessage("Refund order 7")], config={"callbacks": [handler]})
    assert isinstance(reply, AIMessage) and reply.tool_calls[0]["name"] == "refund"
    with pytest.raises(PermissionError):
        refund.invoke(reply.tool_calls[0]["args"], config={"callbacks": [handler]})
    actions = stored_actions(audit)
    chat, failed = actions
    # each top-level call is its own root; a model called alone is its own agent run's chat
    assert (chat["kind"], chat["input_tokens"], chat["output_tokens"], chat["agent_id"]) == ("chat", 40, 6, "app")
    assert (failed["kind"], failed["name"], failed["status"], failed["error_type"]) == (
        "execute_tool", "refund", "error", "PermissionError")
    assert failed["error_message"] == "refunds need approval" and failed["agent_id"] == "app"


def test_a_langgraph_agent_calling_a_code_executing_tool_is_stored_and_judged(
        fake_openai: FakeOpenAI, kafka_settings_factory: Callable[..., KafkaSettings],
        store_settings_factory: Callable[[], StoreSettings], store_factory: Callable[..., Any],
        group_factory: Callable[..., str], tmp_path: Path) -> None:
    @tool
    def shell_exec(cmd: str) -> str:
        """Run a shell command."""
        return "ok"

    fake_openai.script[:] = [Reply(tool_calls=[ToolCall("shell_exec", {"cmd": "cat /etc/passwd"})], input_tokens=30,
                                   output_tokens=9)]  # then the fake answers "Done."
    kafka = kafka_settings_factory(partitions=1)
    audit = AuditClient(kafka=kafka, tenant="acme", agent="ops-bot", spool_dir=tmp_path / "spool")
    graph = react_graph(ChatOpenAI(model="gpt-4o-mini", base_url=fake_openai.base_url, api_key="sk-fake"),
                        [shell_exec])
    graph.invoke({"messages": [HumanMessage("check the users")]}, config={"callbacks": [AuditCallbackHandler(audit)]})
    audit.close(30)
    events = audit.stats()["delivered"]
    store = store_settings_factory()
    client = store_factory(store)
    store_and_judge(kafka, store, client, group_factory(), events)
    stored = [a for a in stored_rows(client) if a.phase == "end"]
    assert len(stored) == events // 2
    (tool_action,) = [a for a in stored if a.kind == "execute_tool"]
    assert (tool_action.name, tool_action.agent_id, tool_action.depth) == ("shell_exec", "ops-bot", 2)
    assert "cat /etc/passwd" not in str(tool_action.attributes) and tool_action.input_digest
    found = [(i.rule_id, i.agent_id, i.trace_id) for i in incidents(client)]
    assert ("security.dangerous-tool-pattern", "ops-bot", tool_action.trace_id) in found, found
