"""The causal action chain: a trace's events folded into an action tree, drawn as a graph or waterfall.

Pure logic (no Streamlit, no store) so it is tested on its own. A start event and its end event
share an ``action_id`` and become one node; ``parent_action_id`` links a node to its cause. The
chain of an incident is the path from the trace root to the violating action; in a large trace
everything off that path beyond its immediate neighbours collapses into "… N more" nodes, and a long
run of siblings (a flat agent loop of 30 tool calls under one root) folds into "… 24 more calls", so a
1,000-action trace or a long conversation still draws as a few dozen readable nodes, left to right.

>>> tree = TraceTree.from_events(rows)
>>> dot = to_dot(tree, targets=tree.actions_of(incident_event_ids), max_nodes=80)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["ActionNode", "TraceTree", "to_dot", "waterfall_rows"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FAILED = frozenset({"error", "timeout", "denied", "cancelled"})


@dataclass
class ActionNode:
    """One action of a trace: its start and end events folded together."""

    action_id: str
    parent_id: str = ""
    kind: str = ""
    name: str = ""
    agent_id: str = ""
    status: str = "unset"
    start_us: int | None = None
    end_us: int | None = None
    latency_us: int | None = None
    cost_usd: float = 0.0
    depth: int = 0
    error_type: str = ""
    actor: str = ""  # ``human:alice``, ``agent:support-bot``
    detail: str = ""  # a stored body preview, else the error, else a short digest
    attributes: dict[str, str] = field(default_factory=dict)
    event_ids: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Whether the action ended in error, timeout, denial or cancellation."""
        return self.status in _FAILED

    def label(self) -> str:
        """``kind · name`` then ``status · latency · cost``: what a graph node shows."""
        parts = [self.status]
        if self.latency_us is not None:
            parts.append(_millis(self.latency_us))
        if self.cost_usd:
            parts.append(f"${self.cost_usd:.4f}")
        head = f"{self.kind} · {self.name}" if self.name else self.kind
        return f"{head}\n{' · '.join(parts)}"


def _attributes(value: Any) -> dict[str, str]:
    """A map column as a dict: Arrow hands it to pandas as a list of ``(key, value)`` pairs."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return {str(k): str(v) for k, v in value if k is not None}
    return {}


def _detail(event: Mapping[str, Any]) -> str:
    """What a timeline row shows of an event's content: body preview, error, or digest, in that order."""
    for column in ("output_preview", "input_preview", "output_body", "input_body", "error_message"):
        text = event.get(column)
        if isinstance(text, str) and text.strip():
            return " ".join(text.split())[:160]
    for column in ("output_digest", "input_digest"):
        digest = event.get(column)
        if isinstance(digest, str) and digest:
            return f"{column.split('_')[0]} {digest[:12]}…"
    return ""


def _millis(micros: int) -> str:
    return f"{micros / 1000:.1f} ms" if micros < 10_000_000 else f"{micros / 1_000_000:.1f} s"


