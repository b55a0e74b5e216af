"""Parsing the ends of a replay range: times, or Kafka offsets per partition."""

from __future__ import annotations

import pytest

from agentaudit.consumers.replay import Offsets, parse_bound, parse_range
from agentaudit.rules.exceptions import RuleError


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-01-01T00:00:00Z", 1_767_225_600_000_000),
    ("2026-01-01T01:00:00+01:00", 1_767_225_600_000_000),
    ("2026-01-01T00:00:00.000001", 1_767_225_600_000_001),
    ("1767225600000000", 1_767_225_600_000_000),
])
def test_a_time_is_epoch_microseconds(text: str, expected: int) -> None:
    assert parse_bound(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("0:1200", Offsets(((0, 1200),))),
    ("1:900, 0:1200", Offsets(((0, 1200), (1, 900)))),
    ("all:1200", Offsets((), every=1200)),
    ("ALL:0,3:5000", Offsets(((3, 5000),), every=0)),
])
def test_offsets_are_partition_offset_pairs(text: str, expected: Offsets) -> None:
    assert parse_bound(text) == expected


def test_a_partition_not_named_takes_all_or_is_unbounded() -> None:
    named = parse_bound("0:1200,1:900")
    assert isinstance(named, Offsets)
    assert (named.of(0), named.of(1), named.of(2)) == (1200, 900, None)
    mixed = parse_bound("all:10,2:7")
    assert isinstance(mixed, Offsets)
    assert (mixed.of(0), mixed.of(2)) == (10, 7)


@pytest.mark.parametrize(("text", "token"), [
    ("0:12x0", "'0:12x0'"),
    ("0:1200,1", "'1'"),
    ("0:-5", "'0:-5'"),
    ("p1:5", None),  # not offsets (no digits/all before the colon): read as a time, and refused
    ("0:1,0:2", "'0:2'"),
    ("all:1,all:2", "'all:2'"),
    ("70000:1", "'70000:1'"),
    ("0:99999999999999999999", "'0:99999999999999999999'"),
    ("yesterday", None),
])
def test_errors_name_the_bad_token_and_the_accepted_forms(text: str, token: str | None) -> None:
    with pytest.raises(RuleError) as caught:
        parse_bound(text, option="--to")
    message = str(caught.value)
    assert message.startswith("--to")
    assert repr(text) in message
    if token is not None:
        assert f"bad token {token}" in message
    assert "PARTITION:OFFSET" in message and "all:OFFSET" in message and "ISO 8601" in message


def test_each_end_of_a_range_is_a_time_or_offsets() -> None:
    assert parse_range(None, None) == {"start_us": None, "end_us": None, "start_offsets": None, "end_offsets": None}
    assert parse_range("0:5", "2026-01-01T00:00:00Z") == {
        "start_us": None, "end_us": 1_767_225_600_000_000, "start_offsets": Offsets(((0, 5),)), "end_offsets": None}
    assert parse_range("1767225600000000", "all:9") == {
        "start_us": 1_767_225_600_000_000, "end_us": None, "start_offsets": None, "end_offsets": Offsets((), 9)}
