"""An ``actions`` Arrow table as the rule engine reads it: typed columns for the vectorized
conditions (:mod:`._vector`), and the records of the rows a stateful runtime is handed.

The table is the one the sink inserts (``consumers/_columns.py``): a nested leaf under its flat
name (``actor_type``), an epoch-microsecond ``<x>_time_us`` as the timestamp column ``<x>_time``,
``event_hash``, ``kafka_partition``, ``kafka_offset``. Columns are read as conditions read fields:
a null string as ``""``, a null number as ``0``, every number as float64 (exact below 2**53, where
event times, sequence numbers and token counts live).
"""

from __future__ import annotations

import itertools
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from agentaudit.schemas import ACTION_LEAVES, ActionField

__all__ = ["HOT_KEYS", "TableRows", "column_name"]

_TIME_SUFFIX = "_time_us"
_F64 = pa.float64()


def column_name(leaf: str) -> str:
    """The table column of an action leaf (``event_time_us`` -> ``event_time``)."""
    return leaf[:-3] if leaf.endswith(_TIME_SUFFIX) else leaf


_LEAVES: dict[str, ActionField] = {leaf.name: leaf for leaf in ACTION_LEAVES}
#: the record keys of the sink's own columns, as the per-event path's records carry them
_EXTRA = {"event_hash": "event_hash", "_partition": "kafka_partition", "_offset": "kafka_offset"}
#: the record keys nearly every rule reads, filled in when the records are made (the others on first access)
HOT_KEYS = ("event_id", "tenant", "agent_id", "trace_id", "action_id", "parent_action_id", "kind", "name", "phase",
            "event_time_us", "stream_id", "seq", "prev_hash", "event_hash")
#: a nested record's key: its (inner key, leaf) pairs (``actor``: type, id)
_NESTED: dict[str, list[tuple[str, ActionField]]] = {}
for _leaf in ACTION_LEAVES:
    if len(_leaf.path) == 2:
        _NESTED.setdefault(_leaf.path[0], []).append((_leaf.path[1], _leaf))


