"""Inline rule state per partition, so open windows survive a restart and follow a partition across a rebalance.

:class:`PartitionEvaluators` keeps one evaluator per assigned actions partition. The sink's checkpoint
(:mod:`~agentaudit.consumers.checkpoint`) snapshots each into a :class:`PartitionStateStore` after the
batch's writes are acknowledged and before its offsets are committed; whichever sink of the group gets the
partition next restores it on assign and does not judge again the records it had applied. The design, its
costs and its limits: ``docs/rule-state.md``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from agentaudit.consumers.exceptions import ConsumerError
from agentaudit.logs import get_logger
from agentaudit.rules.engine import BaseEvaluator

__all__ = ["EvaluatorFactory", "PartitionEvaluators", "PartitionStateStore", "SavedState"]

_log = get_logger("agentaudit.consumers.rule_state")

_FORMAT = 1


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
            _log.error("rule_state.corrupt", file=path, moved_to=aside, error=exc,
                       hint="the partition starts with empty rule state")
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
            _log.warning("rule_state.revision_changed", topic=topic, partition=partition, snapshot=saved.revision,
                         current=evaluator.revision, action="fresh state")
            self._offsets.pop(key, None)
            return None
        evaluator.restore(saved.state)
        self._offsets[key] = saved.offset
        self.restored += 1
        _log.info("rule_state.restored", topic=topic, partition=partition, offset=saved.offset,
                  bytes=len(saved.state))
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
