"""The dead-letter topic: where a message the sink cannot store goes, with why in its headers.

A dead letter keeps the original key and value byte for byte, plus headers naming the
reason (``DecodeError.reason`` or another stable code), the error message and the source
topic, partition and offset, so it can be inspected and replayed.

A dead letter never exceeds what the broker accepts (``max_bytes``, the producer's
``message.max.bytes``): a key or value that would not fit is cut, and headers carry the
original size and SHA-256 of what was cut, so the full message can still be found at its
source offset (retention permitting) and checked against the digest.

If the broker still refuses a dead letter after ``max_attempts`` tries, it goes to the local
:class:`Quarantine` file instead (a log line and a metric), and the sink moves on: a poison
message costs at most a bounded delay, never the pipeline.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from agentaudit.consumers._metrics import SinkMetrics
from agentaudit.consumers.exceptions import ConsumerError
from agentaudit.infra.exceptions import KafkaError
from agentaudit.infra.kafka import KafkaProducer
from agentaudit.logs import get_logger

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ERROR_HEADER",
    "ORIGINAL_KEY_SHA256_HEADER",
    "ORIGINAL_KEY_SIZE_HEADER",
    "ORIGINAL_SHA256_HEADER",
    "ORIGINAL_SIZE_HEADER",
    "REASON_HEADER",
    "SOURCE_OFFSET_HEADER",
    "SOURCE_PARTITION_HEADER",
    "SOURCE_TOPIC_HEADER",
    "DeadLetters",
    "Quarantine",
    "dlq_headers",
    "fit",
]

_log = get_logger("agentaudit.consumers.dlq")

REASON_HEADER = "x-agentaudit-reason"
ERROR_HEADER = "x-agentaudit-error"
SOURCE_TOPIC_HEADER = "x-agentaudit-source-topic"
SOURCE_PARTITION_HEADER = "x-agentaudit-source-partition"
SOURCE_OFFSET_HEADER = "x-agentaudit-source-offset"
#: Present only on a cut dead letter: the value's size in bytes before the cut, and its SHA-256 (hex).
ORIGINAL_SIZE_HEADER = "x-agentaudit-original-size"
ORIGINAL_SHA256_HEADER = "x-agentaudit-original-sha256"
#: Present only when the key was cut: its size before the cut (its digest is in ``...-original-key-sha256``).
ORIGINAL_KEY_SIZE_HEADER = "x-agentaudit-original-key-size"
ORIGINAL_KEY_SHA256_HEADER = "x-agentaudit-original-key-sha256"

#: librdkafka's default producer ``message.max.bytes``, under Apache Kafka's default topic limit (1 048 588).
DEFAULT_MAX_BYTES = 1_000_000
_MAX_ERROR_BYTES = 2048
_MAX_KEY_BYTES = 1024  # a key only partitions the dead-letter topic
# Room for what librdkafka adds around key, value and headers (record and batch framing, varints).
_OVERHEAD_BYTES = 1024


def dlq_headers(reason: str, error: str, topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    """The headers of one dead letter."""
    return [
        (REASON_HEADER, reason.encode()),
        (ERROR_HEADER, error.encode("utf-8", "replace")[:_MAX_ERROR_BYTES]),
        (SOURCE_TOPIC_HEADER, topic.encode()),
        (SOURCE_PARTITION_HEADER, str(partition).encode()),
        (SOURCE_OFFSET_HEADER, str(offset).encode()),
    ]


def fit(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]],
        max_bytes: int) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """``key``, ``value`` and ``headers`` cut so that the record stays within ``max_bytes`` on the wire.

    A cut part keeps its head; headers name its original size and SHA-256.
    """
    headers = list(headers)
    if key is not None and len(key) > _MAX_KEY_BYTES:
        headers += [(ORIGINAL_KEY_SIZE_HEADER, str(len(key)).encode()),
                    (ORIGINAL_KEY_SHA256_HEADER, hashlib.sha256(key).hexdigest().encode())]
        key = key[:_MAX_KEY_BYTES]
    if value is None:
        return key, value, headers
    used = _OVERHEAD_BYTES + len(key or b"") + sum(len(k) + len(v) for k, v in headers)
    if used + len(value) <= max_bytes:
        return key, value, headers
    headers += [(ORIGINAL_SIZE_HEADER, str(len(value)).encode()),
                (ORIGINAL_SHA256_HEADER, hashlib.sha256(value).hexdigest().encode())]
    room = max_bytes - used - sum(len(k) + len(v) for k, v in headers[-2:])
    return key, value[:max(room, 0)], headers


@dataclass(slots=True)
class _Letter:
    """One dead letter, kept until acknowledged so a refused one can be tried again or quarantined.

    ``key``, ``value`` and ``headers`` are what was last sent (cut to fit); ``raw_*`` the message as
    consumed (references, not copies), so a retry after a size refusal can cut it shorter.
    """

    raw_key: bytes | None
    raw_value: bytes | None
    raw_headers: list[tuple[str, bytes]]
    reason: str
    source: str  # topic:partition:offset, for logs
    key: bytes | None = None
    value: bytes | None = None
    headers: list[tuple[str, bytes]] | None = None
    attempts: int = 0


class Quarantine:
    """A local JSON-lines file for dead letters the broker refused: bounded, rotated once.

    Each line holds the dead letter's headers, key and (already cut) value in base64, the
    delivery error and the time. When the file reaches half of ``max_bytes`` it becomes
    ``<path>.1`` (replacing the previous one), so both together stay under ``max_bytes``.

    :param path: the file (``AGENTAUDIT_SINK_QUARANTINE_PATH``, default ``quarantine.jsonl``).
    :param max_bytes: bound of the file and its one rotation (``AGENTAUDIT_SINK_QUARANTINE_MAX_BYTES``,
        default 256 MiB).
    """

    def __init__(self, path: str | Path, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def write(self, letter: _Letter, error: str) -> bool:
        """Append one entry; False (logged) when it could not be written or is larger than the bound."""
        entry = {
            "at_ms": int(time.time() * 1000), "reason": letter.reason, "source": letter.source,
            "delivery_error": error[:_MAX_ERROR_BYTES],
            "headers": {k: v.decode("utf-8", "replace") for k, v in letter.headers or ()},
            "key_b64": base64.b64encode(letter.key).decode() if letter.key is not None else None,
            "value_b64": base64.b64encode(letter.value).decode() if letter.value is not None else None,
        }
        line = json.dumps(entry, separators=(",", ":")).encode() + b"\n"
        half = self.max_bytes // 2
        if len(line) > half:
            _log.error("sink.quarantine_skipped", source=letter.source, bytes=len(line), bound=self.max_bytes,
                       hint="entry larger than half the bound; raise AGENTAUDIT_SINK_QUARANTINE_MAX_BYTES")
            return False
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                size = self.path.stat().st_size if self.path.exists() else 0
                if size + len(line) > half:
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
            except OSError as exc:
                _log.error("sink.quarantine_failed", path=self.path, source=letter.source, error=exc,
                           hint="the dead letter is lost; check the directory's permissions and free space")
                return False
        return True


class DeadLetters:
    """Sends dead letters and confirms them before the sink commits past them.

    Other messages a batch produces (incidents) register with :meth:`track` and
    :meth:`delivered` so one :meth:`confirm` covers everything the batch sent.

    :param producer: the sink's producer.
    :param topic: dead-letter topic (``AGENTAUDIT_TOPIC_DLQ``).
    :param max_bytes: the largest record the broker accepts, default :data:`DEFAULT_MAX_BYTES`
        (``AGENTAUDIT_SINK_DLQ_MAX_BYTES``).
    :param max_attempts: tries before a refused dead letter is quarantined, default 3
        (``AGENTAUDIT_SINK_DLQ_MAX_ATTEMPTS``).
    :param quarantine: where refused dead letters go; default ``quarantine.jsonl`` in the working directory.
    :param metrics: counts cut and quarantined dead letters; default none.
    """

    def __init__(self, producer: KafkaProducer, topic: str, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_attempts: int = 3, quarantine: Quarantine | None = None,
                 metrics: SinkMetrics | None = None) -> None:
        self._producer = producer
        self.topic = topic
        self.max_bytes = max_bytes
        self.max_attempts = max(max_attempts, 1)
        self.quarantine = quarantine if quarantine is not None else Quarantine("quarantine.jsonl")
        self._metrics = metrics
        self._failed: list[KafkaError] = []
        self._refused: list[tuple[_Letter, KafkaError]] = []
        self._pending = 0

    def send(self, key: bytes | None, value: bytes | None, *, reason: str, error: str,
             topic: str, partition: int, offset: int) -> None:
        """Queue one dead letter, cut to fit; :meth:`confirm` waits for it."""
        headers = dlq_headers(reason, error, topic, partition, offset)
        letter = _Letter(key, value, headers, reason, f"{topic}:{partition}:{offset}")
        self.track()
        self._produce(letter, self.max_bytes)
        if len(letter.headers or ()) > len(headers) and self._metrics is not None:
            self._metrics.dlq_cut.inc()

    def _produce(self, letter: _Letter, max_bytes: int) -> None:
        letter.attempts += 1
        letter.key, letter.value, letter.headers = fit(letter.raw_key, letter.raw_value, letter.raw_headers, max_bytes)
        try:
            self._producer.produce(self.topic, letter.value, key=letter.key, headers=letter.headers,
                                   on_delivery=lambda err, _msg: self._letter_delivered(letter, err))
        except KafkaError as exc:
            if exc.retriable:  # the local queue stayed full: the broker is slow or down, retry the batch
                raise
            self._refused.append((letter, exc))  # refused before sending (e.g. too large for this producer)

    def _letter_delivered(self, letter: _Letter, error: KafkaError | None) -> None:
        if error is not None:
            self._refused.append((letter, error))

    def track(self) -> None:
        """Count one more message that :meth:`confirm` must see acknowledged."""
        self._pending += 1

    def confirm(self, timeout: float = 35.0) -> int:
        """Wait until every queued message is acknowledged; returns how many were.

        A refused dead letter is tried again, up to ``max_attempts`` in all, then quarantined.
        The default ``timeout`` outlasts the producer's ``message.timeout.ms`` (30 s), so each message
        ends delivered or failed: a dead letter the broker never takes (e.g. a missing topic) is
        quarantined after ``max_attempts`` timeouts, never retried with its batch for ever.

        :raises ConsumerError: another message (an incident) was refused, or messages are still
            unacknowledged: the batch must not be committed.
        """
        sent = self._pending
        if not sent:
            return 0
        remaining = self._producer.flush(timeout)
        while not remaining and self._refused:
            retry, self._refused = self._refused, []
            for letter, error in retry:
                if letter.attempts >= self.max_attempts:
                    self._quarantine(letter, error)
                else:
                    _log.warning("sink.dead_letter_refused", source=letter.source, attempt=letter.attempts,
                                 max_attempts=self.max_attempts, error=error)
                    # Refused for its size (the broker's or topic's limit is lower): a quarter as large each time.
                    too_large = "TOO_LARGE" in (error.code or "")
                    self._produce(letter, self.max_bytes >> 2 * letter.attempts if too_large else self.max_bytes)
            remaining = self._producer.flush(timeout)
        failed = self._failed
        self.reset()  # what is still queued (remaining) the retried batch sends again
        if remaining or failed:
            detail = str(failed[0]) if failed else f"{remaining} still queued after {timeout}s"
            raise ConsumerError(f"messages of the batch (dead letters to {self.topic!r}, incidents) not acknowledged "
                                f"({detail}); the batch will be retried")
        return sent

    def reset(self) -> None:
        """Forget the batch's messages (the sink calls this before retrying a batch)."""
        self._failed, self._refused, self._pending = [], [], 0

    def _quarantine(self, letter: _Letter, error: KafkaError) -> None:
        # The dead letter as first cut (retries after a size refusal cut it shorter).
        letter.key, letter.value, letter.headers = fit(letter.raw_key, letter.raw_value, letter.raw_headers,
                                                       self.max_bytes)
        written = self.quarantine.write(letter, str(error))
        if self._metrics is not None:
            self._metrics.quarantined.labels(letter.reason).inc()
        _log.error("sink.quarantined", source=letter.source, reason=letter.reason, attempts=letter.attempts,
                   file=self.quarantine.path, written=written, error=error,
                   hint="the broker refused this dead letter; it is in the quarantine file instead")

    def delivered(self, error: KafkaError | None, _message: object) -> None:
        """Delivery callback for tracked messages."""
        if error is not None:
            self._failed.append(error)