class TableRows:
    """One batch: its columns prepared once each (``str_``, ``num``, ``raw``), its rows as records on demand.

    ``memo`` holds each condition node's value for this batch (by node identity), so a macro that
    several rules share is computed once.
    """

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.n = table.num_rows
        self.names = frozenset(table.column_names)
        self._raw: dict[str, pa.Array] = {}
        self._prepared: dict[tuple[str, str], pa.Array] = {}
        self.memo: dict[Any, Any] = {}  # by id(node), or (id(node), "guard")
        self._all: list[dict[str, Any]] | None = None
        self._lists: dict[str, list[Any]] = {}  # per record key: its values, read on first use

    # -- columns --
    def raw(self, column: str) -> pa.Array:
        """Column ``column`` as one array (timestamps as int64 microseconds)."""
        array = self._raw.get(column)
        if array is None:
            chunked = self.table.column(column)
            array = chunked.combine_chunks() if isinstance(chunked, pa.ChunkedArray) else chunked
            if pa.types.is_timestamp(array.type):
                array = array.cast(pa.int64())
            self._raw[column] = array
        return array

    def has(self, leaf: str) -> bool:
        return column_name(leaf) in self.names

    def str_(self, leaf: str) -> Any:
        """A string leaf, nulls as ``""``; a leaf the table lacks reads as its schema default."""
        key = ("s", leaf)
        array = self._prepared.get(key)
        if array is None:
            if not self.has(leaf):
                return pa.scalar(str(_default(leaf, "")), pa.string())
            array = self._prepared[key] = pc.fill_null(self.raw(column_name(leaf)), "")
        return array

    def num(self, leaf: str) -> Any:
        """A number leaf as float64, nulls as 0."""
        key = ("n", leaf)
        array = self._prepared.get(key)
        if array is None:
            if not self.has(leaf):
                return pa.scalar(float(_default(leaf, 0) or 0), _F64)
            array = self._prepared[key] = pc.fill_null(self.raw(column_name(leaf)).cast(_F64), 0.0)
        return array

    # -- records --
    def all_records(self) -> list[dict[str, Any]]:
        """Every row as a record the per-event path's code reads (``r["kind"]``, ``r["actor"]["type"]``,
        ``r.get("event_hash", "")``). The keys nearly every rule reads (:data:`HOT_KEYS`) are filled in
        at once; a record reads any other key from its column on first access (:class:`_Row`): a rule
        reads a handful of a row's 35 fields, and building them all cost more than judging the row."""
        built = self._all
        if built is not None:
            return built
        keys: list[str] = []
        columns: list[list[Any]] = []
        for key in HOT_KEYS:
            try:
                columns.append(self._read(key))
            except KeyError:
                continue
            keys.append(key)
        made: list[_Row] = [_Row(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)] \
            if columns else [_Row() for _ in range(self.n)]
        for i, row in enumerate(made):
            row._rows = self
            row._i = i
        built = self._all = list[dict[str, Any]](made)
        return built

    def value(self, key: str, i: int) -> Any:
        """Row ``i``'s value of record key ``key``; raises KeyError for a key records do not have."""
        values = self._lists.get(key)
        if values is None:
            values = self._lists[key] = self._read(key)
        return values[i]

    def _read(self, key: str) -> list[Any]:
        names = self.names
        inners = _NESTED.get(key)
        if inners is not None:
            columns = [(inner, self._leaf(leaf)) for inner, leaf in inners]
            return [{inner: values[i] for inner, values in columns} for i in range(self.n)]
        leaf = _LEAVES.get(key)
        if leaf is not None and len(leaf.path) == 1:
            return self._leaf(leaf)
        column = _EXTRA.get(key)
        if column is not None and column in names:
            values: list[Any] = self.raw(column).to_pylist()
            return values
        raise KeyError(key)

    def _leaf(self, leaf: ActionField) -> list[Any]:
        column = column_name(leaf.name)
        if column not in self.names:
            if leaf.has_default:
                return [leaf.default] * self.n
            raise KeyError(leaf.name)
        if leaf.type == "map":
            return _dicts(self.raw(column))
        values: list[Any] = self.raw(column).to_pylist()
        if leaf.type == "array":
            return [v if v is not None else [] for v in values]
        if leaf.nullable and leaf.type == "string":
            return [v or None for v in values]  # the store keeps a null string as '': the decoded None
        return values


class _Row(dict[str, Any]):
    """One row of a :class:`TableRows` as a record: a dict that reads a key from its column when first asked.

    ``in``, ``len`` and iteration see only the keys read so far; the rule engine reads records by key only.
    """

    __slots__ = ("_i", "_rows")
    _rows: TableRows
    _i: int

    def __missing__(self, key: str) -> Any:
        value = self._rows.value(key, self._i)
        self[key] = value
        return value

    def get(self, key: str, default: Any = None) -> Any:  # dict.get would skip __missing__
        try:
            return self[key]
        except KeyError:
            return default


def _default(leaf: str, fallback: Any) -> Any:
    field = _LEAVES.get(leaf)
    return field.default if field is not None and field.has_default else fallback


def _dicts(maps: pa.MapArray) -> list[dict[str, Any]]:
    """A map column as dicts, from its flat keys and items (pyarrow's own conversion makes a list of pairs per
    row first, several times slower); a null map reads as ``{}``."""
    offsets: list[int] = maps.offsets.to_pylist()
    keys: list[Any] = maps.keys.to_pylist()
    items: list[Any] = maps.items.to_pylist()
    if not offsets or offsets[0] != 0 or offsets[-1] != len(keys):  # a slice of a larger array: the slow, sure way
        return [dict(v) if v else {} for v in maps.to_pylist()]
    nulls = maps.is_null().to_pylist() if maps.null_count else None
    out = [dict(zip(keys[a:b], items[a:b], strict=True)) for a, b in itertools.pairwise(offsets)]
    if nulls is not None:
        out = [{} if null else d for d, null in zip(out, nulls, strict=True)]
    return out
