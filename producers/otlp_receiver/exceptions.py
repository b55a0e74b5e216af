"""Errors of the OTLP receiver::

    AgentAuditError
    ├── ConfigError
    │   └── OtlpConfigError       bad receiver settings: a tokens file that cannot be read, no token on a
    │                             non-loopback address; raised at start, never per request
    └── ProducerError
        └── OtlpPayloadError      a request body that cannot be read (answered 400, 413 or 415, never raised out)

A request never raises out of the receiver: a payload error becomes the HTTP answer the OTLP spec asks
for, and a span that cannot be mapped is counted in the answer's ``partial_success``.
"""

from __future__ import annotations

from agentaudit.exceptions import ConfigError
from agentaudit.producers.exceptions import ProducerError

__all__ = ["OtlpConfigError", "OtlpPayloadError"]


class OtlpConfigError(ProducerError, ConfigError):
    """A receiver setting is invalid (tokens file, bind address)."""


class OtlpPayloadError(ProducerError):
    """A request body the receiver cannot read.

    :param status: the HTTP status it is answered with (400, 413 or 415). :param message: what is wrong.
    """

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"{status}: {message}")
