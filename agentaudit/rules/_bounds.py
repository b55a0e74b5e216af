"""The ends of a replay range as a user types them: an event time, or Kafka offsets per partition.

Offsets follow the ``PARTITION:OFFSET`` pairs Kafka's own tools print and read
(``kafka-get-offsets`` prints ``topic:partition:offset``; the topic is always the actions
topic here, so it is left out). A start offset is the first one read, an end offset the first
one not read, as a Kafka end offset is:

- ``0:1200,1:900`` -- partition 0 from offset 1200, partition 1 from 900, other partitions unbounded;
- ``all:1200`` -- every partition from offset 1200 (kcat's ``-o 1200`` without ``-p``);
- ``all:1200,3:5000`` -- every partition from 1200, but partition 3 from 5000.

``all`` rather than ``*`` so that the shell never globs it (zsh refuses an unmatched ``*``).

>>> parse_bound("0:1200,1:900")
Offsets(partitions=((0, 1200), (1, 900)), every=None)
>>> parse_bound("2026-01-01T00:00:00Z")
1767225600000000
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from agentaudit.rules.exceptions import RuleError

__all__ = ["FORMS", "Offsets", "offsets_sql", "parse_bound", "parse_time"]

FORMS = ("an ISO 8601 time (2026-01-01T00:00:00Z), epoch microseconds (1767225600000000), "
         "PARTITION:OFFSET pairs (0:1200,1:900) or all:OFFSET (all:1200) for every partition")
_MAX_PARTITION = 65_535  # kafka_partition is a UInt16 column
_MAX_OFFSET = 2**63 - 1


@dataclass(frozen=True)
class Offsets:
    """One end of an offset range: ``partitions`` as sorted ``(partition, offset)`` pairs, and the
    offset of every partition not named (``every``; None: unbounded there)."""

    partitions: tuple[tuple[int, int], ...] = ()
    every: int | None = None

    def of(self, partition: int) -> int | None:
        """The bound on ``partition`` (None: unbounded)."""
        return dict(self.partitions).get(partition, self.every)


def parse_time(text: str) -> int:
    """Epoch microseconds from an ISO 8601 time (UTC if no zone) or an integer of epoch microseconds."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise RuleError(f"bad time {text!r}; use ISO 8601 (2026-01-01T00:00:00Z) or epoch microseconds") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _is_offsets(text: str) -> bool:
    # An ISO time has a date (YYYY-MM-DD) before any colon; offset pairs have only digits or "all" there.
    head = text.split(":", 1)[0].strip()
    return ":" in text and (head.isdigit() or head.lower() == "all")


def parse_bound(text: str, *, option: str = "--from") -> int | Offsets:
    """A range end: epoch microseconds for a time, :class:`Offsets` for ``PARTITION:OFFSET`` pairs.

    :param option: the option the text came from, named in errors.
    :raises RuleError: naming the bad token and the accepted forms.
    """
    text = text.strip()
    if not _is_offsets(text):
        try:
            return parse_time(text)
        except RuleError as exc:
            raise RuleError(f"{option} {text!r} is neither a time nor offsets; use {FORMS}") from exc
    partitions: dict[int, int] = {}
    every: int | None = None
    for token in text.split(","):
        part, sep, off = token.strip().partition(":")
        part, off = part.strip(), off.strip()
        bad = f"{option}: bad token {token.strip()!r} in {text!r}"
        if not sep or not off.isdigit():
            raise RuleError(f"{bad}: the offset must be a whole number >= 0; use {FORMS}")
        offset = int(off)
        if offset > _MAX_OFFSET:
            raise RuleError(f"{bad}: offset {offset} is beyond Kafka's largest offset; use {FORMS}")
        if part.lower() == "all":
            if every is not None:
                raise RuleError(f"{bad}: 'all' is given twice; use {FORMS}")
            every = offset
            continue
        if not part.isdigit() or int(part) > _MAX_PARTITION:
            raise RuleError(f"{bad}: the partition must be a number 0..{_MAX_PARTITION} or 'all'; use {FORMS}")
        if int(part) in partitions:
            raise RuleError(f"{bad}: partition {int(part)} is given twice; use {FORMS}")
        partitions[int(part)] = offset
    return Offsets(tuple(sorted(partitions.items())), every)


def offsets_sql(bound: Offsets, op: str, name: str, params: dict[str, Any]) -> str:
    """A ClickHouse condition ``kafka_offset <op> bound`` per partition; adds its values to ``params``."""
    if op not in (">=", "<"):
        raise ValueError(f"offsets_sql: op must be '>=' or '<', not {op!r}")
    branches: list[str] = []
    for i, (partition, offset) in enumerate(bound.partitions):
        params[f"{name}_p{i}"] = partition
        params[f"{name}_o{i}"] = offset
        branches.append(f"kafka_partition = {{{name}_p{i}:UInt16}}, kafka_offset {op} {{{name}_o{i}:UInt64}}")
    if bound.every is None:
        rest = "1"
    else:
        params[f"{name}_all"] = bound.every
        rest = f"kafka_offset {op} {{{name}_all:UInt64}}"
    if not branches:
        return rest
    return f"multiIf({', '.join(branches)}, {rest})"