def _micros(value: Any) -> int | None:
    """Epoch microseconds from a datetime / pandas Timestamp / int (None and NaT stay None)."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        if value != value:  # noqa: PLR0124 - NaN and pandas NaT are the only values unequal to themselves
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return (value - _EPOCH) // timedelta(microseconds=1)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class TraceTree:
    """The actions of one trace and their causal links."""

    def __init__(self, nodes: dict[str, ActionNode], event_actions: dict[str, str]) -> None:
        self.nodes = nodes
        self._event_actions = event_actions
        self.roots = [a for a, n in nodes.items() if not n.parent_id or n.parent_id not in nodes]
        for node in nodes.values():
            node.children.sort(key=lambda c: (nodes[c].start_us or 0, c))
        self.roots.sort(key=lambda a: (nodes[a].start_us or 0, a))

    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, Any]]) -> TraceTree:
        """Fold event rows (columns as in the ``actions`` table) into action nodes."""
        nodes: dict[str, ActionNode] = {}
        event_actions: dict[str, str] = {}
        for event in events:
            action_id = str(event["action_id"])
            node = nodes.get(action_id)
            if node is None:
                node = nodes[action_id] = ActionNode(action_id)
            event_actions[str(event["event_id"])] = action_id
            node.event_ids.append(str(event["event_id"]))
            node.parent_id = node.parent_id or str(event.get("parent_action_id") or "")
            node.kind = node.kind or str(event.get("kind") or "")
            node.name = node.name or str(event.get("name") or "")
            node.agent_id = node.agent_id or str(event.get("agent_id") or "")
            node.depth = int(event.get("depth") or node.depth)
            if not node.actor and event.get("actor_type"):
                node.actor = f"{event['actor_type']}:{event.get('actor_id') or ''}".rstrip(":")
            node.attributes.update(_attributes(event.get("attributes")))
            node.detail = _detail(event) or node.detail
            node.cost_usd += float(event.get("cost_usd") or 0.0)
            start = _micros(event.get("start_time"))
            if start is not None and (node.start_us is None or start < node.start_us):
                node.start_us = start
            phase = event.get("phase")
            if phase != "start":  # end and point events carry the outcome
                node.status = str(event.get("status") or node.status)
                node.error_type = str(event.get("error_type") or node.error_type)
                latency = event.get("latency_us")
                if latency is not None and latency == latency:  # noqa: PLR0124 - not NaN: NaN is the only value equal to nothing, itself included
                    node.latency_us = int(latency)
                end = _micros(event.get("end_time")) or _micros(event.get("event_time"))
                if end is not None:
                    node.end_us = end
            elif node.status == "unset":
                node.status = "running"
        for action_id, node in nodes.items():
            if node.parent_id in nodes and node.parent_id != action_id:
                nodes[node.parent_id].children.append(action_id)
            else:
                node.parent_id = node.parent_id if node.parent_id in nodes else ""
            if node.latency_us is None and node.start_us is not None and node.end_us is not None:
                node.latency_us = max(0, node.end_us - node.start_us)
        return cls(nodes, event_actions)

    def __len__(self) -> int:
        return len(self.nodes)

    def actions_of(self, event_ids: Iterable[str]) -> list[str]:
        """The action ids of the given event ids (those that are in this trace), in order, once each."""
        seen: dict[str, None] = {}
        for event_id in event_ids:
            action = self._event_actions.get(event_id)
            if action is not None:
                seen.setdefault(action, None)
        return list(seen)

    def path_to(self, action_id: str) -> list[str]:
        """Action ids from the trace root down to ``action_id`` (empty when unknown)."""
        path: list[str] = []
        seen: set[str] = set()
        current = action_id
        while current in self.nodes and current not in seen:  # a cycle in bad data must not hang the page
            seen.add(current)
            path.append(current)
            current = self.nodes[current].parent_id
        return path[::-1]

    def subtree_size(self, action_id: str) -> int:
        """Actions in the subtree rooted at ``action_id``, itself included."""
        size, stack, seen = 0, [action_id], set()
        while stack:
            current = stack.pop()
            if current in seen or current not in self.nodes:
                continue
            seen.add(current)
            size += 1
            stack.extend(self.nodes[current].children)
        return size

    def longest_path(self) -> list[str]:
        """The deepest root-to-leaf chain (a trace without a violation is drawn around it)."""
        best: list[str] = []
        for action_id in self.nodes:
            if not self.nodes[action_id].children:
                path = self.path_to(action_id)
                if len(path) > len(best):
                    best = path
        return best


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _visible(tree: TraceTree, path: Sequence[str], targets: Sequence[str], max_nodes: int) -> set[str]:
    if len(tree) <= max_nodes:
        return set(tree.nodes)
    keep = set(path) | set(targets)
    for target in targets:
        keep.update(tree.path_to(target))
    anchors = sorted(keep, key=lambda a: tree.nodes[a].depth)
    budget = max_nodes - len(keep)
    # Neighbours of the chain, failures first: the siblings an on-call engineer looks at next.
    per_anchor = max(1, budget // max(1, len(anchors)))
    for anchor in anchors:
        children = [c for c in tree.nodes[anchor].children if c not in keep]
        children.sort(key=lambda c: (not tree.nodes[c].failed, tree.nodes[c].start_us or 0))
        take = children[: min(per_anchor, max(0, max_nodes - len(keep)))]
        keep.update(take)
    for root in tree.roots:
        if len(keep) < max_nodes:
            keep.add(root)
    return keep


def _collapse_runs(tree: TraceTree, visible: set[str], keep: set[str], max_siblings: int) -> set[str]:
    """Drop long runs of siblings off the chain: a parent shows its first two and last children, the chain's
    child and its neighbours, and failures; the rest (and their subtrees) fold into "… N more" nodes."""
    shown = set(visible)
    for parent in sorted(visible, key=lambda a: tree.nodes[a].depth):
        if parent not in shown:
            continue
        children = [c for c in tree.nodes[parent].children if c in shown]
        if len(children) <= max_siblings:
            continue
        wanted = {0, 1, len(children) - 1}
        for index, child in enumerate(children):
            if child in keep:
                wanted.update((index - 1, index, index + 1))
        budget = max_siblings - len(wanted)
        for index, child in enumerate(children):
            if budget <= 0:
                break
            if index not in wanted and tree.nodes[child].failed:
                wanted.add(index)
                budget -= 1
        for index, child in enumerate(children):
            if index not in wanted:
                stack = [child]
                while stack:
                    current = stack.pop()
                    if current in shown:
                        shown.discard(current)
                        stack.extend(tree.nodes[current].children)
    return shown


def _more_label(tree: TraceTree, run: Sequence[str]) -> str:
    count = sum(tree.subtree_size(c) for c in run)
    kinds = {tree.nodes[c].kind for c in run}
    noun = "calls" if kinds == {"execute_tool"} else "messages" if kinds == {"message"} else "actions"
    label = f"… {len(run)} more {noun}" + (f" ({count} actions)" if count != len(run) else "")
    failed = sum(1 for c in run if tree.nodes[c].failed)
    return label + (f"\n{failed} failed" if failed else "")


def to_dot(tree: TraceTree, *, targets: Sequence[str] = (), path: Sequence[str] | None = None,
           max_nodes: int = 80, max_siblings: int = 8, rankdir: str = "LR") -> str:
    """Graphviz DOT source of the trace with the causal chain highlighted, drawn left to right.

    :param targets: violating action ids (filled red); the chain runs from the root to each.
    :param path: the highlighted chain; default root → first target (or the longest chain).
    :param max_nodes: above this many actions, subtrees off the chain collapse into "… N more" nodes.
    :param max_siblings: a parent with more children than this shows a few of them (the chain's child and
        its neighbours among them) and folds each run of the others into one "… N more calls" node, so a
        flat 30-call conversation stays one screen tall with the red path in it.
    """
    if path is None:
        path = tree.path_to(targets[0]) if targets else tree.longest_path()
    on_path = set(path)
    for target in targets:
        on_path.update(tree.path_to(target))
    visible = _collapse_runs(tree, _visible(tree, path, targets, max_nodes), on_path | set(targets), max_siblings)
    ids = {action_id: f"a{i}" for i, action_id in enumerate(sorted(visible, key=lambda a: (
        tree.nodes[a].depth, tree.nodes[a].start_us or 0, a)))}
    lines = [
        "digraph chain {",
        f"  rankdir={'TB' if rankdir == 'TB' else 'LR'};",
        '  graph [ordering=out, nodesep=0.12, ranksep=0.3, fontname="Helvetica"];',
        ('  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=9, height=0.3, width=0.4, '
         'margin="0.06,0.03", fillcolor="#f4f6f8", color="#9aa5b1"];'),
        '  edge [color="#9aa5b1", arrowsize=0.6];',
    ]
    target_set = set(targets)
    for action_id, dot_id in ids.items():
        node = tree.nodes[action_id]
        attrs = [f"label={_quote(node.label())}", f"tooltip={_quote(action_id)}"]
        if action_id in target_set:
            attrs += ['fillcolor="#ffd6d6"', 'color="#d62728"', "penwidth=3"]
        elif action_id in on_path:
            attrs += ['fillcolor="#fff1d6"', 'color="#d62728"', "penwidth=2.5"]
        elif node.failed:
            attrs += ['fillcolor="#ffe9d6"', 'color="#ff7f0e"']
        lines.append(f"  {dot_id} [{', '.join(attrs)}];")
    collapsed = 0
    for action_id, dot_id in ids.items():  # edges in each parent's time order (ordering=out keeps it)
        run: list[str] = []
        for child in [*tree.nodes[action_id].children, ""]:
            if child and child not in ids:
                run.append(child)
                continue
            if run:
                collapsed += 1
                lines.append(f'  c{collapsed} [label={_quote(_more_label(tree, run))}, shape=note, style="dashed", '
                             'fillcolor="white", fontcolor="#52606d"];')
                lines.append(f"  {dot_id} -> c{collapsed} [style=dashed];")
                run = []
            if child:
                style = ' [color="#d62728", penwidth=2.5]' if child in on_path and action_id in on_path else ""
                lines.append(f"  {dot_id} -> {ids[child]}{style};")
    hidden_roots = [r for r in tree.roots if r not in ids]
    if hidden_roots:
        collapsed += 1
        count = sum(tree.subtree_size(r) for r in hidden_roots)
        lines.append(f'  c{collapsed} [label={_quote(f"… {len(hidden_roots)} other roots ({count} actions)")}, '
                     'shape=note, style="dashed", fillcolor="white"];')
    lines.append("}")
    return "\n".join(lines)


def waterfall_rows(tree: TraceTree, *, highlight: Iterable[str] = (), targets: Iterable[str] = ()) -> list[dict[str, Any]]:
    """One row per action for a timeline: order, label, start/end (UTC datetimes), status, on_chain."""
    on_chain = set(highlight)
    target_set = set(targets)
    rows: list[dict[str, Any]] = []
    order = sorted(tree.nodes.values(), key=lambda n: (n.start_us or n.end_us or 0, n.depth, n.action_id))
    for index, node in enumerate(order):
        start = node.start_us if node.start_us is not None else node.end_us
        end = node.end_us if node.end_us is not None else start
        if start is None:
            continue
        if end is None or end < start:
            end = start
        rows.append({
            "order": index,
            "action": f"{index:04d} {'  ' * min(node.depth, 12)}{node.kind} {node.name}".rstrip(),
            "action_id": node.action_id,
            "kind": node.kind,
            "name": node.name,
            "status": node.status,
            "depth": node.depth,
            "start": datetime.fromtimestamp(start / 1e6, UTC),
            "end": datetime.fromtimestamp(max(end, start + 1) / 1e6, UTC),
            "latency_ms": None if node.latency_us is None else node.latency_us / 1000,
            "cost_usd": node.cost_usd,
            "on_chain": node.action_id in on_chain,
            "violating": node.action_id in target_set,
        })
    return rows
