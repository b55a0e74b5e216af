"""Two starts of ``agentaudit up`` over one home directory reuse no id (issue 12).

Before, the second start re-sent the simulator's event, trace and stream ids with seq from 0: 4,913
rows shared ids with the first run and ``LIMIT 1 BY event_id`` hid the second run. Each start now
gets a fresh run nonce (unless ``AGENTAUDIT_SIMULATE_SEED`` pins the seed), so the store holds
``count() = count(DISTINCT event_id)`` and no integrity incident fires.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentaudit.infra.clickhouse import connect
from agentaudit.settings import StoreSettings
from tests.up_ports import up_port_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


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


def _start(home: Path) -> subprocess.Popen[str]:
    (home / "stack.json").unlink(missing_ok=True)
    env = {
        **os.environ,
        "AGENTAUDIT_HOME": str(home),
        **up_port_env(),
        "AGENTAUDIT_SIMULATE_RATE": "400",
    }
    env.pop("AGENTAUDIT_SIMULATE_SEED", None)
    return subprocess.Popen([sys.executable, "-m", "agentaudit.cli", "up"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _store_settings(home: Path, url: str) -> StoreSettings:
    """The store of ``up``, with the password ``up`` keeps under its home when it sets one."""
    credentials = home / "store.credentials"
    password = json.loads(credentials.read_text())["password"] if credentials.exists() else ""
    return StoreSettings(clickhouse_url=url, clickhouse_password=password)


def _stop(up: subprocess.Popen[str]) -> str:
    up.send_signal(signal.SIGINT)
    output, _ = up.communicate(timeout=60)
    assert up.returncode == 0, output
    return output


def test_two_starts_over_one_home_share_no_id(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    counts: list[int] = []
    streams: list[set[str]] = []
    for start in range(2):
        up = _start(home)
        try:
            state = _wait_for(lambda: json.loads((home / "stack.json").read_text()), 60, "stack.json")
            with connect(_store_settings(home, state["urls"]["store"])) as store:
                # Enough of this start's events to overlap the first run's ids, were they reused. The first
                # run's runs (``sim-7-<nonce>``, the part of a stream id before its "/") are left out: a
                # loaded machine may still be storing the first run's backlog when the first count is taken.
                earlier = sorted({s.split("/")[0] for s in set().union(*streams)})
                own = "NOT has({earlier:Array(String)}, splitByChar('/', stream_id)[1])"
                counts.append(_wait_for(
                    lambda: (n := store.command(f"SELECT count() FROM agentaudit.actions WHERE {own}",  # noqa: B023 - _wait_for calls it within this iteration
                                                parameters={"earlier": earlier})) >= 1500 and n,  # noqa: B023 - as above
                    90, f"start {start + 1}: 1500 actions of its own"))
                streams.append({row[0] for row in store.query(
                    f"SELECT DISTINCT stream_id FROM agentaudit.actions WHERE {own}",
                    parameters={"earlier": earlier}).rows})
                if start == 1:
                    total, distinct = store.query(
                        "SELECT count(), count(DISTINCT event_id) FROM agentaudit.actions").rows[0]
                    traces = store.query("SELECT count(DISTINCT trace_id), count(DISTINCT (trace_id, run_id)) "
                                         "FROM agentaudit.actions").rows[0]
                    integrity = store.query("SELECT rule_id, summary FROM agentaudit.incidents "
                                            "WHERE rule_id LIKE 'integrity.%'").rows
        finally:
            _stop(up)
    assert total == distinct and total >= counts[0] + counts[1]
    assert traces[0] == traces[1]  # no trace mixes the two runs
    assert integrity == []
    assert streams[0] and streams[1]  # the second start wrote streams of its own
    assert all(s.startswith("sim-7-") for s in streams[0] | streams[1])
