"""The conversation view of a trace: its messages, tool calls and approvals in time order, one row each.

A real agent loop is flat (one root, dozens of children one after another), where a graph says little
and a transcript says everything. The rows mark the violating action, and the approval it had, or the
lack of one since the previous call of the same tool, so the first screen shows what went wrong.
Pure logic over :class:`~agentaudit.dashboard.chain.TraceTree` (no Streamlit, no store).

>>> rows = timeline(tree, targets=tree.actions_of(incident_event_ids))
>>> start, stop = focus(rows)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from agentaudit.dashboard.chain import ActionNode, TraceTree

__all__ = ["APPROVAL_KINDS", "BIND_ATTRIBUTE", "Mark", "TimelineRow", "focus", "is_wide", "timeline"]

#: Action kinds that approve what follows (the default pack's ``human_approval`` is ``kind = approval``).
APPROVAL_KINDS = frozenset({"approval"})

#: What the approval binds to (the default pack's ``bind: args_hash``): an approval of other arguments covers nothing.
BIND_ATTRIBUTE = "args_hash"

Mark = Literal["", "violation", "approval", "other-approval", "missing-approval"]


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """One line of the conversation: an action, or the marker of an approval that is not there."""

    action_id: str
    at_us: int | None
    offset_us: int | None  # since the trace's first action
    actor: str
    kind: str
    name: str
    status: str
    detail: str
    mark: Mark = ""
    note: str = ""  # why the row is highlighted

    @property
    def clock(self) -> str:
        """``HH:MM:SS.mmm`` UTC."""
        if self.at_us is None:
            return ""
        return datetime.fromtimestamp(self.at_us / 1e6, UTC).strftime("%H:%M:%S.%f")[:-3]

    @property
    def offset(self) -> str:
        """``+12.3 s`` since the trace began."""
        return "" if self.offset_us is None else f"+{self.offset_us / 1e6:.1f} s"


def is_wide(tree: TraceTree, *, min_children: int = 10) -> bool:
    """Whether the trace reads better as a conversation: some action has ``min_children`` or more children."""
    return any(len(node.children) >= min_children for node in tree.nodes.values())


def _content(node: ActionNode, common: dict[str, str]) -> str:
    """A stored body or error first; else the attributes that tell this action apart (those every action of
    the trace shares, such as the team, say nothing); else the digest."""
    if node.detail and not node.detail.endswith("…"):
        return node.detail
    own = {k: v for k, v in sorted(node.attributes.items()) if common.get(k) != v}
    if own:
        return ", ".join(f"{k}={v[:16] + '…' if len(v) > 16 else v}" for k, v in own.items())
    return node.detail


def _row(node: ActionNode, first_us: int | None, common: dict[str, str], mark: Mark = "",
         note: str = "") -> TimelineRow:
    at = node.start_us if node.start_us is not None else node.end_us
    offset = None if at is None or first_us is None else at - first_us
    return TimelineRow(node.action_id, at, offset, node.actor, node.kind, node.name, node.status,
                       _content(node, common), mark, note)


def timeline(tree: TraceTree, *, targets: Sequence[str] = ()) -> list[TimelineRow]:
    """Every action in time order; the first target marked ``violation`` and, before it, the approval that
    covers it marked ``approval`` (the latest approval since the previous call of the same tool) or, when
    there is none, a ``missing-approval`` row in its place."""
    order = sorted(tree.nodes.values(), key=lambda n: (n.start_us if n.start_us is not None else n.end_us or 0,
                                                       n.depth, n.action_id))
    starts = [n.start_us for n in order if n.start_us is not None]
    first = min(starts) if starts else None
    target_set = set(targets)
    shared = [n.attributes for n in order if n.attributes]
    common = {k: v for k, v in shared[0].items() if all(a.get(k) == v for a in shared)} if len(shared) > 1 else {}
    target = next((i for i, n in enumerate(order) if n.action_id in target_set), None)
    approval: int | None = None  # the approval that covers the violating action
    other: int | None = None  # the latest approval before it, of other arguments
    previous: int | None = None
    where = ""
    if target is not None:
        violating = order[target]
        bound = violating.attributes.get(BIND_ATTRIBUTE, "")
        previous = next((i for i in range(target - 1, -1, -1)
                         if order[i].kind == violating.kind and order[i].name == violating.name), None)
        for i in range(target - 1, -1 if previous is None else previous, -1):
            if order[i].kind not in APPROVAL_KINDS:
                continue
            if not bound or order[i].attributes.get(BIND_ATTRIBUTE, "") == bound:
                approval = i
                break
            other = i if other is None else other
        where = (f"no approval since the previous {violating.name} call" if previous is not None
                 else "no approval before it in this trace")
        if bound:
            where = f"no approval of its arguments ({BIND_ATTRIBUTE} {bound[:12]}…)" + where[len("no approval"):]
    rows: list[TimelineRow] = []
    for index, node in enumerate(order):
        if index == target:
            if approval is None:
                rows.append(TimelineRow("", None, None, "", "approval", "", "missing", "", "missing-approval",
                                        f"{where}: nothing authorized this {node.kind} {node.name}"))
            rows.append(_row(node, first, common, "violation", "the violating action"))
        elif index == approval:
            rows.append(_row(node, first, common, "approval", f"the approval before the violating {order[target].name}"
                             if target is not None else ""))
        elif index == other:
            rows.append(_row(node, first, common, "other-approval", f"approved other arguments ({BIND_ATTRIBUTE} differs)"))
        else:
            rows.append(_row(node, first, common, "violation" if node.action_id in target_set else ""))
    return rows


def focus(rows: Sequence[TimelineRow], *, before: int = 8, after: int = 3) -> tuple[int, int]:
    """``(start, stop)`` of the rows to show first: a few before the violation (its approval, when near, or
    the marker of the missing one, among them) and a few after; the whole list when nothing is marked."""
    marked = [i for i, row in enumerate(rows) if row.mark == "violation"]
    if not marked:
        return 0, len(rows)
    first = marked[0]
    related = [i for i, row in enumerate(rows[:first]) if row.mark in ("approval", "missing-approval")]
    # its approval joins the window when it is near; a far one would push the violation off the first screen
    near = [i for i in related if first - i <= 2 * before]
    start = max(0, min([first - before, *near]))
    return start, min(len(rows), first + after + 1)
