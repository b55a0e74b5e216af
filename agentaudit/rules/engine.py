"""The evaluator protocol: what the sink calls to judge a consumed batch.

The sink owns delivery (decode, store, commit); an evaluator owns judgement. The rule
engine (``agentaudit.rules``) and the built-in rules both implement it.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from agentaudit.schemas import Incident

__all__ = ["BaseEvaluator"]


class BaseEvaluator(abc.ABC):
    """Turns decoded action records into incidents.

    Incident ids must be deterministic (derived from rule id, rule revision, key and
    window) so that a batch re-read after a crash yields the same incidents, which the
    store then deduplicates.

    :attr revision: content hash of the rule set, stamped on every incident.
    """

    revision: str = ""

    @abc.abstractmethod
    def evaluate(self, records: Sequence[dict[str, Any]]) -> list[Incident]:
        """Incidents opened or updated by one consumed batch.

        :param records: decoded action dicts in partition order, each with the extra key
            ``event_hash`` (str). Where a record was read (topic, partition, offset) stays on the
            consumer's envelope, outside the record.
        """

    def on_watermark(self, watermark_us: int) -> list[Incident]:
        """Incidents due once event time reaches ``watermark_us`` (absence rules); default none."""
        return []

    def on_quiet(self, quiet_us: dict[str, int], others_us: int | None = None) -> list[Incident]:
        """Incidents due because tenants went quiet (idleness, see :mod:`agentaudit.rules.event_time`).

        :param quiet_us: per tenant, processing time in µs since its last delivery, with every
            partition read to its end (0: not quiet); ``others_us`` the same for tenants not named.
        Default none (an evaluator without event-time windows has nothing pending).
        """
        return []

    def hold(self, ceiling_us: int | None) -> None:  # noqa: B027 - an optional hook: evaluators without windows ignore it
        """Keep every watermark at or below ``ceiling_us`` until the next call (None: no ceiling).

        The inline sink calls it before each batch while some partition still has unread events: what
        they hold is older than what the others delivered, and must find its windows still open.
        """

    def snapshot(self) -> bytes:
        """Evaluator state to store alongside committed offsets; stateless evaluators return b""."""
        return b""

    def restore(self, data: bytes) -> None:  # noqa: B027 - an optional hook: stateless evaluators keep this no-op
        """Load state written by :meth:`snapshot`; the default keeps no state."""
