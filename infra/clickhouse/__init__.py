"""The single wrapper around clickhouse-connect (and through it chDB).

Nothing else in agentaudit imports ``clickhouse_connect``: open a :class:`Store` with
:func:`connect` and get :class:`~agentaudit.infra.exceptions.StoreError` (with the
ClickHouse exception ``code``) for every failure.

>>> with connect(StoreSettings(), readonly=True) as store:
...     store.query("SELECT count() FROM incidents WHERE severity = {s:String}", {"s": "critical"}).first_item

Read-only sessions
    ``connect(..., readonly=True)`` sends ``readonly = 2`` with every request (writes and DDL
    refused, query limits such as ``max_result_rows`` still allowed). In production give the
    dashboard/analyst user a settings profile with ``readonly = 2`` (``infra/compose/clickhouse-users.sh``
    creates ``agentaudit_reader`` that way) and ``GRANT SELECT ON agentaudit.*`` only; a profile with
    ``readonly = 1`` also works, but then the client may not set any query setting, so limits must
    live in the profile. When the server already reports ``readonly > 0`` the wrapper sends nothing.

Idempotent inserts
    ``insert_arrow(..., settings={"insert_deduplication_token": token})``: ClickHouse drops a
    block whose token it has already seen. Replicated tables always deduplicate; a plain
    ``MergeTree`` only when created with ``SETTINGS non_replicated_deduplication_window = N``
    (the last N tokens are remembered). Verified in chDB 26.9 and through ``agentaudit store``.
"""

from agentaudit.infra.clickhouse._errors import parse_code
from agentaudit.infra.clickhouse.store import QueryResult, Store, connect

__all__ = ["QueryResult", "Store", "connect", "parse_code"]
