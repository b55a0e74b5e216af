"""Child processes that cannot outlive us: own process group, parent-death signal, log file.

Every embedded component (tansu, SeaweedFS, the store server) runs through
:class:`ManagedProcess`, so stopping, killing and diagnosing them works the same way.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from agentaudit.infra.embedded.ports import port_open
from agentaudit.infra.exceptions import ProcessStartError

__all__ = ["ManagedProcess", "log_tail"]

_log = logging.getLogger("agentaudit.infra.embedded")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    # Linux only: the kernel sends SIGKILL when the thread that started us exits.
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, or a note that there is none."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16_384))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One child process in its own process group, logging to ``log_path``.

    :meth:`start` returns once ``ready_port`` accepts TCP connections on ``ready_host``.
    Start it from a thread that lives as long as the child: the parent-death signal fires
    when the *starting thread* exits.

    :param name: short name for messages (``"tansu"``).
    :param argv: program and arguments.
    :param log_path: file that receives stdout and stderr (appended).
    :param ready_port: port to wait for, default none (ready once spawned).
    :param env: extra environment variables on top of ours.
    :param ready_timeout: seconds to wait for the port, default 30.

    Example::

        with ManagedProcess("tansu", [binary, "broker", ...], log_path=run / "tansu.log",
                            ready_port=port):
            ...
    """

    def __init__(self, name: str, argv: Sequence[str], *, log_path: Path, ready_port: int | None = None,
                 ready_host: str = "127.0.0.1", env: Mapping[str, str] | None = None,
                 cwd: Path | None = None, ready_timeout: float = 30.0) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.ready_port = ready_port
        self.ready_host = ready_host
        self._env = dict(env or {})
        self._cwd = cwd
        self.ready_timeout = ready_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The child's pid (also its process group id) while started."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        """True while the child process exists and has not exited."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Spawn the child and wait until it is ready.

        :raises ProcessStartError: the program is missing, exited early, or its port did not open
            within ``ready_timeout``; the message carries the tail of its log.
        """
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self._env}
        with self.log_path.open("ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {' '.join(self.argv)}\n".encode())
            log.flush()
            try:
                self._proc = subprocess.Popen(  # noqa: S603 - argv is ours
                    self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                    cwd=self._cwd, start_new_session=True, preexec_fn=_die_with_parent)  # noqa: PLW1509 - _die_with_parent only calls prctl, which is safe between fork and exec
            except OSError as exc:
                raise ProcessStartError(f"could not run {self.name} ({self.argv[0]}): {exc}") from exc
        try:
            self._wait_ready()
        except BaseException:
            self.stop(timeout=5)
            raise
        _log.info("%s started (pid %s%s)", self.name, self.pid,
                  f", port {self.ready_port}" if self.ready_port else "")

    def _wait_ready(self) -> None:
        assert self._proc is not None  # noqa: S101 - narrows the Optional: start() set it
        if self.ready_port is None:
            return
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise ProcessStartError(
                    f"{self.name} exited with code {code} before port {self.ready_port} opened; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}")
            if port_open(self.ready_host, self.ready_port):
                return
            time.sleep(0.05)
        raise ProcessStartError(
            f"{self.name} did not open {self.ready_host}:{self.ready_port} within {self.ready_timeout}s; "
            f"log {self.log_path}:\n{log_tail(self.log_path)}")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, wait up to ``timeout`` seconds, then SIGKILL; returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _log.warning("%s (pid %s) ignored SIGTERM for %ss; killing it", self.name, proc.pid, timeout)
                self._signal_group(signal.SIGKILL)
                proc.wait()
        # Reap stragglers the child may have left in its group.
        self._signal_group(signal.SIGKILL)
        self._proc = None
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crash, for fault tests) and reap it."""
        proc = self._proc
        if proc is None:
            return
        self._signal_group(signal.SIGKILL)
        proc.wait()
        self._proc = None

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._proc is not None  # noqa: S101 - narrows the Optional: start() set it
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> ManagedProcess:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
