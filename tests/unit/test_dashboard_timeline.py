"""A flat conversation (one root, 36 children): the timeline marks the unconfirmed write and the missing
approval near the top, and the graph folds the loop into "… N more" runs around the red path."""

from __future__ import annotations

import re

from agentaudit.dashboard.chain import TraceTree, to_dot
from agentaudit.dashboard.timeline import focus, is_wide, timeline
from tests.dashboard_support import NOW_US, action_rows, conversation_rows


def conversation(turns: int = 6, unapproved_turn: int = 4) -> tuple[TraceTree, list[str]]:
    rows, violating = conversation_rows(tenant="acme", agent_id="bot", trace_id="t", turns=turns, start_us=NOW_US,
                                        unapproved_turn=unapproved_turn)
    tree = TraceTree.from_events(rows)
    return tree, tree.actions_of([violating])


def test_a_flat_loop_is_wide_and_a_deep_plan_is_not():
    tree, _ = conversation()
    assert len(tree) == 1 + 6 * 6 - 1 and len(tree.nodes[tree.roots[0]].children) == 35
    assert is_wide(tree)
    rows, _ = action_rows(tenant="acme", agent_id="bot", trace_id="d", actions=30, start_us=NOW_US, fanout=2)
    assert not is_wide(TraceTree.from_events(rows))


def test_the_unconfirmed_write_is_marked_with_the_missing_approval_just_before_it():
    tree, targets = conversation()
    rows = timeline(tree, targets=targets)
    marks = [(i, r.mark) for i, r in enumerate(rows) if r.mark]
    assert [m for _, m in marks] == ["missing-approval", "violation"]
    (gap, _), (hit, _) = marks
    assert hit == gap + 1
    assert (rows[hit].kind, rows[hit].name, rows[hit].action_id) == ("execute_tool", "booking.write", targets[0])
    assert "no approval since the previous booking.write call" in rows[gap].note
    assert rows[hit - 2].actor == "agent:bot" and "Shall I book" in rows[hit - 2].detail  # the proposal, stored body
    assert rows[hit - 5].actor == "human:customer" and rows[hit - 5].detail == "hmm, let me think about it"
    times = [r.at_us for r in rows if r.at_us is not None]
    assert times == sorted(times)
    start, stop = focus(rows)
    assert start <= gap < hit < stop and stop - start <= 12 and len(rows) > 30


def test_a_write_after_a_confirmation_shows_that_approval():
    tree, _ = conversation(unapproved_turn=99)  # every write confirmed
    writes = [n.action_id for n in sorted(tree.nodes.values(), key=lambda n: n.start_us) if n.name == "booking.write"]
    rows = timeline(tree, targets=[writes[3]])
    approval = next(r for r in rows if r.mark == "approval")
    violation = next(r for r in rows if r.mark == "violation")
    assert approval.kind == "approval" and approval.actor == "human:customer" and approval.detail == "yes, book it"
    assert approval.at_us < violation.at_us and not any(r.mark == "missing-approval" for r in rows)
    first_write = timeline(tree, targets=[writes[0]])
    assert [r.mark for r in first_write if r.mark] == ["approval", "violation"]


def test_the_graph_runs_left_to_right_and_folds_the_loop_around_the_red_path():
    tree, targets = conversation()
    dot = to_dot(tree, targets=targets)
    assert "rankdir=LR;" in dot
    drawn = set(re.findall(r'tooltip="([^"]+)"', dot))
    assert set(tree.path_to(targets[0])) <= drawn
    assert len(drawn) <= 10  # root + at most 8 siblings + ...
    folded = [int(n) for n in re.findall(r"… (\d+) more", dot)]
    assert len(folded) >= 2 and sum(folded) + len(drawn) == len(tree)  # before and after the violation
    children = tree.nodes[tree.roots[0]].children
    index = children.index(targets[0])
    assert {children[index - 1], children[index + 1]} <= drawn  # its neighbours in the loop stay
    # edges leave the root in time order (ordering=out keeps the loop top to bottom)
    ids = dict(re.findall(r'^  (a\d+) \[label=.*tooltip="([^"]+)"', dot, re.MULTILINE))
    order = [ids.get(t, t) for t in re.findall(r"^  a0 -> (\w+)", dot, re.MULTILINE)]
    times = [tree.nodes[ids[o]].start_us for o in order if o in ids]
    assert times == sorted(times)


def test_an_approval_of_other_arguments_is_not_the_write_s_approval():
    rows, _ = conversation_rows(tenant="acme", agent_id="bot", trace_id="t", turns=4, start_us=NOW_US,
                                unapproved_turn=99)
    turn = -1
    for row in rows:  # the SDK's approval and the write it approves carry the same args_hash
        if row["kind"] == "approval" and row["phase"] == "start":
            turn += 1
        if row["kind"] in ("approval", "execute_tool") and row["name"] in ("user_confirmation", "booking.write"):
            row["attributes"] = {"args_hash": f"hash-{turn}"}
    writes = sorted({r["action_id"] for r in rows if r["name"] == "booking.write"})
    for row in rows:
        if row["action_id"] == writes[2]:
            row["attributes"] = {"args_hash": "hash-of-something-else"}
    tree = TraceTree.from_events(rows)
    covered = [r.mark for r in timeline(tree, targets=[writes[1]]) if r.mark]
    assert covered == ["approval", "violation"]
    marked = [r for r in timeline(tree, targets=[writes[2]]) if r.mark]
    assert [r.mark for r in marked] == ["other-approval", "missing-approval", "violation"]
    assert marked[0].kind == "approval" and tree.nodes[marked[0].action_id].attributes == {"args_hash": "hash-2"}
    assert marked[1].note.startswith("no approval of its arguments (args_hash hash-of-some…) since the previous")


def test_the_first_screen_stays_short_when_the_approval_is_far_back():
    tree, _ = conversation(turns=8, unapproved_turn=99)
    ordered = sorted(tree.nodes.values(), key=lambda n: n.start_us)
    approval = next(n for n in ordered if n.kind == "approval")
    late = [n for n in ordered if n.kind == "chat"][-1]  # 40 rows after the first approval
    for node in (approval, late):
        node.attributes["args_hash"] = "same"
    rows = timeline(tree, targets=[late.action_id])
    start, stop = focus(rows)
    hit = next(i for i, r in enumerate(rows) if r.mark == "violation")
    assert stop - start <= 12 and start <= hit < stop
    near, _ = conversation()
    near_rows = timeline(near, targets=[[n for n in sorted(near.nodes.values(), key=lambda n: n.start_us)
                                         if n.name == "booking.write"][1].action_id])
    near_start, _ = focus(near_rows)
    assert any(r.mark == "approval" for r in near_rows[near_start:])  # a near approval stays in the window


def test_event_data_in_the_timeline_is_escaped_not_markup():
    from agentaudit.dashboard._pages import _conversation_html

    evil = '<img src=x onerror="alert(1)">'
    rows, violating = conversation_rows(tenant="acme", agent_id="bot", trace_id="t", turns=2, start_us=NOW_US,
                                        unapproved_turn=1)
    for row in rows:
        if row["kind"] == "message":
            row["input_body"] = evil
        if row["name"] == "booking.write":
            row.update(name=evil, actor_id=evil)
    tree = TraceTree.from_events(rows)
    page = _conversation_html(timeline(tree, targets=tree.actions_of([violating])), 0, 0)
    assert "<img" not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert page.count('data-mark="violation"') == 1
