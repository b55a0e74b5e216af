"""Hot reload of rule files: a new revision takes over between two batches, or not at all.

A watcher thread polls the rule files' (path, mtime, size) signature. On a change it loads
and compiles the new files off the hot path. If they compile, the compiled evaluator waits in
a slot and the next batch's :meth:`ReloadingEvaluator.evaluate` swaps it in before judging, so
every batch is judged by exactly one revision. If they do not, or a file is refused (too large,
an alias bomb, a pattern RE2 rejects: see ``agentaudit.rules._yaml``), the old revision stays,
the error is logged and kept in :attr:`ReloadingEvaluator.last_error`; a refused file is tried
again only once it changes. Rule state (open windows) is not carried over: incident ids include the
revision, so the new revision starts its windows afresh.

>>> evaluator = ReloadingEvaluator(["rules/"], load=load_evaluator).start()
>>> sink = Sink(kafka, store, settings, evaluator)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agentaudit.exceptions import AgentAuditError
from agentaudit.rules.engine import BaseEvaluator
from agentaudit.schemas import Incident

__all__ = ["EvaluatorLoader", "ReloadingEvaluator"]

_log = logging.getLogger("agentaudit.consumers.rule_reload")

#: Builds an evaluator from rule paths; raises an :class:`AgentAuditError` on a bad file.
EvaluatorLoader = Callable[[Sequence[str]], BaseEvaluator]


def _signature(paths: Sequence[str]) -> tuple[tuple[str, int, int], ...]:
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        else:
            files.append(path)
    out = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            out.append((str(f), -1, -1))
        else:
            out.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(out)


class ReloadingEvaluator(BaseEvaluator):
    """An evaluator that follows its rule files, swapping revisions atomically between batches.

    :param paths: rule files or directories to watch.
    :param load: compiles ``paths`` into an evaluator (e.g. ``load_evaluator``); it is called once
        here (errors propagate: a bad file at startup is fatal) and again on every change.
    :param interval_s: how often the files are checked, default 1 s.
    """

    def __init__(self, paths: Sequence[str], load: EvaluatorLoader, *, interval_s: float = 1.0) -> None:
        self.paths = list(paths)
        self._load = load
        self.interval_s = interval_s
        self._signature = _signature(self.paths)
        self.current: BaseEvaluator = load(self.paths)
        self._pending: BaseEvaluator | None = None
        self._ceiling: int | None = None  # the sink's hold(), passed on to a revision swapped in later
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reloads = 0
        self.failures = 0
        #: why the latest reload was refused (None once a reload succeeds)
        self.last_error: str | None = None

    @property
    def revision(self) -> str:
        return self.current.revision

    def start(self) -> ReloadingEvaluator:
        """Start watching (a daemon thread); idempotent."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="agentaudit-rule-reload", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def check(self) -> bool:
        """Load the files now if they changed; True when a new revision is waiting for the next batch."""
        signature = _signature(self.paths)
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            candidate = self._load(self.paths)
        except (AgentAuditError, OSError) as exc:
            return self._refuse(str(exc))
        except Exception as exc:  # noqa: BLE001 - a loader bug is a refused file too, never a half-loaded one
            return self._refuse(f"{type(exc).__name__}: {exc}")
        self.last_error = None
        if candidate.revision == self.current.revision:
            return False
        with self._lock:
            self._pending = candidate
        return True

    def _refuse(self, reason: str) -> bool:
        self.failures += 1
        self.last_error = reason
        _log.error("rules reload failed, keeping revision %s: %s", self.current.revision, reason)
        return False

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watcher must survive anything a loader does
                _log.exception("rules reload crashed, keeping revision %s", self.current.revision)

    def _swap(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            old, self.current = self.current.revision, pending
            pending.hold(self._ceiling)
            self.reloads += 1
            _log.warning("rules reloaded: revision %s -> %s", old, pending.revision)

    # -- BaseEvaluator: a batch is judged by one revision, swapped in only before evaluate ----

    def evaluate(self, records: Sequence[dict[str, Any]]) -> list[Incident]:
        if self._pending is not None:
            self._swap()
        return self.current.evaluate(records)

    def on_watermark(self, watermark_us: int) -> list[Incident]:
        return self.current.on_watermark(watermark_us)

    def on_quiet(self, quiet_us: dict[str, int], others_us: int | None = None) -> list[Incident]:
        return self.current.on_quiet(quiet_us, others_us)

    def hold(self, ceiling_us: int | None) -> None:
        self._ceiling = ceiling_us
        self.current.hold(ceiling_us)

    def snapshot(self) -> bytes:
        return self.current.snapshot()

    def restore(self, data: bytes) -> None:
        self.current.restore(data)

    def __getattr__(self, name: str) -> Any:  # flush(), rule_set, ... of the current evaluator
        if name == "current":
            raise AttributeError(name)
        return getattr(self.current, name)
