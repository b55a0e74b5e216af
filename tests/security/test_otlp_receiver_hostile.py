"""The OTLP receiver under hostile senders: no token or a wrong one is 401; a token of tenant acme writes
acme whatever the payload claims, and two tenants sending the same trace and span ids each keep their own;
garbage protobuf, deep JSON, huge and gzip-bomb bodies get their 4xx; a full spool answers a retryable 503
before the SDK drops anything; and after each the receiver still serves the next good request. The broker is
away (a closed port): events wait in each tenant's real SDK spool, read back here."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentaudit.producers.otlp_receiver import OtlpConfigError, OtlpReceiver, OtlpSettings
from agentaudit.producers.settings import SdkSettings
from agentaudit.settings import KafkaSettings
from tests.otlp_support import TOKENS, receiver
from tests.sdk_support import free_port, spooled

PB = {"content-type": "application/x-protobuf"}


def _spans(count: int = 3, tenant_claim: str = "globex") -> bytes:
    """``count`` execute_tool spans under one invoke_agent, as the Python exporter encodes them."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bot", "agentaudit.tenant": tenant_claim}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("invoke_agent bot", attributes={"gen_ai.operation.name": "invoke_agent",
                                                                       "gen_ai.agent.name": "bot"}):
        for i in range(count - 1):
            with tracer.start_as_current_span("tool", attributes={"gen_ai.operation.name": "execute_tool",
                                                                  "gen_ai.tool.name": f"tool.{i}"}):
                pass
    provider.shutdown()
    return encode_spans(memory.get_finished_spans()).SerializeToString()


def _auth(tenant: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TOKENS[tenant]}"}


@pytest.fixture
def offline(tmp_path: Path) -> Any:
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    otlp = receiver(tmp_path, kafka, max_body_bytes=1 << 20, sdk={"spill_after_ms": 20})
    try:
        yield otlp
    finally:
        otlp.stop(3)  # nothing can be delivered: a short close, and every tenant's spool is saved and closed


def _accepted(otlp: OtlpReceiver) -> None:
    """The receiver is still up and takes a good request."""
    answer = httpx.post(otlp.url, content=_spans(), headers={**PB, **_auth("acme")})
    assert answer.status_code == 200, answer.text


def test_a_missing_or_wrong_token_is_refused_with_401(offline: OtlpReceiver) -> None:
    body = _spans()
    for headers in ({}, {"authorization": "Bearer not-a-token"}, {"authorization": f"Basic {TOKENS['acme']}"},
                    {"authorization": "Bearer"}, {"authorization": TOKENS["acme"]}):
        answer = httpx.post(offline.url, content=body, headers={**PB, **headers})
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.headers["www-authenticate"].startswith("Bearer")
    assert not offline.clients._clients  # nothing was recorded for anyone
    _accepted(offline)


def test_a_token_writes_its_own_tenant_whatever_the_payload_claims_and_ids_collide_harmlessly(
        offline: OtlpReceiver, tmp_path: Path) -> None:
    body = _spans(3, tenant_claim="globex")  # both send the same bytes: the same trace and span ids
    for tenant in ("acme", "globex"):
        answer = httpx.post(offline.url, content=body, headers={**PB, **_auth(tenant)})
        assert answer.status_code == 200, answer.text
        assert ExportTraceServiceResponse.FromString(answer.content).partial_success.rejected_spans == 0
    clients = dict(offline.clients._clients)
    offline.stop(3)
    by_tenant: dict[str, list[tuple[str, str, str]]] = {}
    for tenant, client in clients.items():
        records = [r for r, _ in spooled(Path(client.stats()["spool_dir"]).parent)]
        assert len(records) == 6 and {r["tenant"] for r in records} == {tenant}
        by_tenant[tenant] = sorted((r["trace_id"], r["action_id"], r["phase"]) for r in records)
    # the colliding ids do not merge or overwrite: each tenant keeps its own six events of that trace
    assert by_tenant["acme"] == by_tenant["globex"]


@pytest.mark.parametrize("body, media, status", [
    (b"\x0a\xff\xff\xff\xff\x0f", "application/x-protobuf", 400),  # a length past the end
    (b"\x0a\x05\x0a\x03\x0a\x01", "application/x-protobuf", 400),  # truncated nested messages
    (b"\xde\xad\xbe\xef" * 1000, "application/x-protobuf", 400),
    (b"[" * 200_000, "application/json", 400),  # deep JSON
    (b'{"resourceSpans": {"not": "a list"}}', "application/json", 400),
    (b"\x00\x01 not json", "application/json", 400),
    (b"{}", "text/plain", 415),
    (b"{}", "application/grpc", 415),
])
def test_hostile_bodies_get_their_4xx_and_the_receiver_stays_up(offline: OtlpReceiver, body: bytes, media: str,
                                                                 status: int) -> None:
    answer = httpx.post(offline.url, content=body, headers={"content-type": media, **_auth("acme")})
    assert answer.status_code == status, answer.text
    _accepted(offline)


