"""Property tests of the spool as the worker drives it: whatever the event sizes, the window limits
(records and bytes), the broker's answers (confirmed, or failed and handed out again) and the
process restarts, every appended record is delivered exactly once, in order, and the spool ends
empty. This is the invariant the size-cut window once broke (records read past and never sent)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentaudit.producers._spool import Spool

# one step: append a burst, or send a window (limit, byte budget, broker answer), or restart
_append = st.tuples(st.just("append"), st.lists(st.integers(0, 3000), min_size=1, max_size=40))
_window = st.tuples(st.just("window"), st.integers(1, 60), st.one_of(st.none(), st.integers(1, 20_000)),
                    st.sampled_from(["ok", "ok", "ok", "stall"]))
_restart = st.tuples(st.just("restart"))
_steps = st.lists(st.one_of(_append, _window, _restart), min_size=1, max_size=60)


def _open(root: Path, segment_bytes: int) -> Spool:
    spool = Spool(root, max_bytes=1 << 30, segment_bytes=segment_bytes)
    spool.open()
    return spool


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_steps, segment_bytes=st.sampled_from([1024, 4096, 65_536]))
def test_every_record_is_delivered_once_in_order_whatever_the_windows_stalls_and_restarts(
        steps: list[tuple], segment_bytes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spool = _open(root, segment_bytes)
        appended: list[bytes] = []
        delivered: list[bytes] = []

        def send(limit: int, budget: int | None, answer: str) -> bool:
            window = spool.read(limit, budget)
            if not window:
                return False
            assert len(window) <= limit
            if budget is not None and len(window) > 1:
                assert sum(len(r.key) + len(r.value) for r in window) <= budget
            if answer == "stall":  # no report: the worker hands the same records out again
                spool.rewind()
                return True
            delivered.extend(r.value for r in window)
            spool.confirm(window[-1].end, len(window))
            return True

        for step in steps:
            if step[0] == "append":
                for size in step[1]:
                    value = len(appended).to_bytes(4, "big") + b"x" * size
                    assert spool.append(b"agent/stream", value)
                    appended.append(value)
                spool.sync()
            elif step[0] == "window":
                send(*step[1:])
            else:
                spool.close()
                spool = _open(root, segment_bytes)
        while send(37, 9000, "ok"):  # the broker comes back: drain what is left
            pass
        assert delivered == appended, "records skipped, repeated or reordered"
        assert spool.empty and spool.pending == 0
        spool.close()


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 2000), min_size=1, max_size=200), budget=st.integers(1, 5000))
def test_a_byte_budget_never_moves_the_read_position_past_a_record_left_out(sizes: list[int], budget: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spool = _open(Path(tmp), 4096)
        values = [i.to_bytes(4, "big") + b"y" * size for i, size in enumerate(sizes)]
        for value in values:
            spool.append(b"k", value)
        read: list[bytes] = []
        while batch := spool.read(10_000, budget):
            read.extend(r.value for r in batch)
        assert read == values
        spool.pending = 1  # keep nothing: the directory goes away
        spool.close()
