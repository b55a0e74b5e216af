"""Settings of the producer SDK, read from ``AGENTAUDIT_*`` variables when not passed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SdkSettings", "default_spool_dir"]


def default_spool_dir() -> Path:
    """``$XDG_CACHE_HOME/agentaudit/spool`` (``~/.cache/agentaudit/spool``): survives a process restart."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agentaudit" / "spool"


class SdkSettings(BaseSettings):
    """How an :class:`~agentaudit.producers.AuditClient` records events.

    :param tenant: ``AGENTAUDIT_TENANT``, default ``default``.
    :param agent_id: ``AGENTAUDIT_AGENT_ID``, the agent when an action names none, default ``agent``.
    :param agent_version: ``AGENTAUDIT_AGENT_VERSION``, default empty.
    :param environment: ``AGENTAUDIT_ENVIRONMENT`` (prod, staging, ...), default empty.
    :param run_id: ``AGENTAUDIT_RUN_ID``, default a new UUID per client.
    :param spool_dir: ``AGENTAUDIT_SPOOL_DIR``, where events wait while the broker is away,
        default :func:`default_spool_dir`. Each client locks one ``slot-N`` below it.
    :param queue_max_events: ``AGENTAUDIT_QUEUE_MAX_EVENTS``, in-memory queue bound, default 10000.
    :param queue_max_bytes: ``AGENTAUDIT_QUEUE_MAX_BYTES``, in-memory queue bound (estimated), default 32 MiB.
    :param spool_max_bytes: ``AGENTAUDIT_SPOOL_MAX_BYTES``, on-disk bound, default 512 MiB.
    :param spool_segment_bytes: ``AGENTAUDIT_SPOOL_SEGMENT_BYTES``, size of one spool file, default 8 MiB.
    :param spool_fsync: ``AGENTAUDIT_SPOOL_FSYNC``: ``batch`` (after each batch written, default),
        ``always`` (after each record) or ``never`` (leave it to the OS; survives a process kill, not a power cut).
    :param full_policy: ``AGENTAUDIT_FULL_POLICY``, what happens when events pile up faster than they
        are delivered (every drop is counted in ``stats()``, logged at most every 10 s, and leaves a
        sequence gap in its stream that the integrity rules report):

        - ``spool`` (default): the in-memory queue hands events to the on-disk spool; when the queue is
          full, an emit waits for room (at most ``block_ms``), so a faster agent runs at the speed the
          SDK seals and spools (tens of thousands of events/s); when the spool is full, new events are
          dropped;
        - ``block``: as ``spool``, but when the spool is full the SDK waits for the broker to make room,
          so the agent runs at the broker's speed (each emit waits at most ``block_ms``);
        - ``drop_oldest``: an emit never waits; a full queue drops its oldest event, a full spool its
          oldest segment.
    :param block_ms: ``AGENTAUDIT_BLOCK_MS``, the most an emit waits for room under ``spool`` and
        ``block``, default 5000; after one such wait times out, emits drop without waiting until
        the SDK's thread makes room again.
    :param spill_after_ms: ``AGENTAUDIT_SPILL_AFTER_MS``: when no delivery was confirmed for this long
        while messages wait, the broker counts as away and new events go to the spool, default 1000.
    :param capture_bodies: ``AGENTAUDIT_CAPTURE_BODIES``: also record redacted, capped input/output
        bodies; default false (digests only).
    :param body_max_bytes: ``AGENTAUDIT_BODY_MAX_BYTES``, cap of one recorded body, default 4096.
    :param digest_key: ``AGENTAUDIT_DIGEST_KEY``: the secret that input, output and approved-argument digests
        are keyed with (HMAC-SHA256, per tenant); give all processes of a tenant the same one. Default none:
        ``digest_key_file``, else a key generated once under the spool directory (``keys/``, mode 0600).
    :param digest_key_file: ``AGENTAUDIT_DIGEST_KEY_FILE``: a file (mode 0600) holding that secret; default none.
    :param signing_key_file: ``AGENTAUDIT_SIGNING_KEY_FILE``: the Ed25519 private key (PEM, mode 0600, made by
        ``agentaudit keys new``; its file stem is the key id) that signs checkpoints over each stream's hash
        chain (:mod:`agentaudit.schemas.checkpoints`); default none: streams are chained, not signed.
    :param checkpoint_events: ``AGENTAUDIT_CHECKPOINT_EVENTS``: a stream signs a checkpoint at least every this
        many events, default 1000.
    :param checkpoint_seconds: ``AGENTAUDIT_CHECKPOINT_SECONDS``: ... and at least this often while it has events
        not yet covered (an idle stream gets a checkpoint event), default 10. Flush and close cover the tail.
        Lower it to attribute a slow agent's events sooner; each checkpoint costs the sink one ~200 us verify,
        and a slow agent's stream gets about one per this many seconds.
    :param control: ``AGENTAUDIT_CONTROL``: obey the control topic (kill, pause, tool blocks, approval
        requirements) when :class:`~agentaudit.producers.AuditClient` is not told ``control=``; default false.
    :param guard_rules: ``AGENTAUDIT_GUARD_RULES``: rule files or directories (comma-separated) judged
        inline before each action when the client is not given ``guard_rules=``; default none.
    """

    model_config = SettingsConfigDict(env_prefix="AGENTAUDIT_", frozen=True, extra="ignore")

    tenant: str = Field(default="default", min_length=1, max_length=256)
    agent_id: str = Field(default="agent", min_length=1, max_length=200)
    agent_version: str = ""
    environment: str = ""
    run_id: str | None = None
    spool_dir: Path | None = None
    queue_max_events: int = Field(default=10_000, gt=0)
    queue_max_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    spool_max_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    spool_segment_bytes: int = Field(default=8 * 1024 * 1024, gt=1024)
    spool_fsync: Literal["always", "batch", "never"] = "batch"
    full_policy: Literal["spool", "block", "drop_oldest"] = "spool"
    block_ms: int = Field(default=5000, ge=0)
    spill_after_ms: int = Field(default=1000, gt=0)
    capture_bodies: bool = False
    body_max_bytes: int = Field(default=4096, gt=0)
    digest_key: SecretStr | None = None
    digest_key_file: Path | None = None
    signing_key_file: Path | None = None
    checkpoint_events: int = Field(default=1000, gt=0)
    checkpoint_seconds: float = Field(default=10.0, gt=0)
    control: bool = False
    guard_rules: str | None = None

    def guard_rule_paths(self) -> list[str] | None:
        """``guard_rules`` as a list of paths; None when there are none."""
        paths = [p.strip() for p in (self.guard_rules or "").split(",") if p.strip()]
        return paths or None
