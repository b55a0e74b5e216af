"""``agentaudit up`` wires signed streams: the simulator gets its key, the consumer the keys file that registers it."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentaudit.infra.exceptions import InfraError
from agentaudit.infra.stack import KEYS_FILE, Stack, StackSettings, provision_simulator_key
from agentaudit.producers.simulator import SimConfig, Simulator
from agentaudit.schemas import KeyRing, SigningKey
from agentaudit.schemas.keys_file import add_key


def test_the_simulator_signs_with_a_key_the_consumers_keys_file_registers_for_every_simulated_agent(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    stack = Stack(StackSettings(home=home, simulate_agents=40))
    key_path, keys_file = provision_simulator_key(home)
    components = {c.name.split(" ")[0]: c.stop.__self__ for c in stack._components()}  # type: ignore[attr-defined]  # stop is a bound method
    assert components["consumer"]._env["AGENTAUDIT_KEYS_FILE"] == str(keys_file) == str(stack.keys_file)
    assert components["simulator"]._env["AGENTAUDIT_SIGNING_KEY_FILE"] == str(key_path)
    assert "AGENTAUDIT_SIGNING_KEY_FILE" not in components["consumer"]._env  # the private key stays with the producer
    assert key_path.stat().st_mode & 0o777 == 0o600
    ring, key = KeyRing.load(keys_file), SigningKey.load(key_path)
    message, signature = b"m", key.sign(b"m")
    for agent in Simulator(SimConfig(agents=40)).fleet:
        assert ring.verify(key.key_id, message, signature, tenant=agent.tenant, agent=agent.agent_id).ok, agent
    assert not ring.verify(key.key_id, message, signature, tenant="acme", agent="billing-bot").ok


def test_provisioning_is_idempotent_keeps_other_keys_and_refuses_a_replaced_key_file(tmp_path: Path):
    first = provision_simulator_key(tmp_path)
    other = SigningKey.generate("acme-billing-1")
    add_key(tmp_path / KEYS_FILE, key_id=other.key_id, public_key=other.public_key, principal="agent:billing-bot")
    before = (tmp_path / KEYS_FILE).read_bytes(), first[0].read_bytes()
    assert provision_simulator_key(tmp_path) == first
    assert ((tmp_path / KEYS_FILE).read_bytes(), first[0].read_bytes()) == before
    first[0].unlink()  # a new key file under the same id would sign what the registered key never did
    with pytest.raises(InfraError, match="another public key"):
        provision_simulator_key(tmp_path)
