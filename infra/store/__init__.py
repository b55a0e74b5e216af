"""``agentaudit store``: the process that owns a chDB directory and serves ClickHouse's HTTP interface."""

from agentaudit.infra.store.exceptions import StoreLockedError
from agentaudit.infra.store.server import StoreServer

__all__ = ["StoreLockedError", "StoreServer"]
