"""The HTTP side of the receiver: ``POST /v1/traces`` answered as the OTLP/HTTP spec asks.

- 200 with an ``ExportTraceServiceResponse`` (protobuf or JSON, as the request came); spans that cannot be
  read or are not GenAI spans are counted in ``partial_success.rejected_spans`` with an ``error_message``;
- 400 (undecodable body), 413 (body over the cap, before or after gzip), 415 (content type or encoding),
  401 (missing or wrong bearer token), each with a ``google.rpc.Status`` body; none of them is retried;
- 503 with ``Retry-After`` when the tenant's SDK queue (or, while Kafka is away, its spool) cannot take the
  batch: back-pressure the exporter retries, instead of events dropped behind its back.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from agentaudit.logs import get_logger
from agentaudit.producers._genai import record_span
from agentaudit.producers.client import AuditClient
from agentaudit.producers.otlp_receiver._decode import JSON, PROTOBUF, decode_request, media_type, unzip
from agentaudit.producers.otlp_receiver._tokens import TenantTokens
from agentaudit.producers.otlp_receiver.exceptions import OtlpPayloadError
from agentaudit.producers.otlp_receiver.settings import OtlpSettings

__all__ = ["TRACES_PATH", "build_app"]

_log = get_logger("agentaudit.otlp")

TRACES_PATH = "/v1/traces"
_LOOPBACK = frozenset(("127.0.0.1", "::1", "localhost"))
_CODES = {400: 3, 401: 16, 413: 8, 415: 3, 503: 14}  # google.rpc.Code of each answer


def _status(kind: str, http: int, message: str, headers: dict[str, str] | None = None) -> Response:
    if kind == PROTOBUF:
        body = Status(code=_CODES.get(http, 2), message=message).SerializeToString()
    else:
        body = json.dumps({"code": _CODES.get(http, 2), "message": message}).encode()
        kind = JSON
    return Response(body, status_code=http, media_type=kind, headers=headers)


def _accepted(kind: str, rejected: int, message: str) -> Response:
    answer = ExportTraceServiceResponse()
    if rejected or message:
        answer.partial_success.rejected_spans = rejected
        answer.partial_success.error_message = message
    if kind == PROTOBUF:
        return Response(answer.SerializeToString(), media_type=PROTOBUF)
    body = {"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": message}} if rejected or message else {}
    return Response(json.dumps(body).encode(), media_type=JSON)


def build_app(settings: OtlpSettings, tokens: TenantTokens, clients: Callable[[str], AuditClient]) -> Starlette:
    """The receiver's ASGI app. ``clients(tenant)`` gives the SDK client events of that tenant go through."""
    cap = settings.max_body_bytes

    def record(body: bytes, kind: str, tenant: str) -> Response:
        decoded = decode_request(body, kind, default_agent=settings.agent)
        client = clients(tenant)
        spans = sorted(decoded.spans, key=lambda s: (s.end_ns, s.start_ns))
        if spans and not client.has_room(2 * len(spans)):
            return _status(kind, 503, "the receiver's queue is full (Kafka slow or away and the spool full); retry",
                           {"Retry-After": str(settings.retry_after_s)})
        skipped = 0
        for span in spans:
            if not record_span(client, span, include_all=settings.include_all):
                skipped += 1
        messages = list(decoded.errors)
        if skipped:
            messages.append(f"{skipped} span(s) without gen_ai.operation.name not recorded (the receiver records "
                            "GenAI spans; AGENTAUDIT_OTLP_INCLUDE_ALL=true records every span)")
        return _accepted(kind, decoded.rejected + skipped, "; ".join(messages))

    async def traces(request: Request) -> Response:
        kind = JSON
        try:
            kind = media_type(request.headers.get("content-type"))
            host = request.client.host if request.client else ""
            if tokens.dev_mode and host not in _LOOPBACK:
                return _status(kind, 401, "this receiver runs without tokens (dev mode) and takes loopback only")
            tenant = tokens.tenant_of(request.headers.get("authorization"))
            if tenant is None:
                return _status(kind, 401, "missing or unknown bearer token (Authorization: Bearer <token>)",
                               {"WWW-Authenticate": 'Bearer realm="agentaudit-otlp"'})
            length = request.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > cap):
                raise OtlpPayloadError(413, f"the body is over {cap} bytes; send smaller batches")
            chunks: list[bytes] = []
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > cap:
                    raise OtlpPayloadError(413, f"the body is over {cap} bytes; send smaller batches")
                chunks.append(chunk)
            body = unzip(b"".join(chunks), request.headers.get("content-encoding"), cap)
            return await run_in_threadpool(record, body, kind, tenant)
        except OtlpPayloadError as exc:
            return _status(kind, exc.status, exc.message)
        except ClientDisconnect:
            return Response(status_code=400)
        except Exception as exc:  # noqa: BLE001 - one bad request must never take the receiver down
            _log.exception("otlp.request_failed")
            return _status(kind, 500, f"the receiver failed on this request ({type(exc).__name__})")

    return Starlette(routes=[Route(TRACES_PATH, traces, methods=["POST"])])
