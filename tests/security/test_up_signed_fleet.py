"""Attack: on ``agentaudit up``'s broker, forge an action naming one of the simulated agents.

Before, ``up`` ran its fleet chained but unsigned and gave the consumer no keys file, so anyone who could
write the (unauthenticated, embedded) broker could add events in a simulated agent's name and nothing
checked who wrote them. ``up`` now provisions a signing key for the simulator (``home/keys/simulator.key``,
mode 0600) and a keys file registering it (``home/producer-keys.yaml``); the simulator signs checkpoints
with the SDK's schedule and the consumer verifies every stream with the keys file.

Shown on the real stack (tansu, store server, consumer, simulator, dashboard): the fleet's streams are all
stored verified, ``agentaudit verify --signatures`` passes and no ``integrity.*`` incident fires; then a
plain Kafka producer writes valid Avro action events for ``payments-refunder`` of ``acme``, one stream
claiming the simulator's key with a signature it could not make (``integrity.bad-signature``) and one left
unsigned past the pack's 2,000-event allowance (``integrity.unsigned-stream``).
"""

from __future__ import annotations

import base64
import contextlib
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentaudit.cli import app
from agentaudit.consumers.stream_verify import verify_stream_signatures
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.kafka import KafkaProducer
from agentaudit.infra.stack import Stack, StackSettings
from agentaudit.schemas import AvroCodec, KeyRing, StreamChain
from agentaudit.schemas.checkpoints import CHECKPOINT_NAME, KEY_ATTRIBUTE, SIG_ATTRIBUTE
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.up_ports import up_port_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AGENTS = 12


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


def _forged(agent: str, tenant: str, stream_id: str, count: int, attributes: dict[str, str]) -> list[bytes]:
    """``count`` well-formed action events of ``agent`` in a chain of their own, ``attributes`` on the first."""
    codec, chain, out = AvroCodec("action"), StreamChain(stream_id), []
    now = time.time_ns() // 1000
    for i in range(count):
        event_id = str(uuid.uuid4())
        record: dict[str, Any] = {
            "event_id": event_id, "tenant": tenant, "agent_id": agent, "agent_version": "1.0.0", "run_id": event_id,
            "trace_id": event_id, "action_id": event_id, "parent_action_id": None, "links": [], "depth": 0,
            "kind": "execute_tool", "name": "crm.lookup", "phase": "point", "status": "ok", "error_type": None,
            "error_message": None, "actor": {"type": "agent", "id": agent}, "model": None, "input_tokens": 0,
            "output_tokens": 0, "cost_usd": 0.0, "latency_us": None, "start_time_us": now + i, "end_time_us": now + i,
            "event_time_us": now + i, "input_digest": None, "output_digest": None, "input_body": None,
            "output_body": None, "payload_bytes": 0, "attributes": dict(attributes) if i == 0 else {},
            "environment": "prod",
        }
        out.append(chain.seal(record, codec))
    return out


def _verify_cli(store: StoreSettings, keys_file: Path):  # type: ignore[no-untyped-def]  # a CompletedProcess
    env = {"AGENTAUDIT_CLICKHOUSE_URL": store.clickhouse_url, "AGENTAUDIT_DATABASE": store.database,
           "AGENTAUDIT_CLICKHOUSE_PASSWORD": store.clickhouse_password.get_secret_value(),
           "AGENTAUDIT_KEYS_FILE": str(keys_file), "COLUMNS": "400"}
    return CliRunner().invoke(app, ["verify", "--signatures", "--limit", "20"], env=env)


def _integrity(client) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]  # a clickhouse-connect client
    found: dict[str, set[str]] = {}
    for rule_id, key in client.query("SELECT rule_id, key FROM agentaudit.incidents FINAL "
                                     "WHERE rule_id LIKE 'integrity.%'").rows:
        found.setdefault(rule_id, set()).add(key)
    return found


