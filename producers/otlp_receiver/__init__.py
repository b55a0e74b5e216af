"""``agentaudit otlp``: an OTLP/HTTP receiver (``POST /v1/traces``, protobuf or JSON, gzip) that turns GenAI
spans from any language's OpenTelemetry SDK into action events through the SDK path, one tenant per bearer
token. The span mapping is the one the in-process :class:`~agentaudit.producers.otel.AuditSpanProcessor` and
``agentaudit import otlp`` use (:mod:`agentaudit.producers._genai`).

>>> receiver = OtlpReceiver(OtlpSettings(tokens_file=Path("otlp-tokens.yaml"))).start()
>>> receiver.url
'http://127.0.0.1:4318/v1/traces'
"""

from agentaudit.producers.otlp_receiver.app import TRACES_PATH, build_app
from agentaudit.producers.otlp_receiver.exceptions import OtlpConfigError, OtlpPayloadError
from agentaudit.producers.otlp_receiver.server import OtlpReceiver
from agentaudit.producers.otlp_receiver.settings import OtlpSettings

__all__ = ["TRACES_PATH", "OtlpConfigError", "OtlpPayloadError", "OtlpReceiver", "OtlpSettings", "build_app"]
