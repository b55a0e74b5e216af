"""``agentaudit store``: the process that owns a chDB directory and serves ClickHouse's HTTP interface."""

from agentaudit.infra.store._limits import StoreLimits
from agentaudit.infra.store.exceptions import StoreLockedError
from agentaudit.infra.store.server import READER_USER, StoreServer

__all__ = ["READER_USER", "StoreLimits", "StoreLockedError", "StoreServer"]
