"""The causal chain: events folded into an action tree, the highlighted path, collapsing, the waterfall."""

from __future__ import annotations

import itertools
import re

import pytest

from agentaudit.dashboard import TraceTree, to_dot, waterfall_rows
from tests.dashboard_support import NOW_US, action_rows


def tree_of(actions: int, **kw) -> tuple[TraceTree, str]:
    rows, violating = action_rows(tenant="acme", agent_id="bot", trace_id="t", actions=actions, start_us=NOW_US,
                                  violating_name="shell.exec", **kw)
    return TraceTree.from_events(rows), violating


def test_start_and_end_events_fold_into_one_node_with_outcome():
    tree, violating = tree_of(30)
    assert len(tree) == 30
    target = tree.actions_of([violating])
    node = tree.nodes[target[0]]
    assert (node.kind, node.name, node.status) == ("execute_tool", "shell.exec", "error")
    assert len(node.event_ids) == 2 and node.latency_us and node.latency_us > 0
    assert tree.roots == ["t-a00000"]


def test_path_runs_from_the_root_to_the_violating_action():
    tree, violating = tree_of(50)
    path = tree.path_to(tree.actions_of([violating])[0])
    assert path[0] == "t-a00000" and path[-1] == "t-a00049"
    for parent, child in itertools.pairwise(path):
        assert tree.nodes[child].parent_id == parent


def test_a_start_without_end_is_running_and_a_cycle_does_not_hang():
    events = [
        {"event_id": "e1", "action_id": "a", "parent_action_id": "b", "kind": "chat", "phase": "start",
         "start_time": NOW_US},
        {"event_id": "e2", "action_id": "b", "parent_action_id": "a", "kind": "plan", "phase": "point",
         "status": "ok", "start_time": NOW_US, "event_time": NOW_US},
    ]
    tree = TraceTree.from_events(events)
    assert tree.nodes["a"].status == "running"
    assert len(tree.path_to("a")) == 2  # a <- b <- a ... stops
    assert "digraph" in to_dot(tree, targets=["a"])


def test_small_traces_draw_every_node_with_kind_status_latency_cost():
    tree, violating = tree_of(20)
    dot = to_dot(tree, targets=tree.actions_of([violating]), max_nodes=80)
    assert len(re.findall(r"^  a\d+ \[", dot, re.MULTILINE)) == 20
    assert "more" not in dot
    assert "execute_tool · shell.exec\\nerror · " in dot and " ms" in dot and "$" in dot
    assert dot.count('penwidth=3') == 1  # the violating action


def test_a_thousand_action_trace_collapses_but_keeps_the_whole_chain():
    tree, violating = tree_of(1000, fanout=6)
    target = tree.actions_of([violating])
    path = tree.path_to(target[0])
    dot = to_dot(tree, targets=target, max_nodes=60)
    nodes = re.findall(r"^  a\d+ \[", dot, re.MULTILINE)
    assert len(nodes) <= 60
    assert len(path) <= len(nodes)
    drawn = set(re.findall(r'tooltip="([^"]+)"', dot))
    assert set(path) <= drawn
    hidden = sum(int(n) for n in re.findall(r"… (\d+) more", dot))
    assert hidden > 0
    assert "\\u" not in dot


def test_labels_are_escaped():
    events = [{"event_id": "e", "action_id": "x", "kind": "execute_tool", "name": 'say "hi" \\ bye', "phase": "point",
               "status": "ok", "start_time": NOW_US, "event_time": NOW_US}]
    dot = to_dot(TraceTree.from_events(events))
    assert 'say \\"hi\\" \\\\ bye' in dot


def test_waterfall_rows_mark_the_chain_in_time_order():
    tree, violating = tree_of(40)
    target = tree.actions_of([violating])
    path = tree.path_to(target[0])
    rows = waterfall_rows(tree, highlight=path, targets=target)
    assert len(rows) == 40
    assert [r["start"] for r in rows] == sorted(r["start"] for r in rows)
    assert sum(r["on_chain"] for r in rows) == len(path)
    assert [r["action_id"] for r in rows if r["violating"]] == target
    assert all(r["end"] > r["start"] for r in rows)


@pytest.mark.parametrize("count", [1, 5])
def test_longest_path_without_a_violation(count):
    rows, _ = action_rows(tenant="acme", agent_id="bot", trace_id="t", actions=count, start_us=NOW_US)
    tree = TraceTree.from_events(rows)
    assert tree.longest_path()[0] == "t-a00000"
