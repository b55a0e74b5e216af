"""Arrow tables of the ``actions`` rows as read (hashes in hex) from the records tests use, to feed
``evaluate_table``.

:func:`actions_table_of` fills what a test record may lack and the sink would have set (``event_hash``,
``_partition``, ``_offset``, leaves added after schema version 1) without touching the caller's dicts,
so one list of records feeds both :meth:`RuleEvaluator.evaluate` and :meth:`RuleEvaluator.evaluate_table`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from agentaudit.consumers._columns import actions_hex_table
from agentaudit.schemas import ACTION_LEAVES

__all__ = ["actions_table_of"]

_DEFAULTS = {leaf.name: leaf.default for leaf in ACTION_LEAVES if len(leaf.path) == 1 and leaf.has_default}


def actions_table_of(records: Sequence[dict[str, Any]]) -> pa.Table:
    """The ``actions`` rows as read (hashes in hex) that the sink would build for ``records``."""
    filled = []
    for r in records:
        row = {**_DEFAULTS, **r} if _DEFAULTS.keys() - r.keys() else dict(r)
        row.setdefault("event_hash", "")
        filled.append(row)
    return actions_hex_table(filled, partitions=[r.get("_partition", 0) for r in records],
                         offsets=[r.get("_offset", i) for i, r in enumerate(records)])
