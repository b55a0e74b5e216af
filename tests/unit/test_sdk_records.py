"""The SDK's hot-path records: the fast constructors build exactly what the NamedTuple's own call builds,
so a field added to the record cannot be left out of (or shifted in) the agent thread's constructor."""

from __future__ import annotations

import inspect

from agentaudit.producers._context import Frame, new_frame
from agentaudit.producers._queue import QueueEntry, new_entry


def test_new_entry_builds_the_queue_entry_with_every_field_in_order() -> None:
    assert tuple(inspect.signature(new_entry).parameters) == QueueEntry._fields
    values = ("planner", "execute_tool", "start", "db.query", "a1", None, "t1", 2, "run-1", 1_700_000_000_000_000,
              {"model": "m"}, 512)
    entry = new_entry(*values)
    assert type(entry) is QueueEntry and entry == QueueEntry(*values)
    assert (entry.agent, entry.trace_id, entry.extra, entry.size) == ("planner", "t1", {"model": "m"}, 512)


def test_new_frame_builds_the_frame_with_every_field_in_order() -> None:
    assert tuple(inspect.signature(new_frame).parameters) == Frame._fields
    frame = new_frame("a1", "t1", 3, "planner", "run-1")
    assert type(frame) is Frame and frame == Frame("a1", "t1", 3, "planner", "run-1") and frame.depth == 3