def test_deeply_nested_protobuf_attributes_are_a_400(offline: OtlpReceiver) -> None:
    # an AnyValue kvlist nested 1000 deep: protobuf's recursion limit refuses it
    value = b""
    for _ in range(1000):
        kv = b"\x0a\x01k" + b"\x12" + _varint(len(value)) + value  # KeyValue{key, value}
        kvlist = b"\x0a" + _varint(len(kv)) + kv  # KeyValueList{values}
        value = b"\x32" + _varint(len(kvlist)) + kvlist  # AnyValue{kvlist_value}
    answer = httpx.post(offline.url, content=_wrap_attribute(value), headers={**PB, **_auth("acme")})
    assert answer.status_code == 400, answer.text
    _accepted(offline)


def _varint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def _wrap_attribute(any_value: bytes) -> bytes:
    """An ExportTraceServiceRequest whose one span has one attribute of ``any_value``."""
    kv = b"\x0a\x01a\x12" + _varint(len(any_value)) + any_value
    span = b"\x0a\x10" + b"\x01" * 16 + b"\x12\x08" + b"\x02" * 8 + b"\x4a" + _varint(len(kv)) + kv
    scope = b"\x12" + _varint(len(span)) + span
    resource = b"\x12" + _varint(len(scope)) + scope
    return b"\x0a" + _varint(len(resource)) + resource


def test_huge_bodies_are_a_413_before_and_after_gzip(offline: OtlpReceiver) -> None:
    cap = offline.settings.max_body_bytes
    big = b"\x00" * (cap + 1)
    answer = httpx.post(offline.url, content=big, headers={**PB, **_auth("acme")})
    assert answer.status_code == 413
    # streamed without a Content-Length (chunked): cut at the cap while reading
    answer = httpx.post(offline.url, content=iter([b"\x00" * 65536] * (cap // 65536 + 2)),
                        headers={**PB, **_auth("acme")})
    assert answer.status_code == 413
    bomb = gzip.compress(b"\x00" * (64 * cap))  # 64 MiB inflated from ~64 KiB
    assert len(bomb) < cap
    answer = httpx.post(offline.url, content=bomb, headers={**PB, **_auth("acme"), "content-encoding": "gzip"})
    assert answer.status_code == 413
    answer = httpx.post(offline.url, content=b"\x1f\x8b garbage", headers={**PB, **_auth("acme"),
                                                                          "content-encoding": "gzip"})
    assert answer.status_code == 400
    answer = httpx.post(offline.url, content=_spans(), headers={**PB, **_auth("acme"), "content-encoding": "br"})
    assert answer.status_code == 415
    _accepted(offline)


def test_spans_it_cannot_map_are_counted_in_partial_success(offline: OtlpReceiver) -> None:
    good = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "chat",
            "startTimeUnixNano": "1764900000000000000", "endTimeUnixNano": "1764900001000000000",
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}]}
    plain = dict(good, spanId="b7ad6b7169203332", attributes=[])  # not a GenAI span
    broken = dict(good, spanId="not-an-id")
    request = {"resourceSpans": [{"scopeSpans": [{"spans": [good, plain, broken]}]}]}
    answer = httpx.post(offline.url, json=request, headers=_auth("acme"))
    assert answer.status_code == 200, answer.text
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"
    assert "spanId" in partial["errorMessage"] and "gen_ai.operation.name" in partial["errorMessage"]


def test_a_full_spool_answers_a_retryable_503_with_retry_after(tmp_path: Path) -> None:
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    sdk = {"spill_after_ms": 20, "spool_max_bytes": 256 * 1024, "spool_segment_bytes": 32 * 1024}
    with receiver(tmp_path, kafka, sdk=sdk) as otlp:
        body = _spans(50)
        answers = [httpx.post(otlp.url, content=body, headers={**PB, **_auth("acme")}) for _ in range(60)]
        codes = [a.status_code for a in answers]
        assert 200 in codes and 503 in codes, codes
        first = codes.index(503)
        assert answers[first].headers["retry-after"] == "2"
        stats = otlp.clients.get("acme").stats()
        print(f"\n[otlp back-pressure] accepted {codes.count(200)} batches of 50 spans, then 503 x "
              f"{codes.count(503)}; spool {stats['spool_bytes']} bytes, dropped {stats['dropped_spool_full']}")
        # refused before the SDK had to drop: every accepted span is in the spool
        assert stats["dropped_spool_full"] == 0 and stats["dropped_queue_full"] == 0, stats


def test_without_tokens_it_runs_loopback_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    with pytest.raises(OtlpConfigError, match="no bearer token"):
        OtlpReceiver(OtlpSettings(host="0.0.0.0", port=0), kafka=kafka, sdk=SdkSettings(spool_dir=tmp_path))
    with OtlpReceiver(OtlpSettings(port=0, tenant="dev"), kafka=kafka, sdk=SdkSettings(spool_dir=tmp_path)).start() \
            as otlp:
        answer = httpx.post(otlp.url, content=_spans(), headers=PB)
        assert answer.status_code == 200
        assert list(otlp.clients._clients) == ["dev"]
    assert "dev_mode" in caplog.text


def test_a_tokens_file_naming_one_token_for_two_tenants_is_refused(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("acme: [shared-token-1234]\nglobex: [shared-token-1234]\n")
    with pytest.raises(OtlpConfigError, match="two tenants"):
        OtlpReceiver(OtlpSettings(port=0, tokens_file=tokens), sdk=SdkSettings(spool_dir=tmp_path))
