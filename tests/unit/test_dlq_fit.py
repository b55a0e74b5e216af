"""Dead letters fit the broker's limit, and the quarantine file stays within its bound (pure logic; the
broker-facing attacks are in tests/security/test_poison_consumer.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from agentaudit.consumers.dlq import (
    ORIGINAL_KEY_SHA256_HEADER,
    ORIGINAL_KEY_SIZE_HEADER,
    ORIGINAL_SHA256_HEADER,
    ORIGINAL_SIZE_HEADER,
    Quarantine,
    _Letter,
    dlq_headers,
    fit,
)

LIMIT = 1_000_000


def _wire(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> int:
    return len(key or b"") + len(value or b"") + sum(len(k) + len(v) for k, v in headers)


@pytest.mark.parametrize("size", [0, 1000, 990_000, 998_000, 999_990, 1_000_000, 1_500_000, 20_000_000])
def test_a_dead_letter_never_exceeds_the_limit(size: int) -> None:
    headers = dlq_headers("undecodable", "e" * 5000, "aa.actions", 7, 123_456_789)
    value = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    key, cut, out = fit(b"stream-1", value, headers, LIMIT)
    assert _wire(key, cut, out) + 1024 <= LIMIT  # room left for librdkafka's framing
    named = dict(out)
    if cut == value:
        assert ORIGINAL_SIZE_HEADER not in named
    else:
        assert value.startswith(cut) and len(cut) > LIMIT - 5_000
        assert int(named[ORIGINAL_SIZE_HEADER]) == size
        assert named[ORIGINAL_SHA256_HEADER].decode() == hashlib.sha256(value).hexdigest()


def test_a_huge_key_is_cut_too() -> None:
    key = b"k" * 900_000
    out_key, value, headers = fit(key, b"v" * 900_000, dlq_headers("bad_magic", "x", "t", 0, 0), LIMIT)
    named = dict(headers)
    assert out_key == key[:1024] and int(named[ORIGINAL_KEY_SIZE_HEADER]) == 900_000
    assert named[ORIGINAL_KEY_SHA256_HEADER].decode() == hashlib.sha256(key).hexdigest()
    assert value == b"v" * 900_000  # fits once the key is cut


def test_a_null_value_stays_null() -> None:
    assert fit(None, None, [], LIMIT) == (None, None, [])


def test_the_quarantine_file_stays_within_its_bound(tmp_path: Path) -> None:
    path = tmp_path / "q" / "quarantine.jsonl"
    quarantine = Quarantine(path, max_bytes=4 * 1024 * 1024)
    letter = _Letter(b"k", b"v" * 100_000, [], "undecodable", "t:0:1", key=b"k", value=b"v" * 100_000, headers=[])
    for _ in range(100):  # ~13 MB of entries into a 4 MiB bound
        assert quarantine.write(letter, "TOPIC_EXCEPTION")
    rotated = path.with_name(path.name + ".1")
    assert path.stat().st_size + rotated.stat().st_size <= 4 * 1024 * 1024
    assert path.stat().st_mode & 0o777 == 0o600
    entry = json.loads(path.read_text().splitlines()[-1])
    assert entry["reason"] == "undecodable" and entry["source"] == "t:0:1"


def test_an_entry_larger_than_the_bound_is_refused_not_written(tmp_path: Path) -> None:
    quarantine = Quarantine(tmp_path / "quarantine.jsonl", max_bytes=4 * 1024 * 1024)
    big = b"v" * 3_000_000
    assert not quarantine.write(_Letter(None, big, [], "oversized", "t:0:2", value=big, headers=[]), "refused")
    assert not (tmp_path / "quarantine.jsonl").exists()