def test_up_signs_its_fleet_and_a_forged_event_for_a_simulated_agent_raises_an_incident(tmp_path: Path):
    settings = StackSettings(home=tmp_path / "home", **up_port_settings(), simulate_rate=400,
                             simulate_agents=AGENTS)
    stack = Stack(settings)
    stack.start()
    try:
        assert stack.simulator_key_file.stat().st_mode & 0o777 == 0o600
        ring = KeyRing.load(stack.keys_file)
        assert ring.get("simulator") is not None and ring.get("simulator").principal == "service:simulator"
        assert stack.credentials is not None
        store = StoreSettings(clickhouse_url=stack.urls["store"], clickhouse_password=stack.credentials.password)
        with connect(store) as client:
            # every simulated stream gets rows verified by a checkpoint (T = 10 s of event time at the latest)
            _wait_for(lambda: client.command("SELECT uniqExactIf(stream_id, verified = 1) FROM "
                                             "agentaudit.actions_verified") >= AGENTS, 90, "a verified row per stream")
            simulator = next(c for c in stack._started if c.name.startswith("simulator"))
            simulator.stop()  # SIGTERM: the simulator covers each stream's tail, as the SDK's close() does
            stack._started.remove(simulator)
            reports = []
            with contextlib.suppress(AssertionError):  # the report names what is wrong
                _wait_for(lambda: reports.append(verify_stream_signatures(client, ring)) or reports[-1].ok, 60,
                          "every stored stream verified")
            report = reports[-1]
            assert report.ok, [str(f) for f in report.findings[:10]]
            print(f"up's fleet: {report.streams} streams, {report.rows} rows, {report.verified} verified, "
                  f"{report.tails} final checkpoint events")
            assert report.streams == AGENTS and report.tails == AGENTS
            assert report.verified == report.rows - AGENTS > 1000
            unverified = client.query("SELECT name, count() FROM agentaudit.actions_verified WHERE verified = 0 "
                                      "GROUP BY name").rows
            assert unverified == [(CHECKPOINT_NAME, AGENTS)]  # only each stream's final checkpoint event
            assert client.command("SELECT uniqExact(toString(signature)) FROM agentaudit.actions "
                                  "WHERE signature != ''") == 1
            assert client.command("SELECT any(toString(signature)) FROM agentaudit.actions "
                                  "WHERE signature != ''") == "valid"
            assert _integrity(client) == {}
            clean = _verify_cli(store, stack.keys_file)
            assert clean.exit_code == 0, clean.output
            assert f"{AGENTS} streams, {report.rows} rows, {report.verified} verified" in clean.output

            # The attacker: a plain producer on up's broker, events naming a simulated agent.
            agent, tenant = "payments-refunder", "acme"
            assert client.command(f"SELECT count() FROM agentaudit.actions WHERE agent_id = '{agent}' "
                                  f"AND tenant = '{tenant}'") > 0
            claimed = {SIG_ATTRIBUTE: base64.b64encode(os.urandom(64)).decode(), KEY_ATTRIBUTE: "simulator"}
            forgeries = {f"forged-signed/{agent}": _forged(agent, tenant, f"forged-signed/{agent}", 1, claimed),
                         f"forged-unsigned/{agent}": _forged(agent, tenant, f"forged-unsigned/{agent}", 2001, {})}
            kafka = KafkaSettings(bootstrap_servers=stack.urls["broker"])
            with KafkaProducer(kafka) as producer:
                for stream_id, values in forgeries.items():
                    for value in values:
                        producer.produce(kafka.topics.actions, value, key=stream_id.encode())
                producer.flush(30)
            found = _wait_for(lambda: len(f := _integrity(client)) >= 2 and f, 90, "integrity incidents")
            assert found == {"integrity.bad-signature": {f"forged-signed/{agent}"},
                             "integrity.unsigned-stream": {f"forged-unsigned/{agent}"}}, found
            forged_rows = dict(client.query("SELECT stream_id, countIf(verified = 1) FROM agentaudit.actions_verified "
                                            "WHERE stream_id LIKE 'forged-%' GROUP BY stream_id").rows)
            assert forged_rows == dict.fromkeys(forgeries, 0)
            dirty = _verify_cli(store, stack.keys_file)
            assert dirty.exit_code == 1, dirty.output
            assert "forged-signed/payments-refunder" in dirty.output and "bad_signature" in dirty.output
            assert "forged-unsigned/payments-refunder" in dirty.output
    finally:
        stack.stop()
