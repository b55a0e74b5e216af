"""The embedded stack: child processes that die with us, the tansu broker, SeaweedFS S3."""

from agentaudit.infra.embedded.ports import free_port, port_open
from agentaudit.infra.embedded.process import ManagedProcess, log_tail
from agentaudit.infra.embedded.seaweed import SeaweedS3, weed_binary
from agentaudit.infra.embedded.tansu import TansuBroker, tansu_binary

__all__ = [
    "ManagedProcess",
    "SeaweedS3",
    "TansuBroker",
    "free_port",
    "log_tail",
    "port_open",
    "tansu_binary",
    "weed_binary",
]
