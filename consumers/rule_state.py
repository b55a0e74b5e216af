"""Durable rule state for ``agentaudit consume``: open windows survive a crash or restart.

:class:`DurableEvaluator` wraps the evaluator and writes one atomic snapshot file per batch (the
rule revision, the applied offset per partition, the evaluator state, the last incidents), so a
restart drops records already applied and rule state is applied exactly once whatever the sink
had committed. The design, its costs and its limits: ``docs/rule-state.md``.

:class:`PartitionEvaluators` keeps one evaluator per partition instead, snapshotted per partition in a
:class:`PartitionStateStore` at every checkpoint (:mod:`~agentaudit.consumers.checkpoint`) and on revoke, and
restored on assign by whichever consumer of the group gets the partition: its open windows follow it
across a rebalance.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentaudit.consumers.exceptions import ConsumerError
from agentaudit.rules.engine import BaseEvaluator
from agentaudit.schemas import Incident

__all__ = ["DurableEvaluator", "EvaluatorFactory", "PartitionEvaluators", "PartitionStateStore", "SavedState"]

_log = logging.getLogger("agentaudit.consumers.rule_state")

_FORMAT = 1
_KEEP_CALLS = 2  # incidents of this many recent calls are repeated after a restore


class DurableEvaluator(BaseEvaluator):
    """A :class:`BaseEvaluator` decorator that snapshots the wrapped evaluator after every call.

    :param inner: the evaluator that judges (a rule evaluator, or a ``ReloadingEvaluator``).
    :param state_dir: directory of the snapshot file; created if missing.
    :param name: file stem, one per consumer process (e.g. the consumer group).
    """

    def __init__(self, inner: BaseEvaluator, state_dir: Path | str, *, name: str) -> None:
        self.inner = inner
        self.state_dir = Path(state_dir)
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConsumerError(f"rule state directory {self.state_dir} cannot be created: {exc}; "
                                "fix --state-dir / AGENTAUDIT_SINK_STATE_DIR") from exc
        self.path = self.state_dir / f"{_safe(name)}.state"
        self._lock = self._acquire(self.state_dir / f"{_safe(name)}.lock")
        self.applied: dict[tuple[str, int], int] = {}
        self._recent: list[dict[str, Incident]] = []  # incidents of the last calls, newest last
        self._replay: list[Incident] = []  # restored incidents, returned by the first call
        self.restored = False
        self.dropped = 0  # records skipped as already applied (tests, logs)
        self.snapshots = 0
        self.snapshot_s = 0.0  # total time spent writing snapshots
        self._load()

    # -- BaseEvaluator -----------------------------------------------------------------------

    @property  # type: ignore[override]
    def revision(self) -> str:
        return self.inner.revision

    def evaluate(self, records: Sequence[dict[str, Any]]) -> list[Incident]:
        fresh = self._unapplied(records)
        incidents = self.inner.evaluate(fresh) if fresh else []
        for record in fresh:
            key = (record.get("_topic", ""), record["_partition"])
            nxt = record["_offset"] + 1
            if nxt > self.applied.get(key, -1):
                self.applied[key] = nxt
        return self._after(incidents)

    def on_watermark(self, watermark_us: int) -> list[Incident]:
        # The rule engine derives its watermark from its own (snapshotted) state, and evaluate()
        # already advanced it: a call that decides nothing is redone after a restore, so only a
        # call that returns incidents costs a snapshot (the sink calls this after every batch).
        incidents = self.inner.on_watermark(watermark_us)
        if not incidents and not self._replay:
            return incidents
        return self._after(incidents)

    def on_quiet(self, quiet_us: dict[str, int], others_us: int | None = None) -> list[Incident]:
        # Like on_watermark: a call that decides nothing is redone after a restore (the sink keeps quiet times).
        incidents = self.inner.on_quiet(quiet_us, others_us)
        if not incidents and not self._replay:
            return incidents
        return self._after(incidents)

    def snapshot(self) -> bytes:
        return self.inner.snapshot()

    def restore(self, data: bytes) -> None:
        self.inner.restore(data)

    def flush(self) -> list[Incident]:
        """Close every window of the wrapped evaluator (end of a replay), then snapshot."""
        return self._after(self.inner.flush())  # type: ignore[attr-defined]

    def close(self) -> None:
        """Release the state file for another process, and close the wrapped evaluator if it can be."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def __getattr__(self, name: str) -> Any:  # rule_set, watermark_us, ... of the wrapped evaluator
        if name in ("inner", "_lock"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _acquire(path: Path) -> Any:
        # Two processes on one file would overwrite each other's state: the second one refuses.
        # The OS drops the lock when its holder dies (kill -9 included).
        fh = open(path, "a+b")  # noqa: SIM115 - held open for the evaluator's lifetime
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            fh.close()
            raise ConsumerError(f"rule state {path.with_suffix('.state')} is in use by another consumer: {exc}; "
                                "give each consumer process its own --state-dir (or group)") from exc
        return fh

    def _unapplied(self, records: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
        applied = self.applied
        if not applied:
            return records
        fresh = [r for r in records if r["_offset"] >= applied.get((r.get("_topic", ""), r["_partition"]), -1)]
        if len(fresh) != len(records):
            self.dropped += len(records) - len(fresh)
            _log.info("rule_state.skipped_applied records=%d file=%s", len(records) - len(fresh), self.path)
        return fresh if len(fresh) != len(records) else records

    def _after(self, incidents: list[Incident]) -> list[Incident]:
        if self._replay:
            replay, self._replay = self._replay, []
            new = {i.incident_id for i in incidents}
            incidents = [i for i in replay if i.incident_id not in new] + incidents
        self._recent.append({i.incident_id: i for i in incidents})
        del self._recent[:-_KEEP_CALLS]
        self._write()
        return incidents

    def _write(self) -> None:
        started = time.perf_counter()
        state = self.inner.snapshot()
        pending: dict[str, Incident] = {}
        for call in self._recent:
            for incident_id, incident in call.items():
                old = pending.get(incident_id)
                if old is None or incident.count >= old.count:
                    pending[incident_id] = incident
        header = {
            "format": _FORMAT, "revision": self.inner.revision,
            "applied": [[t, p, o] for (t, p), o in sorted(self.applied.items())],
            "state_sha256": hashlib.sha256(state).hexdigest(), "state_len": len(state),
            "pending": [i.model_dump(mode="json") for i in pending.values()],
        }
        head = json.dumps(header, separators=(",", ":")).encode() + b"\n"
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(head)
                fh.write(state)  # not joined to the header first: that would copy megabytes per batch
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.state_dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            # The batch is not committed: the sink retries it, and the re-delivered records are
            # judged again only if this snapshot never landed.
            raise ConsumerError(f"rule state snapshot {self.path} could not be written: {exc}; "
                                "check the disk and --state-dir") from exc
        self.snapshots += 1
        self.snapshot_s += time.perf_counter() - started

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ConsumerError(f"rule state snapshot {self.path} cannot be read: {exc}") from exc
        try:
            head, _, state = data.partition(b"\n")
            header = json.loads(head)
            if header.get("format") != _FORMAT:
                raise ValueError(f"unknown format {header.get('format')!r}")
            if len(state) != header["state_len"] or hashlib.sha256(state).hexdigest() != header["state_sha256"]:
                raise ValueError("state checksum mismatch (torn or corrupt file)")
            applied = {(str(t), int(p)): int(o) for t, p, o in header["applied"]}
            pending = [Incident.model_validate(i) for i in header["pending"]]
        except (ValueError, KeyError, TypeError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            _log.error("rule_state.corrupt file=%s moved_to=%s error=%s: starting with empty rule state "
                       "(windows open before the crash are lost)", self.path, aside, exc)
            return
        if header["revision"] != self.inner.revision:
            _log.warning("rule_state.revision_changed file=%s snapshot=%s current=%s: starting fresh state",
                         self.path, header["revision"], self.inner.revision)
            return
        self.inner.restore(state)
        self.applied = applied
        self._replay = pending
        self.restored = True
        _log.info("rule_state.restored file=%s revision=%s partitions=%d pending_incidents=%d bytes=%d",
                  self.path, header["revision"], len(applied), len(pending), len(state))


def _safe(name: str) -> str:
    """A file stem from a group name: path separators and odd characters become ``_``."""
    out = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")
    return out or base64.urlsafe_b64encode(name.encode()).decode().rstrip("=") or "consumer"


#: Makes a fresh evaluator for one partition (same rules, empty state).
EvaluatorFactory = Callable[[], BaseEvaluator]


@dataclass(slots=True, frozen=True)
class SavedState:
    """One partition's rule state as of ``offset`` (the next offset to read: records before it were applied)."""

    offset: int
    revision: str
    state: bytes


class PartitionStateStore:
    """Rule state snapshots, one file per group, topic and partition, written atomically (fsync, rename, fsync).

    Put it on storage every consumer of the group can reach: the consumer that gets a partition
    after a rebalance restores what the previous owner saved. A corrupt or torn file is moved aside
    (``.corrupt-<epoch>``) and the partition starts fresh: derived state must not stop ingestion.

    :param path: the directory; created if missing.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConsumerError(f"rule state directory {self.path} cannot be created: {exc}; "
                                "fix --state-dir / AGENTAUDIT_SINK_STATE_DIR") from exc

    def file(self, group: str, topic: str, partition: int) -> Path:
        return self.path / _safe(group) / f"{_safe(topic)}-{partition}.state"

    def load(self, group: str, topic: str, partition: int) -> SavedState | None:
        path = self.file(group, topic, partition)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConsumerError(f"rule state snapshot {path} cannot be read: {exc}") from exc
        try:
            head, _, state = data.partition(b"\n")
            header = json.loads(head)
            if header.get("format") != _FORMAT:
                raise ValueError(f"unknown format {header.get('format')!r}")
            if len(state) != header["state_len"] or hashlib.sha256(state).hexdigest() != header["state_sha256"]:
                raise ValueError("state checksum mismatch (torn or corrupt file)")
            return SavedState(int(header["offset"]), str(header["revision"]), state)
        except (ValueError, KeyError, TypeError) as exc:
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            os.replace(path, aside)
            _log.error("rule_state.corrupt file=%s moved_to=%s error=%s: the partition starts with empty rule state",
                       path, aside, exc)
            return None

    def save(self, group: str, topic: str, partition: int, saved: SavedState) -> None:
        path = self.file(group, topic, partition)
        header = {"format": _FORMAT, "revision": saved.revision, "offset": saved.offset,
                  "state_sha256": hashlib.sha256(saved.state).hexdigest(), "state_len": len(saved.state)}
        _write_atomically(path, json.dumps(header, separators=(",", ":")).encode() + b"\n", saved.state)


class PartitionEvaluators:
    """One evaluator per assigned partition; its state follows the partition across rebalances.

    :param factory: makes a fresh evaluator (same rules, empty state) for a partition.
    :param store: where each partition's state is saved (:class:`PartitionStateStore`).
    :param group: the consumer group (state of different groups never mixes).

    :meth:`assign` restores a partition's evaluator from its snapshot (when the revision matches) and returns
    the snapshot's offset; records before it were already applied and must not be judged again.
    :meth:`snapshot` saves the evaluators of the given partitions as of the offsets about to be committed
    (the checkpoint calls it between flush and commit); :meth:`revoke` drops a partition, whose last
    checkpoint's snapshot is what the next owner resumes.
    """

    def __init__(self, factory: EvaluatorFactory, store: PartitionStateStore, group: str) -> None:
        self.factory = factory
        self.store = store
        self.group = group
        self._evaluators: dict[tuple[str, int], BaseEvaluator] = {}
        self._offsets: dict[tuple[str, int], int] = {}  # next offset each evaluator's state has applied up to
        self.restored = 0  # partitions restored from a snapshot (tests, logs)

    def assign(self, topic: str, partition: int) -> int | None:
        """Make the partition's evaluator, restored from its snapshot; the snapshot's offset, or None."""
        key = (topic, partition)
        self._close(self._evaluators.pop(key, None))
        evaluator = self._evaluators[key] = self.factory()
        saved = self.store.load(self.group, topic, partition)
        if saved is None:
            self._offsets.pop(key, None)
            return None
        if saved.revision != evaluator.revision:
            _log.warning("rule_state.revision_changed topic=%s partition=%d snapshot=%s current=%s: fresh state",
                         topic, partition, saved.revision, evaluator.revision)
            self._offsets.pop(key, None)
            return None
        evaluator.restore(saved.state)
        self._offsets[key] = saved.offset
        self.restored += 1
        _log.info("rule_state.restored topic=%s partition=%d offset=%d bytes=%d", topic, partition, saved.offset,
                  len(saved.state))
        return saved.offset

    def revoke(self, topic: str, partition: int) -> None:
        """Drop the partition's evaluator. Its state was saved at the last checkpoint, which is the state the
        next owner must resume: anything judged after it (a batch waiting out a retry) is not committed and
        will be read again by the new owner."""
        key = (topic, partition)
        self._offsets.pop(key, None)
        self._close(self._evaluators.pop(key, None))

    def get(self, topic: str, partition: int) -> BaseEvaluator:
        """The partition's evaluator (a fresh one for a partition assigned without a callback)."""
        key = (topic, partition)
        evaluator = self._evaluators.get(key)
        if evaluator is None:
            evaluator = self._evaluators[key] = self.factory()
        return evaluator

    def __iter__(self) -> Iterator[BaseEvaluator]:
        return iter(list(self._evaluators.values()))

    def snapshot(self, offsets: dict[tuple[str, int], int]) -> None:
        """Save each held partition's state as of ``offsets`` (the checkpoint's snapshot step)."""
        for key, offset in offsets.items():
            evaluator = self._evaluators.get(key)
            if evaluator is None:
                continue
            self.store.save(self.group, key[0], key[1], SavedState(offset, evaluator.revision, evaluator.snapshot()))
            self._offsets[key] = offset

    def close(self) -> None:
        """Close every partition's evaluator (their state is as of the last checkpoint)."""
        for topic, partition in list(self._evaluators):
            self.revoke(topic, partition)

    @staticmethod
    def _close(evaluator: BaseEvaluator | None) -> None:
        close = getattr(evaluator, "close", None)
        if close is not None:
            close()


def _write_atomically(path: Path, head: bytes, body: bytes) -> None:
    """``head`` + ``body`` into ``path`` via a temp file, fsync, rename and an fsync of the directory."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(head)
            fh.write(body)  # not joined to the header first: that would copy megabytes per batch
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise ConsumerError(f"rule state snapshot {path} could not be written: {exc}; "
                            "check the disk and --state-dir") from exc
