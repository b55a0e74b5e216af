"""Recorded runs for the import tests, each in two forms: the file an importer reads, and the same run
sent live through the SDK with its original times. OTLP JSON files are written by the real
opentelemetry-sdk and OTLP encoder (``encode_spans``) with protobuf's JSON mapping, or in the OTLP/JSON
form the Collector's file exporter writes (hex ids, one request per line); nothing is hand-written OTLP."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import MessageToJson
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import Status, StatusCode

MINUTE_US = 60_000_000


def iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat().replace("+00:00", "Z")


def transcript_runs(base_us: int, runs: int = 6) -> list[dict[str, Any]]:
    """Customer-service conversations a few minutes apart: lookups, a forbidden shell call, an unapproved
    refund, a failing tool; message times in ISO 8601 or epoch seconds, as exports carry them."""
    out = []
    for n in range(runs):
        t = base_us + n * 5 * MINUTE_US
        kind = ("clean", "forbidden", "refund", "tool-error")[n % 4]
        order = {"order_id": 1000 + n}
        calls = [("call_a", "orders.get", order)]
        if kind == "forbidden":
            calls.append(("call_b", "shell.exec", {"cmd": "cat /etc/passwd"}))
        elif kind == "refund":
            calls.append(("call_b", "payments.refund", {"order_id": 1000 + n, "amount": 20 + n}))
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You are the support agent.", "timestamp": iso(t)},
            {"role": "user", "content": f"Where is my order {1000 + n}?", "timestamp": iso(t + 1_000_000)},
            {"role": "assistant", "content": None, "timestamp": (t + 2_500_000) / 1e6, "model": "gpt-4o",
             "usage": {"prompt_tokens": 300 + n, "completion_tokens": 20},
             "tool_calls": [{"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(a)}}
                            for cid, name, a in calls]},
        ]
        for i, (cid, name, _) in enumerate(calls):
            result: dict[str, Any] = {"role": "tool", "tool_call_id": cid, "content": f"{name} ok",
                                      "timestamp": iso(t + 3_000_000 + i * 400_000)}
            if kind == "tool-error":
                result.update(content="timeout", error="upstream timeout")
            messages.append(result)
        messages += [{"role": "assistant", "content": "Done: it ships tomorrow.", "timestamp": iso(t + 5_000_000),
                      "model": "gpt-4o"},
                     {"role": "user", "content": "thanks", "timestamp": iso(t + 9_000_000)}]
        out.append({"run_id": f"run-{n}-{kind}", "agent_id": "support-bot", "tenant": "acme",
                    "started_at": iso(t), "messages": messages})
    return out


def _us(value: Any) -> int:
    if isinstance(value, str):
        return round(datetime.fromisoformat(value).timestamp() * 1e6)
    return round(value * 1e6)


def send_transcript_live(audit: Any, run: dict[str, Any]) -> None:
    """The run as a live agent loop instrumented with the SDK records it, at the run's original times."""
    messages = run["messages"]
    times = [_us(m["timestamp"]) for m in messages]
    results = {m["tool_call_id"]: (m, at) for m, at in zip(messages, times, strict=False) if m["role"] == "tool"}
    start = _us(run["started_at"])
    with audit.action("invoke_agent", name=run["agent_id"], agent=run["agent_id"], run_id=run["run_id"],
                      start_time_us=start, end_time_us=max(times)):
        previous = start
        for message, at in zip(messages, times, strict=False):
            if message["role"] in ("system", "user"):
                audit.message(message["role"], content=message["content"], role=message["role"], time_us=at)
            elif message["role"] == "assistant":
                with audit.action("chat", name=message["model"], model=message["model"], start_time_us=previous,
                                  end_time_us=at) as chat:
                    if "usage" in message:
                        chat.set_cost(input_tokens=message["usage"]["prompt_tokens"],
                                      output_tokens=message["usage"]["completion_tokens"])
                    if message["content"] is not None:
                        chat.set_output(message["content"])
                began = at
                for call in message.get("tool_calls", []):  # one call after the other
                    args = json.loads(call["function"]["arguments"])
                    result, done = results[call["id"]]
                    with audit.action("execute_tool", name=call["function"]["name"], input=args, links=[chat],
                                      attributes={"args_hash": audit.args_hash(args), "tool_call_id": call["id"]},
                                      start_time_us=began, end_time_us=done) as tool:
                        if result.get("error"):
                            tool.set_status("error", result["error"])
                        tool.set_output(result["content"])
                    began = done
            previous = at


def otel_runs(provider: TracerProvider, base_us: int, runs: int = 4) -> None:
    """GenAI spans with their original (explicit) times: an agent run per trace with a chat, lookups,
    a forbidden tool, an unapproved refund, a failing tool with its exception event, a link."""
    tracer = provider.get_tracer("recorded-agent")
    for n in range(runs):
        t = (base_us + n * 5 * MINUTE_US) * 1000  # ns
        kind = ("clean", "forbidden", "refund", "tool-error")[n % 4]
        root = tracer.start_span("invoke_agent travel-bot", start_time=t, attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "travel-bot", "run.kind": kind})
        ctx = trace.set_span_in_context(root)
        chat = tracer.start_span("chat gpt-4o", context=ctx, start_time=t + 100_000_000, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 812 + n,
            "gen_ai.usage.output_tokens": 95, "gen_ai.system": "openai", "tags": ("a", "b")})
        chat.end(end_time=t + 900_000_000)
        tools = [("orders.get", "ok")]
        if kind == "forbidden":
            tools.append(("shell.exec", "ok"))
        elif kind == "refund":
            tools.append(("payments.refund", "ok"))
        elif kind == "tool-error":
            tools.append(("book_flight", "error"))
        for i, (name, outcome) in enumerate(tools):
            at = t + 1_000_000_000 + i * 300_000_000
            tool = tracer.start_span(f"execute_tool {name}", context=ctx, start_time=at, links=[
                trace.Link(chat.get_span_context())], attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.call.id": f"c{i}"})
            if outcome == "error":
                tool.record_exception(ConnectionError("airline API down"), timestamp=at + 100_000_000)
                tool.set_status(Status(StatusCode.ERROR, "airline API down"))
            tool.end(end_time=at + 250_000_000)
        http = tracer.start_span("http GET", context=ctx, start_time=t + 2_000_000_000)  # not GenAI: left out
        http.end(end_time=t + 2_100_000_000)
        root.end(end_time=t + 3_000_000_000)


def _hex_ids(value: Any) -> Any:
    """The OTLP/JSON form (the Collector's file exporter): trace and span ids as hex, not base64."""
    if isinstance(value, dict):
        return {k: (base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId") and v else _hex_ids(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_hex_ids(v) for v in value]
    return value


def otlp_json(spans: Sequence[ReadableSpan], *, collector_form: bool = False) -> str:
    """``spans`` as an ExportTraceServiceRequest: protobuf's JSON (pretty, base64 ids) or, with
    ``collector_form``, one request per line with hex ids."""
    request = MessageToJson(encode_spans(spans))
    if not collector_form:
        return request
    half = len(spans) // 2  # two requests, one per line, as a file exporter appends them
    return "\n".join(json.dumps(_hex_ids(json.loads(MessageToJson(encode_spans(part)))))
                     for part in (spans[:half], spans[half:])) + "\n"
