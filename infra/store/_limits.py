"""The store's limits: what one request may cost, each with a safe default and an env variable."""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["StoreLimits"]

_MiB = 1 << 20


def _reader_threads() -> int:
    # Leave at least one core to the inserts and to every other reader.
    return max(1, (os.cpu_count() or 2) // 2)


class StoreLimits(BaseSettings):
    """Limits of ``agentaudit store`` (env prefix ``AGENTAUDIT_STORE_``).

    The engine enforces the query limits (``max_execution_time``, ``max_memory_usage``,
    ``max_result_bytes``, ``max_threads``) as ClickHouse settings; a read-only session cannot
    raise them (``readonly = 1`` refuses every change). Read-write sessions may raise their own.

    :param max_execution_time: seconds a query may run, default 30 (``..._MAX_EXECUTION_TIME``).
    :param max_memory_usage: bytes of memory one query may use, default 2 GiB.
    :param max_result_bytes: bytes of result one query may return, default 256 MiB.
    :param reader_max_threads: threads one read-only query may use, default half the cores.
    :param max_body_bytes: request body bytes, as sent and as decompressed, default 128 MiB;
        checked from ``Content-Length`` before the body is read.
    :param max_query_bytes: bytes of statement text (not insert data), default 1 MiB.
    :param max_concurrent_reads: queries (not inserts) running at once, default 4.
    :param max_queued_reads: queries waiting for a slot before new ones are refused (503), default 16.
    :param read_queue_timeout: seconds a query waits for a slot, default 10.
    :param max_concurrent_writes: inserts and other writes running at once (their own lane), default 4.

    >>> StoreLimits(max_execution_time=5).max_execution_time
    5.0
    """

    model_config = SettingsConfigDict(env_prefix="AGENTAUDIT_STORE_", frozen=True, extra="ignore")

    max_execution_time: float = Field(default=30.0, gt=0)
    max_memory_usage: int = Field(default=2 << 30, gt=0)
    max_result_bytes: int = Field(default=256 * _MiB, gt=0)
    reader_max_threads: int = Field(default_factory=_reader_threads, gt=0)
    max_body_bytes: int = Field(default=128 * _MiB, gt=0)
    max_query_bytes: int = Field(default=1 * _MiB, gt=0)
    max_concurrent_reads: int = Field(default=4, gt=0)
    max_queued_reads: int = Field(default=16, ge=0)
    read_queue_timeout: float = Field(default=10.0, gt=0)
    max_concurrent_writes: int = Field(default=4, gt=0)

    def engine_settings(self, readonly: bool) -> dict[str, str]:
        """The ClickHouse settings that hold these limits on a request's connection."""
        settings = {
            "max_execution_time": f"{self.max_execution_time:g}",
            "max_memory_usage": str(self.max_memory_usage),
            "max_result_bytes": str(self.max_result_bytes),
            "result_overflow_mode": "throw",
            "timeout_overflow_mode": "throw",
        }
        if readonly:
            settings["max_threads"] = str(self.reader_max_threads)
        return settings
