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
    chain.MAX_ROWS = 4  # split a chunk into several chained digests
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


def test_headers_and_leaves_are_sha256_of_rfc_8785_canonical_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import hashlib
    import json

    import rfc8785

    from agentaudit.consumers import digests

    digest = DigestChain(DigestSigner.load_or_create(tmp_path / "k"), "agentaudit.actions").build(_chunk(0, 0, 3))[0]
    assert digest.version == 2 and digest.header() == rfc8785.dumps(json.loads(digest.header()))
    record = dict(action_record(1), event_hash="ab" * 32, _partition=0, _offset=5)
    leaf = digests._leaf
    seen: list[tuple] = []
    monkeypatch.setattr(digests, "_leaf", lambda values: seen.append(values) or leaf(values))
    # 0.0, 1e-7 and 1e21 are where orjson and RFC 8785 write floats differently; a key outside the BMP
    # sorts differently by UTF-16 units (the slow path).
    for cost, attributes in ((0.0, {}), (1e-7, {"k": "v"}), (123.0, {"\U0001f600": "x", "\ufb33": "y"}),
                             (1e21, {"b": "1", "a": "2"})):
        got = record_leaf(dict(record, cost_usd=cost, attributes=attributes))
        assert got == hashlib.sha256(rfc8785.dumps(list(seen[-1]))).hexdigest()[:32], (cost, attributes)


def test_version_1_digests_written_before_rfc_8785_still_verify(tmp_path: Path):
    import hashlib

    from agentaudit.consumers.digests import _check_digest, _leaf_v1, _replace, merkle_root

    signer = DigestSigner.load_or_create(tmp_path / "k")
    digest = DigestChain(signer, "agentaudit.actions").build(_chunk(0, 0, 2))[0]
    old = _replace(digest, version=1, leaves=tuple(_leaf_v1((n,)) for n in range(2)))
    old = _replace(old, root=merkle_root(old.offsets, old.leaves))
    header = old.header()
    old = _replace(old, signature=signer.sign(header), digest_id=hashlib.sha256(header).hexdigest())
    row = (old.digest_id, old.topic, old.partition, old.first_offset, old.last_offset, len(old.offsets),
           old.min_event_time_us, old.max_event_time_us, list(old.offsets), list(old.leaves), old.root,
           old.prev_digest, old.sink_run, old.created_at_us, old.key_id, old.signature)
    checked, problem = _check_digest(row, {signer.key_id: signer.public_key})
    assert problem == "" and checked.version == 1
    tampered = (*row[:6], row[6] + 1, *row[7:])
    assert _check_digest(tampered, {signer.key_id: signer.public_key})[1].startswith("digest_id does not match")
