"""The README's key-management how-to, followed once as a new user would (issue 12).

The bash block is read from README.md, so the test breaks when the README drifts. Only paths, the broker and
store settings (env), ``python my_agent.py`` (a tiny SDK agent), the ``3q2+7w...`` placeholder (a real public
key) and the revocation time (now, so a later checkpoint falls after it) are substituted.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentaudit.consumers.migrate import migrate
from agentaudit.infra.clickhouse import connect
from agentaudit.schemas import SigningKey
from agentaudit.settings import KafkaSettings, StoreSettings

pytestmark = [pytest.mark.integration, pytest.mark.broker]

README = Path(__file__).resolve().parents[2] / "README.md"
AGENTAUDIT = [sys.executable, "-m", "agentaudit.cli"]
AGENT = """\
import os, sys
from agentaudit.producers import AuditClient
audit = AuditClient(tenant="acme", agent="billing-bot", topic=os.environ["AGENTAUDIT_TOPIC_ACTIONS"],
                    spool_dir=sys.argv[1], checkpoint_events=100)
for i in range(300):
    with audit.action("execute_tool", name="payments.refund") as call:
        call.set_cost(cost_usd=42.0)
audit.close()
print(audit.stats()["sealed"])
"""


def _howto_commands() -> list[str]:
    text = README.read_text()
    block = re.search(r"\*\*Key management how-to\.\*\*\s*```bash\n(.*?)```", text, re.DOTALL)
    assert block, "README lost its key-management how-to block"
    return [line for line in block.group(1).replace("\\\n", " ").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_key_howto_works_as_written(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory,
    store_settings_factory: Callable[[], StoreSettings], tmp_path: Path,
):
    started = time.monotonic()
    kafka, store = kafka_settings_factory(partitions=1), store_settings_factory()
    migrate(store)
    key_dir, keys_file, agent_py = tmp_path / "keys", tmp_path / "keys.json", tmp_path / "my_agent.py"
    agent_py.write_text(AGENT)
    outside = SigningKey.generate("made-elsewhere")
    env = {**os.environ, "AGENTAUDIT_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
           "AGENTAUDIT_CLICKHOUSE_URL": store.clickhouse_url, "AGENTAUDIT_DATABASE": store.database,
           "AGENTAUDIT_SINK_SESSION_TIMEOUT_MS": "6000", "AGENTAUDIT_SINK_HEARTBEAT_INTERVAL_MS": "1000",
           "AGENTAUDIT_SINK_BATCH_TIMEOUT_MS": "300"}
    env.update({f"AGENTAUDIT_TOPIC_{k.upper()}": v for k, v in kafka.topics.model_dump().items()})
    env.pop("AGENTAUDIT_KEYS_FILE", None)
    env.pop("AGENTAUDIT_SIGNING_KEY_FILE", None)
    runs: list[int] = []
    group = group_factory()  # one consumer, restarted: it resumes where it committed

    def substitute(line: str) -> list[str]:
        line = (line.replace("~/.agentaudit/keys", str(key_dir)).replace("/etc/agentaudit/keys.json", str(keys_file))
                .replace("3q2+7w...", outside.public_key))
        line = re.sub(r"--at \S+", "--at " + datetime.now(UTC).isoformat(), line)
        return shlex.split(line, comments=True)

    def consume_until(rows: int) -> None:
        """Run the README's consume line until the store holds ``rows`` rows, then stop it as a user would."""
        process = subprocess.Popen([*AGENTAUDIT, "consume", "--group", group], env=command_env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline, stored = time.monotonic() + 90, 0
            while time.monotonic() < deadline and stored < rows:
                time.sleep(1)
                with connect(store) as client:
                    stored = client.query("SELECT count() FROM actions").rows[0][0]
            time.sleep(2)  # the incidents of the last batch
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert stored >= rows, output[-3000:]
        assert process.returncode == 0, output[-3000:]

    def run_agent(key_file: Path) -> None:
        """``AGENTAUDIT_SIGNING_KEY_FILE=<key> python my_agent.py``: 300 actions, then close()."""
        done = subprocess.run(check=False, args=[sys.executable, str(agent_py), str(tmp_path / f"spool-{len(runs)}")],
                              env={**env, "AGENTAUDIT_SIGNING_KEY_FILE": str(key_file)},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(int(done.stdout.split()[-1]))

    def streams_verified(expected_streams: int) -> list[tuple[str, int, int]]:
        """Each stream in event-time order: (stream, rows verified, rows); the honest ones verify all but the tail."""
        with connect(store) as client:
            rows = client.query("SELECT stream_id, countIf(verified = 1), count() FROM actions_verified "
                                "GROUP BY stream_id ORDER BY min(event_time)").rows
            incidents = client.query("SELECT rule_id, key FROM incidents FINAL "
                                     "WHERE rule_id LIKE 'integrity.%'").rows
            raw = client.query("SELECT stream_id, count(), groupUniqArray(toString(signature)) FROM actions "
                               "GROUP BY stream_id").rows
        assert len(rows) == expected_streams, (rows, raw, runs)
        honest = rows if expected_streams < 3 else rows[:2]
        for (_, ok, total), count in zip(honest, runs, strict=False):
            assert ok == total - 1 == count - 1, rows
        if expected_streams < 3:
            assert incidents == [], incidents
        return [(*row, incidents) for row in rows]

    results: dict[str, subprocess.CompletedProcess[str]] = {}
    for line in _howto_commands():
        tokens = substitute(line)
        command_env = dict(env)
        if tokens[0] == "export":
            name, value = tokens[1].split("=", 1)
            env[name] = value
            continue
        while "=" in tokens[0] and tokens[0].split("=")[0].isupper():
            name, value = tokens.pop(0).split("=", 1)
            command_env[name] = value
        if tokens[:2] == ["python", "my_agent.py"]:
            run_agent(Path(command_env["AGENTAUDIT_SIGNING_KEY_FILE"]))
            continue
        assert tokens[0] == "agentaudit", line
        if tokens[1] == "consume":
            consume_until(sum(runs))
            honest = subprocess.run(check=False, args=[*AGENTAUDIT, "verify", "--signatures"], env=env, capture_output=True,
                                    text=True, timeout=120)
            assert honest.returncode == 0, honest.stdout + honest.stderr
            streams_verified(expected_streams=1)
            continue
        done = subprocess.run(check=False, args=[*AGENTAUDIT, *tokens[1:]], env=command_env, capture_output=True, text=True,
                              timeout=120)
        results[" ".join(tokens[1:3])] = done
        assert tokens[1] == "verify" or done.returncode == 0, (line, done.stdout, done.stderr)  # verify: below
        if tokens[1:3] == ["keys", "rotate"]:  # "then point the agent at the new key file and restart it"
            run_agent(key_dir / f"{tokens[4]}.key")
            consume_until(sum(runs))  # "restart the consumers so they read the keys file"
        if tokens[1:3] == ["keys", "revoke"]:  # the thief signs with the revoked key after the time
            time.sleep(0.01)
            run_agent(key_dir / f"{tokens[3]}.key")
            consume_until(sum(runs))

    # step 2 and the rotation: signed streams stored verified, no integrity incident (checked as they ran);
    # after the revocation: the thief's stream verifies nothing and raises integrity.unauthorized-key
    assert len(runs) == 3, runs
    rows = streams_verified(expected_streams=3)
    thief, incidents = rows[2][0], rows[2][3]
    assert rows[2][1] == 0, rows
    assert {key for rule, key in incidents if rule == "integrity.unauthorized-key"} == {thief}, incidents
    assert {rule for rule, key in incidents} <= {"integrity.unauthorized-key", "integrity.unsigned-stream"}
    assert {key for _, key in incidents} == {thief}, incidents
    listed = results["keys list"].stdout
    assert [line.split("\t")[0] for line in listed.splitlines()] == [
        "acme-billing-2026-12", "acme-support-1", "acme-billing-2027-01"], listed
    failed = results["verify --signatures"]
    assert failed.returncode == 1 and "revoked" in failed.stdout and thief in failed.stdout, failed.stdout
    print(f"readme how-to: {sum(runs)} events, {time.monotonic() - started:.1f} s")
