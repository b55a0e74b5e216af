"""Lines from a child process's stdout with a deadline.

``select()`` on ``proc.stdout`` followed by ``readline()`` loses lines: readline pulls a whole chunk into
Python's buffer, the fd then reads as empty, and lines already buffered wait until the deadline passes. A
thread that blocks on readline and hands lines over a queue has no such gap.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from typing import AnyStr, Generic


class LineReader(Generic[AnyStr]):
    """Reads ``proc.stdout`` line by line in a daemon thread; ``next_line`` waits up to a deadline."""

    def __init__(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        self._proc = proc
        self._lines: queue.Queue[AnyStr | None] = queue.Queue()
        self.closed = False
        threading.Thread(target=self._pump, name="child-stdout", daemon=True).start()

    def _pump(self) -> None:
        while line := self._proc.stdout.readline():
            self._lines.put(line)
        self._lines.put(None)

    def next_line(self, deadline: float) -> AnyStr | None:
        """The next line, or None when stdout closed or ``deadline`` (monotonic) passed."""
        if self.closed:
            return None
        try:
            line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if line is None:
            self.closed = True
        return line

    def rest(self, timeout: float) -> AnyStr | str:
        """Everything still to come until stdout closes (or ``timeout`` passes), joined."""
        deadline = time.monotonic() + timeout
        parts = []
        while (line := self.next_line(deadline)) is not None:
            parts.append(line)
        return (b"" if parts and isinstance(parts[0], bytes) else "").join(parts)
