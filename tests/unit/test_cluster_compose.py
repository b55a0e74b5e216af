"""Review checks of infra/docker-compose.cluster.yml (Docker does not run here): every file it mounts exists,
each ClickHouse server has its own shard/replica macros matching remote_servers, Keeper ids are unique, Kafka
is 3 KRaft brokers at replication factor 3 with min.insync.replicas=2, and migrate uses the configured cluster."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

INFRA = Path(__file__).parents[2] / "infra"
COMPOSE = INFRA / "docker-compose.cluster.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host file of the service's bind mounts (named volumes left out)."""
    out: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            out[target] = (INFRA / source).resolve()
    return out


def _clickhouse(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if str(s.get("image", "")).startswith("clickhouse/clickhouse-server")}


def _cluster_xml(compose: dict[str, Any]) -> ET.Element:
    (path,) = {p for s in _clickhouse(compose).values() for t, p in _mounts(s).items() if t.endswith("/cluster.xml")}
    return ET.parse(path).getroot()


def test_every_referenced_file_exists(compose: dict[str, Any]) -> None:
    files = [p for s in compose["services"].values() for p in _mounts(s).values()]
    files += [(INFRA / c["file"]).resolve() for c in compose.get("configs", {}).values()
              if not c["file"].startswith("./secrets/")]  # secrets/ is made by the operator, never in git
    files += [(INFRA / s["build"]["context"] / s["build"]["dockerfile"]).resolve()
              for s in compose["services"].values() if "build" in s]
    assert len(files) >= 16
    missing = [str(p) for p in files if not p.is_file()]
    assert missing == []
    for path in files:
        if path.suffix == ".xml":
            ET.parse(path)  # well-formed


def test_two_shards_of_two_replicas_with_unique_macros_matching_remote_servers(compose: dict[str, Any]) -> None:
    servers = _clickhouse(compose)
    assert len(servers) == 4
    macros: dict[str, tuple[str, str, str]] = {}
    for name, service in servers.items():
        (path,) = [p for t, p in _mounts(service).items() if t.endswith("/macros.xml")]
        node = ET.parse(path).getroot().find("macros")
        assert node is not None, path
        macros[name] = (node.findtext("cluster", ""), node.findtext("shard", ""), node.findtext("replica", ""))
        assert service["hostname"] == name
    assert len({(shard, replica) for _, shard, replica in macros.values()}) == 4
    assert len({replica for _, _, replica in macros.values()}) == 4  # {replica} is unique within each shard path
    # remote_servers lists each server under the shard its macros name.
    (cluster,) = list(_cluster_xml(compose).find("remote_servers"))  # type: ignore[arg-type]  # None fails the test
    layout = {host.text: str(number) for number, shard in enumerate(cluster.findall("shard"), start=1)
              for host in shard.iter("host")}
    assert layout == {name: shard for name, (_, shard, _) in macros.items()}
    assert all(shard.findtext("internal_replication") == "true" for shard in cluster.findall("shard"))
    assert {c for c, _, _ in macros.values()} == {cluster.tag}


def test_migrate_runs_with_the_configured_cluster_name(compose: dict[str, Any]) -> None:
    (cluster,) = list(_cluster_xml(compose).find("remote_servers"))  # type: ignore[arg-type]  # None fails the test
    command = compose["services"]["migrate"]["command"]
    assert command[:2] == ["migrate", "--cluster"] and command[2] == cluster.tag
    assert set(compose["services"]["migrate"]["depends_on"]) == set(_clickhouse(compose))


def test_keeper_quorum_of_three_with_unique_ids_known_to_the_servers(compose: dict[str, Any]) -> None:
    keepers = {n: s for n, s in compose["services"].items() if "clickhouse-keeper" in str(s.get("image", ""))}
    ids = {n: s["environment"]["KEEPER_SERVER_ID"] for n, s in keepers.items()}
    assert len(keepers) == 3 and len(set(ids.values())) == 3
    (config,) = {p for s in keepers.values() for p in _mounts(s).values()}
    raft = {srv.findtext("id"): srv.findtext("hostname") for srv in ET.parse(config).getroot().iter("server")}
    assert raft == {ids[n]: n for n in keepers}
    zookeeper = {node.findtext("host") for node in _cluster_xml(compose).find("zookeeper")}  # type: ignore[union-attr]  # None fails the test
    assert zookeeper == set(keepers)


def test_three_kraft_brokers_replicate_every_topic_three_times(compose: dict[str, Any]) -> None:
    brokers = {n: s for n, s in compose["services"].items() if str(s.get("image", "")).startswith("apache/kafka")}
    assert len(brokers) == 3
    envs = [s["environment"] for s in brokers.values()]
    assert len({e["KAFKA_NODE_ID"] for e in envs}) == 3
    voters = {v.split("@")[1].split(":")[0] for v in envs[0]["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")}
    assert voters == set(brokers)
    for env in envs:
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3 and env["KAFKA_MIN_INSYNC_REPLICAS"] == 2
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3
    assert compose["services"]["kafka-setup"]["environment"]["AGENTAUDIT_REPLICATION_FACTOR"] == "3"


def test_consumers_store_only_and_scale_with_rules_workers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["consumer"]["command"][:2] == ["consume", "--no-rules"]
    assert services["rules"]["command"][:2] == ["rules", "run"]
    assert services["consumer"]["deploy"]["replicas"] > 1 and services["rules"]["deploy"]["replicas"] > 1
