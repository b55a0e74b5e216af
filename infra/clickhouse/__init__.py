"""The single wrapper around clickhouse-connect (and through it chDB).

Nothing else in agentaudit imports ``clickhouse_connect``: open a :class:`Store` with
:func:`connect` and get :class:`~agentaudit.infra.exceptions.StoreError` (with the
ClickHouse exception ``code``) for every failure.
"""

from agentaudit.infra.clickhouse._errors import parse_code
from agentaudit.infra.clickhouse.store import QueryResult, Store, connect

__all__ = ["QueryResult", "Store", "connect", "parse_code"]
