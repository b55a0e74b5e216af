"""An agent that stamps its events far in the past or the future must not stop the inline sink reading anyone
else's partitions (consumers/alignment.py), nor move the watermark ceiling for the others."""

from __future__ import annotations

from agentaudit.consumers.alignment import EventTimeAlignment

HOSTILE, P1, P2 = ("actions", 0), ("actions", 1), ("actions", 2)
S = 1_000_000
YEAR_2001, NOW, YEAR_2099 = 978_307_200 * S, 1_796_000_000 * S, 4_070_908_800 * S


def _paused_share(alignment: EventTimeAlignment, key: tuple[str, int], seconds: int) -> float:
    """The share of ``seconds`` plans (one a second) in which ``key`` stayed paused, every partition unread."""
    paused = 0
    for now in range(seconds):
        alignment.plan([HOSTILE, P1, P2], float(now))
        paused += key in alignment.paused
    return paused / seconds


def test_a_flood_of_old_event_times_slows_the_other_partitions_and_never_stops_them() -> None:
    """The flooding partition is always unread and far behind: the others are ahead of it for ever."""
    alignment = EventTimeAlignment(drift_us=30 * S, max_pause_s=30.0)
    alignment.delivered(HOSTILE, YEAR_2001)
    alignment.delivered(P1, NOW)
    alignment.delivered(P2, NOW)
    share = _paused_share(alignment, P1, 600)
    assert HOSTILE not in alignment.paused
    assert 0.0 < share <= 0.55, share  # paused at most about half the time: it still reads
    longest = run = 0
    for now in range(600, 1200):
        alignment.plan([HOSTILE, P1, P2], float(now))
        run = run + 1 if P1 in alignment.paused else 0
        longest = max(longest, run)
    assert longest <= 31, longest


def test_a_future_event_time_pauses_only_its_own_partition_and_never_raises_the_ceiling() -> None:
    alignment = EventTimeAlignment(drift_us=30 * S)
    alignment.delivered(HOSTILE, YEAR_2099)
    alignment.delivered(P1, NOW)
    alignment.delivered(P2, NOW + 10 * S)
    assert alignment.ceiling([HOSTILE, P1, P2], 30 * S) == NOW - 30 * S
    pause, _ = alignment.plan([HOSTILE, P1, P2], 0.0)
    assert pause == [HOSTILE]
    _, resume = alignment.plan([HOSTILE], 1.0)  # the others read to their end: it is the slowest unread
    assert resume == [HOSTILE]
    assert alignment.ceiling([P1, P2], 30 * S) == NOW - 30 * S
