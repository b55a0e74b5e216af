"""The one place that talks to Kafka through confluent-kafka.

Everything else in agentaudit imports from here: :class:`KafkaProducer`, :class:`KafkaConsumer`,
:class:`KafkaAdmin`, :func:`build_config` and :func:`read_all`. Failures surface as
:class:`agentaudit.infra.KafkaError` carrying the librdkafka error ``code`` and ``retriable``.
Consumed records are confluent-kafka ``Message`` objects, re-exported here with ``TopicPartition``
and the special offsets so callers never import confluent-kafka themselves.
"""

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, OFFSET_INVALID, OFFSET_STORED, Message, TopicPartition

from agentaudit.infra.exceptions import KafkaError
from agentaudit.infra.kafka._types import ConfigValue, DeliveryCallback, Headers, Offset, RebalanceCallback
from agentaudit.infra.kafka.admin import KafkaAdmin
from agentaudit.infra.kafka.config import CONSUMER_DEFAULTS, PRODUCER_DEFAULTS, build_config
from agentaudit.infra.kafka.consumer import KafkaConsumer, to_topic_partitions
from agentaudit.infra.kafka.producer import KafkaProducer
from agentaudit.infra.kafka.reading import read_all

__all__ = [
    "CONSUMER_DEFAULTS",
    "OFFSET_BEGINNING",
    "OFFSET_END",
    "OFFSET_INVALID",
    "OFFSET_STORED",
    "PRODUCER_DEFAULTS",
    "ConfigValue",
    "DeliveryCallback",
    "Headers",
    "KafkaAdmin",
    "KafkaConsumer",
    "KafkaError",
    "KafkaProducer",
    "Message",
    "Offset",
    "RebalanceCallback",
    "TopicPartition",
    "build_config",
    "read_all",
    "to_topic_partitions",
]
