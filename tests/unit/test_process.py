"""ManagedProcess: readiness, start failures, stop escalation, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentaudit.infra import ProcessStartError
from agentaudit.infra.embedded import ManagedProcess, free_port, port_open

PY = sys.executable
LISTEN = "import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(60)"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); count it as dead.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def _wait_dead(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_start_waits_for_port_and_stop_frees_it(tmp_path: Path) -> None:
    port = free_port()
    proc = ManagedProcess("listener", [PY, "-c", LISTEN, str(port)], log_path=tmp_path / "l.log", ready_port=port)
    with proc:
        assert port_open("127.0.0.1", port)
        pid = proc.pid
        assert pid is not None and os.getpgid(pid) == pid  # its own process group
    assert not port_open("127.0.0.1", port)
    assert _wait_dead(pid)


def test_early_exit_raises_with_log_tail(tmp_path: Path) -> None:
    proc = ManagedProcess("crasher", [PY, "-c", "print('bad flag --nope'); raise SystemExit(3)"],
                          log_path=tmp_path / "c.log", ready_port=free_port())
    with pytest.raises(ProcessStartError, match=r"(?s)crasher exited with code 3.*bad flag --nope"):
        proc.start()
    assert not proc.running


def test_port_that_never_opens_times_out(tmp_path: Path) -> None:
    proc = ManagedProcess("sleeper", [PY, "-c", "print('up'); import time; time.sleep(60)"],
                          log_path=tmp_path / "s.log", ready_port=free_port(), ready_timeout=0.5)
    with pytest.raises(ProcessStartError, match=r"(?s)did not open .* within 0.5s.*up"):
        proc.start()
    assert not proc.running


def test_missing_program_raises(tmp_path: Path) -> None:
    with pytest.raises(ProcessStartError, match="could not run ghost"):
        ManagedProcess("ghost", [str(tmp_path / "no-such-binary")], log_path=tmp_path / "g.log").start()


def test_stop_kills_what_ignores_sigterm_and_its_children(tmp_path: Path) -> None:
    # The child ignores SIGTERM and starts a grandchild in the same group, then reports its pid.
    pid_file = tmp_path / "grandchild.pid"
    script = textwrap.dedent(f"""
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c",
                                  "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
        open({str(pid_file)!r} + ".tmp", "w").write(str(child.pid))
        __import__("os").rename({str(pid_file)!r} + ".tmp", {str(pid_file)!r})
        time.sleep(60)
    """)
    proc = ManagedProcess("stubborn", [PY, "-c", script], log_path=tmp_path / "stubborn.log")
    proc.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not pid_file.exists():
            time.sleep(0.05)
        grandchild = int(pid_file.read_text())
        started = time.monotonic()
        assert proc.stop(timeout=0.5) == -signal.SIGKILL
        assert time.monotonic() - started < 5
        assert _wait_dead(grandchild)
    finally:
        proc.stop(timeout=0.1)


def test_child_dies_when_parent_is_killed(tmp_path: Path) -> None:
    # A parent process starts a ManagedProcess and is then SIGKILLed: the child must not survive it.
    parent_script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from agentaudit.infra.embedded import ManagedProcess
        p = ManagedProcess("orphan", [sys.executable, "-c", "import time; time.sleep(60)"],
                           log_path=Path({str(tmp_path / 'o.log')!r}))
        p.start()
        print(p.pid, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([PY, "-c", parent_script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait()
        assert _wait_dead(child), f"child {child} outlived its parent"
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
