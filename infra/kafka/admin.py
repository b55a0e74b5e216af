"""Topic administration and cluster checks, errors as ``KafkaError``."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)
from pydantic import SecretStr

from agentaudit.infra.exceptions import KafkaError
from agentaudit.infra.kafka._errors import from_exception
from agentaudit.infra.kafka._types import ConfigValue
from agentaudit.infra.kafka.acls import Grant
from agentaudit.infra.kafka.config import build_config
from agentaudit.settings import KafkaSettings

__all__ = ["KafkaAdmin"]

_ALREADY_EXISTS = "TOPIC_ALREADY_EXISTS"
_UNKNOWN_TOPIC = "UNKNOWN_TOPIC_OR_PART"
_NOT_ALLOWED = frozenset({"TOPIC_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED"})
# librdkafka does not flag its own "Timed out waiting for controller" as retriable
_TRANSIENT = frozenset({"_TIMED_OUT", "_TRANSPORT", "NOT_CONTROLLER", "REQUEST_TIMED_OUT"})
_ATTEMPT_S = 10.0  # one CreateTopics round; the rest of ``timeout`` is for retries
_RETRY_BACKOFF_S = 0.5

log = logging.getLogger(__name__)


class KafkaAdmin:
    """Creates and inspects topics; the confluent ``AdminClient`` is created on first use.

    :param settings: broker address, default partitions and replication factor
        (``AGENTAUDIT_PARTITIONS``, ``AGENTAUDIT_REPLICATION_FACTOR``).
    :param config: librdkafka overrides.

    Example::

        KafkaAdmin(settings).ensure_topics([settings.topics.actions, settings.topics.dlq])
    """

    def __init__(self, settings: KafkaSettings, config: Mapping[str, ConfigValue] | None = None) -> None:
        self._settings = settings
        self._config = build_config(settings, config)
        self._admin: AdminClient | None = None

    @property
    def _client(self) -> AdminClient:
        if self._admin is None:
            try:
                # librdkafka also takes callbacks and a logger, which the stub's config type leaves out
                self._admin = AdminClient(self._config)  # type: ignore[arg-type]  # see above
            except (KafkaException, ValueError, TypeError) as exc:
                raise from_exception(exc, "creating the Kafka admin client") from exc
        return self._admin

    def ensure_topics(self, names: Iterable[str], partitions: int | None = None,
                      config: Mapping[str, str] | None = None, timeout: float = 30.0) -> list[str]:
        """Create the topics that do not exist yet; returns the names actually created.

        Existing topics are left as they are (their partition count is not changed). A principal
        without CREATE (an agent, under ACLs) passes when the topics already exist.

        Replicas: ``settings.replication_factor``, default ``min(3, brokers)``; ``min.insync.replicas``:
        ``settings.min_insync_replicas``, default ``min(2, replicas - 1)`` (unset with one replica), so a
        topic on a 3-broker cluster keeps every ``acks=all`` write through the loss of one broker.

        :param partitions: default ``settings.partitions``.
        :param config: topic configs, e.g. ``{"retention.ms": "604800000"}``; they win over the above.
        """
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return []
        count = partitions or self._settings.partitions
        replicas = self.replication_factor(timeout)
        topic_config = {}
        insync = self._settings.min_insync_replicas or min(2, replicas - 1)
        if insync >= 1:
            topic_config["min.insync.replicas"] = str(insync)
        topic_config.update(config or {})
        pending = {name: NewTopic(name, num_partitions=count, replication_factor=replicas, config=dict(topic_config))
                   for name in wanted}
        created: list[str] = []
        refused: dict[str, KafkaError] = {}
        deadline = time.monotonic() + timeout
        while True:
            attempt = max(0.1, min(_ATTEMPT_S, deadline - time.monotonic()))
            retry: dict[str, KafkaError] = {}
            for name, outcome in self._create(list(pending.values()), attempt).items():
                if outcome is None:
                    created.append(name)
                elif outcome.code in _NOT_ALLOWED:
                    refused[name] = outcome
                elif outcome.code == _ALREADY_EXISTS:
                    continue
                elif outcome.retriable or outcome.code in _TRANSIENT:
                    retry[name] = outcome
                else:
                    raise outcome
            if not retry:
                break
            if time.monotonic() + _RETRY_BACKOFF_S >= deadline:
                raise next(iter(retry.values()))
            # A controller failover (its node killed) leaves the client waiting on a dead controller;
            # a new client bootstraps again and finds the one the cluster elected.
            log.warning("creating topics %s failed (%s); retrying with fresh metadata", sorted(retry),
                        next(iter(retry.values())))
            self._admin = None
            pending = {name: pending[name] for name in retry}
            time.sleep(_RETRY_BACKOFF_S)
        if refused:
            self._require_existing(refused, timeout)
        self._wait_visible(wanted, timeout)
        return created

    def _create(self, topics: list[NewTopic], timeout: float) -> dict[str, KafkaError | None]:
        """One CreateTopics round: ``{name: None}`` when created, else its error."""
        try:
            futures = self._client.create_topics(topics, operation_timeout=timeout, request_timeout=timeout)
        except (KafkaException, ValueError, TypeError) as exc:
            raise from_exception(exc, f"creating topics {[t.topic for t in topics]}") from exc
        outcomes: dict[str, KafkaError | None] = {}
        for name, future in futures.items():
            try:
                _result(future, timeout, "creating", name)
                outcomes[name] = None
            except KafkaError as exc:
                outcomes[name] = exc
        return outcomes

    def replication_factor(self, timeout: float = 10.0) -> int:
        """Replicas for new topics: ``settings.replication_factor``, else ``min(3, brokers in the cluster)``."""
        if self._settings.replication_factor is not None:
            return self._settings.replication_factor
        try:
            brokers = len(self._client.list_topics(timeout=timeout).brokers)
        except KafkaException as exc:
            raise from_exception(exc, "counting the brokers for the replication factor",
                                 hint=f"is a broker reachable at {self._settings.bootstrap_servers}?") from exc
        return max(1, min(3, brokers))

    def _require_existing(self, refused: dict[str, KafkaError], timeout: float) -> None:
        # Apache Kafka refuses CreateTopics without CREATE even for a topic that exists.
        try:
            existing = self._client.list_topics(timeout=timeout).topics
        except KafkaException as exc:
            raise from_exception(exc, f"reading metadata of topics {sorted(refused)}") from exc
        for name, error in refused.items():
            if name not in existing or existing[name].error is not None:
                raise KafkaError(f"topic {name!r} does not exist and this principal may not create it ({error.code}); "
                                 "have an operator create it (python -m agentaudit.infra.kafka.acls "
                                 "--create-topics) or grant CREATE", code=error.code, retriable=False) from error

    def create_acls(self, grants: Iterable[Grant], timeout: float = 30.0) -> None:
        """Add ALLOW ACLs (see :func:`agentaudit.infra.kafka.acls.grants`); existing ones are kept.

        Needs a principal allowed to ALTER the cluster (a super user) and a broker with an authorizer.
        """
        bindings = [_binding(g) for g in dict.fromkeys(grants)]
        if not bindings:
            return
        try:
            futures = self._client.create_acls(bindings, request_timeout=timeout)
        except (KafkaException, ValueError, TypeError) as exc:
            raise from_exception(exc, f"creating {len(bindings)} ACLs") from exc
        for binding, future in futures.items():
            # _binding built it from the enums; the stub also allows the str and int forms
            _result(future, timeout, "creating ACL", f"{binding.principal} {binding.operation.name} "  # type: ignore[union-attr]  # see above
                                                     f"{binding.restype.name} {binding.name}")  # type: ignore[union-attr]  # see above

    def upsert_scram_users(self, passwords: Mapping[str, SecretStr], iterations: int = 8192,
                           timeout: float = 30.0) -> None:
        """Create or change SCRAM-SHA-512 users (``{name: password}``); needs ALTER on the cluster (a super user)."""
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, iterations)
        upserts: list[UserScramCredentialAlteration] = [
            UserScramCredentialUpsertion(name, info, password.get_secret_value().encode())
            for name, password in passwords.items()]
        if not upserts:
            return
        try:
            futures = self._client.alter_user_scram_credentials(upserts, request_timeout=timeout)
        except (KafkaException, ValueError, TypeError) as exc:
            raise from_exception(exc, f"setting SCRAM credentials of {sorted(passwords)}") from exc
        for name, future in futures.items():
            _result(future, timeout, "setting the SCRAM credential of user", name)

    def _wait_visible(self, names: list[str], timeout: float) -> None:
        # Apache Kafka acknowledges a creation before every broker's metadata shows leaders;
        # wait so that the caller can produce, assign or read partitions right away.
        deadline = time.monotonic() + timeout
        while True:
            try:
                metadata = self._client.list_topics(timeout=max(0.1, deadline - time.monotonic()))
            except KafkaException as exc:
                raise from_exception(exc, f"reading metadata of new topics {names}") from exc
            missing = [n for n in names if not _ready(metadata.topics.get(n))]
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise KafkaError(f"topics {missing} were created but have no partition leaders after "
                                 f"{timeout}s; check the broker's health", code="LEADER_NOT_AVAILABLE",
                                 retriable=True)
            time.sleep(0.05)

    def delete_topics(self, names: Iterable[str], timeout: float = 30.0) -> None:
        """Delete topics; topics that do not exist are ignored."""
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return
        try:
            futures = self._client.delete_topics(wanted, operation_timeout=timeout, request_timeout=timeout)
        except (KafkaException, ValueError, TypeError) as exc:
            raise from_exception(exc, f"deleting topics {wanted}") from exc
        for name, future in futures.items():
            try:
                _result(future, timeout, "deleting", name)
            except KafkaError as exc:
                if exc.code != _UNKNOWN_TOPIC:
                    raise

    def list_topics(self, timeout: float = 10.0) -> dict[str, int]:
        """Every topic the cluster reports, with its partition count."""
        try:
            metadata = self._client.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise from_exception(exc, "listing topics",
                                 hint=f"is a broker reachable at {self._settings.bootstrap_servers}?") from exc
        return {name: len(topic.partitions) for name, topic in metadata.topics.items() if topic.error is None}

    def partitions_for(self, topic: str, timeout: float = 10.0) -> list[int]:
        """Partition ids of ``topic``.

        :raises KafkaError: the topic does not exist (``code="UNKNOWN_TOPIC_OR_PART"``).
        """
        try:
            # All-topics metadata: asking for one topic by name auto-creates it on some brokers.
            metadata = self._client.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise from_exception(exc, "reading metadata", topic=topic) from exc
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            code = info.error.name() if info is not None and info.error is not None else _UNKNOWN_TOPIC
            raise KafkaError(f"topic {topic!r} does not exist; create it with ensure_topics", code=code)
        return sorted(info.partitions)

    def describe_partitions(self, topic: str, timeout: float = 10.0) -> dict[int, tuple[int, list[int], list[int]]]:
        """``{partition: (leader broker id, replica ids, in-sync replica ids)}`` of ``topic`` (-1: no leader)."""
        try:
            metadata = self._client.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise from_exception(exc, "reading metadata", topic=topic) from exc
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            raise KafkaError(f"topic {topic!r} does not exist; create it with ensure_topics", code=_UNKNOWN_TOPIC)
        return {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in info.partitions.values()}

    def topic_config(self, topic: str, timeout: float = 10.0) -> dict[str, str]:
        """The effective configs of ``topic`` (its own and the broker defaults it inherits)."""
        resource = ConfigResource(ResourceType.TOPIC, topic)
        try:
            futures = self._client.describe_configs([resource], request_timeout=timeout)
            entries = _result(futures[resource], timeout, "describing the configs of topic", topic)
        except (KafkaException, ValueError, TypeError) as exc:
            raise from_exception(exc, f"describing the configs of topic {topic!r}") from exc
        return {name: entry.value for name, entry in entries.items() if entry.value is not None}

    def committed_offsets(self, group: str, topics: Iterable[str],
                          timeout: float = 10.0) -> dict[tuple[str, int], int | None]:
        """The committed next-offset of ``group`` per ``(topic, partition)``; ``None`` where nothing is committed."""
        parts = [TopicPartition(t, p) for t in dict.fromkeys(topics) for p in self.partitions_for(t, timeout)]
        request = [ConsumerGroupTopicPartitions(group, parts)]
        try:
            futures = self._client.list_consumer_group_offsets(request, request_timeout=timeout)
            result = _result(futures[group], timeout, "reading committed offsets of group", group)
        except (KafkaException, ValueError, TypeError) as exc:
            raise from_exception(exc, f"reading committed offsets of group {group!r}") from exc
        out: dict[tuple[str, int], int | None] = {}
        for tp in result.topic_partitions:
            out[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
        return out

    def ping(self, timeout: float = 5.0) -> bool:
        """True when cluster metadata arrives within ``timeout`` seconds."""
        try:
            metadata = self._client.list_topics(timeout=timeout)
        except (KafkaException, KafkaError):
            return False
        return bool(metadata.brokers)


def _binding(grant: Grant) -> AclBinding:
    return AclBinding(ResourceType.TOPIC if grant.resource == "topic" else ResourceType.GROUP, grant.name,
                      ResourcePatternType.PREFIXED if grant.prefixed else ResourcePatternType.LITERAL,
                      f"User:{grant.principal}", "*", AclOperation[grant.operation], AclPermissionType.ALLOW)


def _ready(topic: object) -> bool:
    return (topic is not None and getattr(topic, "error", None) is None and bool(topic.partitions)  # type: ignore[attr-defined]  # a TopicMetadata
            and all(p.leader >= 0 for p in topic.partitions.values()))  # type: ignore[attr-defined]  # as above


def _result(future: Future, timeout: float, action: str, name: str):  # type: ignore[type-arg, no-untyped-def]  # admin futures hold per-call result types
    try:
        return future.result(timeout=timeout)
    except FutureTimeout as exc:
        raise KafkaError(f"{action} {name!r} timed out after {timeout}s; is the broker up?",
                         code="_TIMED_OUT", retriable=True) from exc
    except KafkaException as exc:
        raise from_exception(exc, f"{action} {name!r}") from exc
