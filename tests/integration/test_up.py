"""``agentaudit up`` end to end: the dashboard answers, ClickHouse fills, Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agentaudit.infra.clickhouse import connect
from agentaudit.infra.exceptions import StoreError
from agentaudit.settings import StoreSettings
from tests.up_ports import up_port_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _processes_under(needle: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if needle in cmdline or cwd.startswith(needle):
            found.append(f"{entry.name}: {cmdline[:160]}")
    return found


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - the stack is still coming up
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


def test_up_serves_the_dashboard_fills_clickhouse_and_stops_cleanly(tmp_path):
    home = tmp_path / "home"
    env = {
        **os.environ,
        "AGENTAUDIT_HOME": str(home),
        **up_port_env(),
        "AGENTAUDIT_SIMULATE_RATE": "400",
    }
    began = time.monotonic()
    up = subprocess.Popen([sys.executable, "-m", "agentaudit.cli", "up"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        state = _wait_for(lambda: json.loads((home / "stack.json").read_text()), 60, "stack.json")
        urls = state["urls"]
        with urllib.request.urlopen(urls["dashboard"], timeout=5) as response:  # noqa: S310 - the dashboard's own loopback http:// URL
            assert response.status == 200
        assert (home / "store.credentials").stat().st_mode & 0o777 == 0o600
        password = json.loads((home / "store.credentials").read_text())["password"]
        with pytest.raises(StoreError):  # the store of up has a password
            connect(urls["store"]).command("SELECT 1")
        store = connect(StoreSettings(clickhouse_url=urls["store"], clickhouse_password=password))
        actions = _wait_for(lambda: store.command("SELECT count() FROM agentaudit.actions"), 60, "actions")
        incidents = _wait_for(lambda: store.command("SELECT count() FROM agentaudit.incidents"), 60, "incidents")
        assert store.command("SELECT count() FROM agentaudit.owners") > 0  # the fleet's owners file was synced
        status = subprocess.run([sys.executable, "-m", "agentaudit.cli", "status", "--home", str(home)],
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        for component in ("broker", "store", "consumer", "dashboard"):
            assert component in status.stdout
        assert "down" not in status.stdout
        elapsed = time.monotonic() - began
        print(f"up: {actions} actions and {incidents} incidents queryable {elapsed:.1f}s after start")
        assert elapsed < 60
        _signed_control_plane(home, urls, store)
        store.close()
    finally:
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=60)
    print(output)
    assert up.returncode == 0, output
    assert "Dashboard:" in output and "stopped." in output
    assert f"AGENTAUDIT_OPERATOR_KEY_FILE={home / 'keys' / 'operator-admin.key'}" in output
    assert f"signed and verified against {home / 'producer-keys.yaml'}" in output
    assert (home / "keys" / "simulator.key").stat().st_mode & 0o777 == 0o600
    leftovers = _processes_under(str(home))
    assert leftovers == [], f"processes left behind: {leftovers}"


def _signed_control_plane(home: Path, urls: dict, store) -> None:
    """up's authority: the first operator's key signs a CLI kill that is admitted; an unsigned kill '*' from a
    plain producer is refused by the consumer, which stores an integrity incident."""
    from agentaudit.infra.kafka import KafkaProducer
    from agentaudit.schemas import Actor, ActorType, AvroCodec, ControlCommand, ControlType
    from agentaudit.settings import KafkaSettings

    assert (home / "authority.yaml").stat().st_mode & 0o777 == 0o600
    assert (home / "keys" / "operator-admin.key").stat().st_mode & 0o777 == 0o600
    env = {**os.environ, "AGENTAUDIT_BOOTSTRAP_SERVERS": urls["broker"],
           "AGENTAUDIT_AUTHORITY_FILE": str(home / "authority.yaml"),
           "AGENTAUDIT_OPERATOR_KEY_FILE": str(home / "keys" / "operator-admin.key"), "COLUMNS": "400"}
    kill = subprocess.run([sys.executable, "-m", "agentaudit.cli", "control", "kill", "--agent", "no-such-bot",
                           "--actor", "admin", "--reason", "signed by up's operator"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert kill.returncode == 0, kill.stdout + kill.stderr
    listed = subprocess.run([sys.executable, "-m", "agentaudit.cli", "control", "list"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert "no-such-bot" in listed.stdout and "human:admin" in listed.stdout, listed.stdout + listed.stderr
    forged = ControlCommand(command_id="forged-kill-all", type=ControlType.KILL_AGENT, agent_id="*",
                            issuer=Actor(type=ActorType.HUMAN, id="admin"), issued_at_us=time.time_ns() // 1000)
    with KafkaProducer(KafkaSettings(bootstrap_servers=urls["broker"])) as producer:
        producer.produce("agentaudit.control", AvroCodec("control").encode(forged.to_avro()), key=b"*")
        producer.flush(10)
    rows = _wait_for(lambda: store.query(
        "SELECT attributes['reason'] FROM agentaudit.incidents FINAL "
        "WHERE rule_id = 'integrity.unauthorized-command' AND attributes['record_id'] = 'forged-kill-all'").rows,
        60, "integrity.unauthorized-command incident")
    assert rows[0][0].startswith("unsigned")
