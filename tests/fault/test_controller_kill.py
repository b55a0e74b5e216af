"""Controller kill: SIGKILL the node the cluster names as controller, then create topics with a new
admin client, as ``agentaudit consume`` does when it starts during the failover (it creates its
topics first). librdkafka may keep waiting on the dead node until the request times out ("Timed out
waiting for controller"); ``KafkaAdmin.ensure_topics`` must retry with fresh metadata and create the
topics within its timeout instead of failing the start.

The CI run that found it: the leader-kill test's sink process died at its first start with that
error, because its start fell on the kill. Measured here before the retry, a new client's first
CreateTopics timed out in 5 of 8 kills (a KRaft broker names a random live broker as controller, and
the killed one counts as live until it is fenced); the test kills ``ROUNDS`` times with ``STARTERS``
new clients each. Runs only on the Apache Kafka tier's
3-node cluster.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from agentaudit.infra.exceptions import KafkaError
from agentaudit.infra.kafka import KafkaAdmin
from agentaudit.settings import KafkaSettings
from tests.fault.support import CLUSTER_REQUIRED, cluster_node, cluster_size, wait_for_layout

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.broker, pytest.mark.slow]

TIMEOUT_S = 30.0
ROUNDS = 3
STARTERS = 4  # processes starting at once (consume, rules, notify, ...); each may be told the dead node


def _start(settings: KafkaSettings, names: list[str]) -> tuple[list[str] | str, float, dict]:
    """One process starting now: a new admin client creates its topics; the error, if any, as text."""
    admin = KafkaAdmin(settings)
    began = time.monotonic()
    try:
        created: list[str] | str = admin.ensure_topics(names, partitions=3, timeout=TIMEOUT_S)
    except KafkaError as exc:
        return str(exc), time.monotonic() - began, {}
    took = time.monotonic() - began
    return created, took, {name: wait_for_layout(admin, name, 10) for name in names}


@pytest.mark.skipif(cluster_size() < 3, reason=CLUSTER_REQUIRED)
def test_a_starting_client_creates_its_topics_while_the_controller_is_killed(
    kafka_settings: KafkaSettings, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="agentaudit.infra.kafka.admin")
    probe = KafkaAdmin(kafka_settings)
    rounds = []
    for _ in range(ROUNDS):
        controller = probe._client.list_topics(timeout=10).controller_id  # the id clients are told
        assert controller >= 1, f"no controller in the metadata: {controller}"
        names = {f"starter-{i}": [f"aa-ctl-{uuid.uuid4().hex[:8]}.{kind}" for kind in ("actions", "control")]
                 for i in range(STARTERS)}
        cluster_node("kill", controller)
        try:
            with ThreadPoolExecutor(STARTERS) as pool:
                outcomes = dict(zip(names, pool.map(_start, [kafka_settings] * STARTERS, names.values()), strict=True))
        finally:
            cluster_node("start", controller)
        rounds.append((controller, [round(took, 1) for _, took, _ in outcomes.values()]))
        for starter, (created, took, layout) in outcomes.items():
            assert isinstance(created, list) and sorted(created) == sorted(names[starter]) and took < TIMEOUT_S, \
                (controller, starter, created, took)
            for name, parts in layout.items():  # the dead node may still lead until the cluster fences it
                assert sorted(parts) == [0, 1, 2] and all(lead >= 1 for lead, _, _ in parts.values()), (name, parts)
    retries = [r.getMessage()[:160] for r in caplog.records if "retrying" in r.getMessage()]
    print(f"\n[controller kill] (killed node, seconds each starter took) per round: {rounds}; {len(retries)} retries: {retries}")
