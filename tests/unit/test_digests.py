"""Store-side digests without a store: the key file, the signed header, the chain and the leaf."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agentaudit.consumers.digests import DigestChain, DigestError, DigestSigner, load_public_keys, record_leaf
from tests.sink_support import action_record


def _chunk(partition: int, first: int, count: int) -> list[dict]:
    return [dict(action_record(n), event_hash="ab" * 32, _partition=partition, _offset=first + n)
            for n in range(count)]


def test_the_key_is_made_mode_0600_with_its_public_half_beside_it(tmp_path: Path):
    path = tmp_path / "keys" / "sink-digest.key"
    signer = DigestSigner.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert DigestSigner.load_or_create(path).key_id == signer.key_id  # read back, not replaced
    assert set(load_public_keys([path.with_name(path.name + ".pub")])) == {signer.key_id}
    assert set(load_public_keys([path])) == {signer.key_id}  # a private key file works too
    assert "PRIVATE" not in repr(signer)


def test_a_key_readable_by_others_is_refused(tmp_path: Path):
    path = tmp_path / "sink-digest.key"
    DigestSigner.load_or_create(path)
    path.chmod(0o644)
    with pytest.raises(DigestError, match="chmod 600"):
        DigestSigner.load_or_create(path)


def test_digests_sign_their_header_and_chain_per_partition(tmp_path: Path):
    signer = DigestSigner.load_or_create(tmp_path / "k")
    chain = DigestChain(signer, "agentaudit.actions")
    chain.MAX_ROWS = 4  # type: ignore[misc]  # split a chunk into several chained digests
    first = chain.build(_chunk(0, 0, 10))
    assert [len(d.offsets) for d in first] == [4, 4, 2]
    assert [d.prev_digest for d in first] == ["", first[0].digest_id, first[1].digest_id]
    signer.public_key.verify(bytes.fromhex(first[0].signature), first[0].header())
    # The head moves only when the digests are stored (advance), so a retried batch chains the same way.
    assert chain.build(_chunk(0, 10, 1))[0].prev_digest == ""
    chain.advance(first)
    assert chain.build(_chunk(0, 10, 1))[0].prev_digest == first[-1].digest_id
    assert chain.build(_chunk(1, 0, 1))[0].prev_digest == ""  # another partition, another chain


def test_the_leaf_covers_every_stored_column_but_the_position():
    record = dict(action_record(1), event_hash="ab" * 32, _partition=0, _offset=5)
    leaf = record_leaf(record)
    assert record_leaf(dict(record, _offset=6, _partition=2)) == leaf
    for field, value in (("cost_usd", 0.0011), ("status", "error"), ("attributes", {"k": "w"}), ("links", ["x"]),
                         ("actor", {"type": "human", "id": "alice"}), ("end_time_us", None), ("error_message", "x")):
        assert record_leaf(dict(record, **{field: value})) != leaf, field
    assert record_leaf(dict(record, error_message=None)) == record_leaf(dict(record, error_message=""))  # as stored
