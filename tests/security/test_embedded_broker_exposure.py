"""Attack: reach the embedded (unauthenticated) tansu broker from another host.

Tansu here has no SASL and no ACLs (README "Kafka security"), so its only protection is that agentaudit
binds it to loopback. Payload: a TCP connect to the broker's port on this machine's non-loopback address,
as a neighbour on the network would make; it must be refused while 127.0.0.1 answers.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from agentaudit.infra.embedded import TansuBroker


def _non_loopback_address() -> str | None:
    for probe in ("192.0.2.1", "10.255.255.255", "8.8.8.8"):  # UDP connect sends nothing; it picks a source address
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                address = s.getsockname()[0]
        except OSError:
            continue
        if not address.startswith("127."):
            return address
    return None


@pytest.mark.integration
def test_embedded_broker_is_reachable_on_loopback_only(embedded_broker_factory: Callable[..., TansuBroker]) -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to attack from")
    broker = embedded_broker_factory()
    socket.create_connection(("127.0.0.1", broker.port), timeout=2).close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address, broker.port), timeout=2).close()
