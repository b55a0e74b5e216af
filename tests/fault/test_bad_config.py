"""Bad configuration: a bad rule file, a bad owners file, an unreachable broker or store. Each
command exits non-zero within seconds with an ``error:`` line naming the problem, and leaves
no process behind (every command runs in its own session; afterwards /proc must hold no
member of it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentaudit.infra.embedded import free_port
from agentaudit.settings import KafkaSettings
from tests.up_ports import up_port_env

pytestmark = [pytest.mark.integration, pytest.mark.fault]

BAD_RULES = "rules:\n  - id: broken\n    condition: tool_call and (name =\n    severity: high\n"
BAD_OWNERS = "owners:\n  - match: [\n"


def session_members(sid: int) -> list[int]:
    """Pids still alive in session ``sid`` (field 6 of /proc/PID/stat)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> tuple[int, str, float, list[int]]:
    """Run ``agentaudit ARGS`` in a new session; (exit code, output, seconds, leftover pids)."""
    began = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "agentaudit.cli", *args], env=env, cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
            process.communicate()
    took = time.monotonic() - began
    time.sleep(0.5)  # let a straggler show itself
    leftovers = session_members(process.pid)
    for pid in leftovers:  # never leave them for the next test
        os.kill(pid, 9)
    print(f"[bad config] injected: agentaudit {' '.join(args)}; counted: exit {process.returncode} in {took:.1f}s, "
          f"leftover processes {leftovers}, last line: {output.strip().splitlines()[-1] if output.strip() else ''}")
    return process.returncode, output, took, leftovers


@pytest.fixture
def env(tmp_path: Path, kafka_settings: KafkaSettings, store_server) -> dict[str, str]:
    (tmp_path / "bad_rules.yaml").write_text(BAD_RULES)
    (tmp_path / "bad_owners.yaml").write_text(BAD_OWNERS)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AGENTAUDIT_")}
    clean.update(AGENTAUDIT_BOOTSTRAP_SERVERS=kafka_settings.bootstrap_servers,
                 AGENTAUDIT_CLICKHOUSE_URL=store_server.url)
    return clean


def test_consume_with_bad_rule_file(env: dict[str, str], tmp_path: Path):
    code, output, took, leftovers = run_cli(["consume", "--rules", str(tmp_path / "bad_rules.yaml")], env, tmp_path)
    assert code != 0 and took < 10 and not leftovers
    assert "error:" in output and "bad_rules.yaml:" in output and "Traceback" not in output, output[-2000:]


def test_consume_with_missing_rule_file(env: dict[str, str], tmp_path: Path):
    code, output, took, leftovers = run_cli(["consume", "--rules", str(tmp_path / "nope.yaml")], env, tmp_path)
    assert code != 0 and took < 10 and not leftovers
    assert "error:" in output and "nope.yaml" in output and "Traceback" not in output, output[-2000:]


def test_consume_with_bad_owners_file(env: dict[str, str], tmp_path: Path):
    code, output, took, leftovers = run_cli(["consume", "--owners", str(tmp_path / "bad_owners.yaml")], env, tmp_path)
    assert code != 0 and took < 10 and not leftovers
    assert "error:" in output and "bad_owners.yaml:" in output and "Traceback" not in output, output[-2000:]


def test_owners_check_with_bad_owners_file(env: dict[str, str], tmp_path: Path):
    code, output, took, leftovers = run_cli(["owners", "check", "--owners", str(tmp_path / "bad_owners.yaml")],
                                            env, tmp_path)
    assert code != 0 and took < 10 and not leftovers
    assert "error:" in output and "bad_owners.yaml:" in output and "Traceback" not in output, output[-2000:]


def test_consume_with_unreachable_broker(env: dict[str, str], tmp_path: Path):
    env["AGENTAUDIT_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{free_port()}"
    code, output, took, leftovers = run_cli(["consume", "--builtin-rules"], env, tmp_path)
    assert code != 0 and took < 20 and not leftovers
    assert "error:" in output and env["AGENTAUDIT_BOOTSTRAP_SERVERS"] in output and "Traceback" not in output, \
        output[-2000:]


def test_consume_with_unreachable_store(env: dict[str, str], tmp_path: Path):
    env["AGENTAUDIT_CLICKHOUSE_URL"] = f"http://127.0.0.1:{free_port()}"
    code, output, took, leftovers = run_cli(["consume", "--builtin-rules"], env, tmp_path)
    assert code != 0 and took < 20 and not leftovers
    assert "error:" in output and env["AGENTAUDIT_CLICKHOUSE_URL"] in output and "Traceback" not in output, \
        output[-2000:]


def test_up_with_bad_rule_file_stops_everything_it_started(env: dict[str, str], tmp_path: Path):
    code, output, took, leftovers = run_cli(
        ["up", "--home", str(tmp_path / "home"), "--rate", "0", "--rules", str(tmp_path / "bad_rules.yaml")],
        {**env, **up_port_env()}, tmp_path, timeout=90)
    assert code != 0 and took < 60 and not leftovers, output[-2000:]
    assert "error" in output and "bad_rules.yaml" in output, output[-2000:]


def test_otlp_on_a_taken_port(tmp_path: Path):
    """`agentaudit otlp` on a port another process holds: one error line naming the address, no traceback
    (it printed a traceback before, which is what `up` showed when its receiver lost a port race)."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTAUDIT_")}
        env.update(AGENTAUDIT_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
                   AGENTAUDIT_OTLP_SPOOL_DIR=str(tmp_path / "spool"))
        code, output, took, leftovers = run_cli(["otlp", "--port", str(port)], env, tmp_path, timeout=60)
    assert code == 1 and took < 30 and not leftovers, output[-2000:]
    assert "error:" in output and f"127.0.0.1:{port}" in output and "Traceback" not in output, output[-2000:]
