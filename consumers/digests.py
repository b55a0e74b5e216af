"""Store-side digests: signed records of what the sink stored, and the check that re-reads the store.

After every batch the sink writes one signed :class:`Digest` per partition range (a 16-byte leaf per
stored row, a root, a link to the previous digest); :func:`verify_store` (``agentaudit verify
--store``) recomputes the leaves and names each row modified, deleted or added after the fact. The
design (after CloudTrail's digest files) and its limits: ``docs/digests.md``.

>>> signer = DigestSigner.load_or_create(Path("keys/sink-digest.key"))
>>> report = verify_store(store, {signer.key_id: signer.public_key})
>>> report.ok, report.counts()
"""

from __future__ import annotations

import binascii
import hashlib
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agentaudit.consumers.exceptions import ConsumerError
from agentaudit.schemas.canonical import canonical_text, jcs_number

__all__ = [
    "DIGESTS_SCHEMA",
    "DIGEST_VERSION",
    "Digest",
    "DigestChain",
    "DigestError",
    "DigestSigner",
    "Finding",
    "StoreReport",
    "digests_table",
    "load_public_keys",
    "record_leaf",
    "verify_store",
]

#: 2: leaves and headers in RFC 8785 canonical JSON. 1 (agentaudit before it): leaves in orjson's form,
#: which wrote floats differently; :func:`verify_store` still checks version-1 digests with their own leaves.
DIGEST_VERSION = 2
_LEAF_HEX = 32  # 16 bytes
_LEAF_BYTES = _LEAF_HEX // 2
_LEAF_TYPE = pa.binary(_LEAF_BYTES)
_COST = 25  # index of cost_usd, the one float among a leaf's values
_LEAF_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
_ASTRAL = re.compile(rb"[\xf0-\xf4]")  # a 4-byte UTF-8 sequence: a key outside the BMP sorts by UTF-16 units


class DigestError(ConsumerError):
    """A digest key could not be read or written, or a digest record is malformed."""


# -- leaves -----------------------------------------------------------------------------------

def _leaf(values: tuple[Any, ...]) -> str:
    """Version 2: SHA-256 of the values' RFC 8785 form. orjson writes that form for everything a row holds
    but the cost (a float), which goes in as RFC 8785 writes it; anything else (an integer beyond 2**53, a
    map key outside the BMP) takes the general path."""
    fast = list(values)
    try:
        fast[_COST] = orjson.Fragment(jcs_number(values[_COST]))
        data = orjson.dumps(fast, option=_LEAF_OPTIONS)
        if not data.isascii() and _ASTRAL.search(data):
            data = canonical_text(values)[0].encode()
    except (TypeError, ValueError):
        data = canonical_text(values)[0].encode()
    return hashlib.sha256(data).hexdigest()[:_LEAF_HEX]


def _leaf_v1(values: tuple[Any, ...]) -> str:
    """Version 1, kept to verify digests written before RFC 8785."""
    return hashlib.sha256(orjson.dumps(values, option=orjson.OPT_SORT_KEYS)).hexdigest()[:_LEAF_HEX]


def record_leaf(r: Mapping[str, Any]) -> str:
    """The leaf of a decoded action record, over the values the ``actions`` row holds (``_columns``)."""
    actor = r["actor"]
    return _leaf((
        r["event_id"], r["tenant"], r["agent_id"], r["agent_version"], r["run_id"], r["trace_id"], r["action_id"],
        r["parent_action_id"] or "", r["links"], r["depth"], r["stream_id"], r["seq"], r["prev_hash"],
        r["event_hash"], r["kind"], r["name"], r["phase"], r["status"], r["error_type"] or "",
        r["error_message"] or "", actor["type"], actor["id"], r["model"] or "", r["input_tokens"],
        r["output_tokens"], float(r["cost_usd"]), r["latency_us"], r["start_time_us"], r["end_time_us"],
        r["event_time_us"], r["input_digest"] or "", r["output_digest"] or "", r["input_body"] or "",
        r["output_body"] or "", r["payload_bytes"], r["attributes"], r["environment"], r.get("later_copy", 0),
    ))


#: The same values read back from ``actions``, in the order :func:`record_leaf` hashes them.
_ROW_SQL = (
    "event_id, toString(tenant), toString(agent_id), toString(agent_version), run_id, trace_id, action_id, "
    "parent_action_id, links, toUInt32(depth), stream_id, seq, prev_hash, event_hash, toString(kind), toString(name), "
    "toString(phase), toString(status), toString(error_type), error_message, toString(actor_type), "
    "toString(actor_id), toString(model), input_tokens, output_tokens, cost_usd, latency_us, "
    "toUnixTimestamp64Micro(start_time), if(isNull(end_time), NULL, toUnixTimestamp64Micro(assumeNotNull(end_time))), "
    "toUnixTimestamp64Micro(event_time), input_digest, output_digest, input_body, output_body, payload_bytes, "
    "CAST(attributes, 'Map(String, String)'), toString(environment), later_copy"
)


def _row_leaf(row: Sequence[Any], version: int = DIGEST_VERSION) -> str:
    values = list(row)
    values[8] = list(values[8])
    values[35] = dict(values[35])
    return (_leaf if version >= 2 else _leaf_v1)(tuple(values))


# -- keys -------------------------------------------------------------------------------------

class DigestSigner:
    """The sink's Ed25519 digest key; the private key file is created mode 0600 when absent.

    :param private_key: the key. Use :meth:`load_or_create` to read it from its file.

    >>> signer = DigestSigner.load_or_create(Path("~/.agentaudit/keys/sink-digest.key").expanduser())
    >>> signer.key_id, signer.public_pem()
    """

    __slots__ = ("_key", "public_key", "key_id")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    @classmethod
    def load_or_create(cls, path: Path) -> DigestSigner:
        """Read the PEM key at ``path``, or generate one there (mode 0600) with its public key in ``<path>.pub``."""
        path = Path(path)
        try:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                key = Ed25519PrivateKey.generate()
                pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:  # another process made it first: use theirs
                    return cls.load_or_create(path)
                with os.fdopen(fd, "wb") as out:
                    out.write(pem)
                signer = cls(key)
                path.with_name(path.name + ".pub").write_bytes(signer.public_pem())
                return signer
            mode = path.stat().st_mode & 0o077
            if mode:
                raise DigestError(f"digest key {path} is readable by group or others (mode {oct(mode)}); "
                                  f"run `chmod 600 {path}`")
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except OSError as exc:
            raise DigestError(f"cannot read or create the digest key {path}: {exc}; check the directory "
                              "(AGENTAUDIT_SINK_DIGEST_KEY)") from exc
        except ValueError as exc:
            raise DigestError(f"digest key {path} is not a PEM private key: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise DigestError(f"digest key {path} is not an Ed25519 key")
        return cls(key)

    def sign(self, message: bytes) -> str:
        """Hex Ed25519 signature of ``message``."""
        return self._key.sign(message).hex()

    def public_pem(self) -> bytes:
        """The public key as PEM (SubjectPublicKeyInfo), what ``verify --store`` needs."""
        return self.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def __repr__(self) -> str:
        return f"DigestSigner(key_id={self.key_id!r})"


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 over the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_keys(paths: Iterable[Path]) -> dict[str, Ed25519PublicKey]:
    """``{key_id: public key}`` from PEM files: public keys, or private keys (their public half is used)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise DigestError(f"cannot read digest key {path}: {exc}") from exc
        try:
            if b"PRIVATE KEY" in data:
                private = serialization.load_pem_private_key(data, password=None)
                public = private.public_key()
            else:
                public = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise DigestError(f"{path} is not a PEM key: {exc}") from exc
        if not isinstance(public, Ed25519PublicKey):
            raise DigestError(f"{path} is not an Ed25519 key")
        keys[key_id(public)] = public
    return keys


# -- digest records ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Digest:
    """One signed digest over the rows the sink stored from one partition range."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    offsets: tuple[int, ...]
    leaves: tuple[str, ...]
    min_event_time_us: int
    max_event_time_us: int
    prev_digest: str
    sink_run: str
    created_at_us: int
    key_id: str
    root: str = ""
    signature: str = ""
    digest_id: str = ""
    version: int = DIGEST_VERSION

    def header(self) -> bytes:
        """The canonical bytes that are signed (and hashed into ``digest_id``): RFC 8785, which for these
        ASCII keys, integers below 2**53 and ASCII strings is exactly what orjson writes (a test checks)."""
        return orjson.dumps({
            "version": self.version, "topic": self.topic, "partition": self.partition,
            "first_offset": self.first_offset, "last_offset": self.last_offset, "rows": len(self.offsets),
            "min_event_time_us": self.min_event_time_us, "max_event_time_us": self.max_event_time_us,
            "root": self.root, "prev_digest": self.prev_digest, "sink_run": self.sink_run,
            "created_at_us": self.created_at_us, "key_id": self.key_id,
        }, option=orjson.OPT_SORT_KEYS)

    def to_json(self) -> bytes:
        """The Kafka record value: header fields plus offsets, leaves, signature and id."""
        return orjson.dumps({
            "version": self.version, "digest_id": self.digest_id, "topic": self.topic, "partition": self.partition,
            "first_offset": self.first_offset, "last_offset": self.last_offset, "rows": len(self.offsets),
            "min_event_time_us": self.min_event_time_us, "max_event_time_us": self.max_event_time_us,
            "offsets": list(self.offsets), "leaves": list(self.leaves), "root": self.root,
            "prev_digest": self.prev_digest, "sink_run": self.sink_run, "created_at_us": self.created_at_us,
            "key_id": self.key_id, "signature": self.signature,
        })


def merkle_root(offsets: Sequence[int], leaves: Sequence[str]) -> str:
    """Hex SHA-256 over the (offset, leaf) pairs in order: 8 bytes big-endian offset, 16 bytes leaf."""
    h = hashlib.sha256()
    for offset, leaf in zip(offsets, leaves, strict=True):
        h.update(offset.to_bytes(8, "big"))
        h.update(bytes.fromhex(leaf))
    return h.hexdigest()


class DigestChain:
    """Builds the signed digests of one sink process; each partition's digests chain by ``prev_digest``.

    :param signer: the sink's key.
    :param topic: the actions topic the rows come from.

    >>> chain = DigestChain(signer, "agentaudit.actions")
    >>> digests = chain.build(chunk)    # one partition's stored records, in offset order
    >>> chain.advance(digests)          # once the store has them
    """

    #: Rows per digest at most, so that one fits a Kafka message (about 45 bytes a row in JSON).
    MAX_ROWS = 8192

    def __init__(self, signer: DigestSigner, topic: str) -> None:
        self.signer = signer
        self.topic = topic
        self.sink_run = uuid.uuid4().hex
        self._heads: dict[int, str] = {}

    def build(self, chunk: Sequence[Mapping[str, Any]], *, partition: int | None = None,
              offsets: Sequence[int] | None = None) -> list[Digest]:
        """The signed digests of ``chunk`` (one per ``MAX_ROWS`` rows, chained); heads move only on :meth:`advance`.

        ``partition`` and ``offsets`` say where the records were read (the sink's envelopes); default the
        records' ``_partition`` and ``_offset`` keys (rows read back from the store).
        """
        if partition is None:
            partition = chunk[0]["_partition"]
        positions = tuple(offsets) if offsets is not None else tuple(r["_offset"] for r in chunk)
        out: list[Digest] = []
        prev = self._heads.get(partition, "")
        for start in range(0, len(chunk), self.MAX_ROWS):
            end = start + self.MAX_ROWS
            digest = self._one(chunk[start:end], partition, positions[start:end], prev)
            out.append(digest)
            prev = digest.digest_id
        return out

    def _one(self, chunk: Sequence[Mapping[str, Any]], partition: int, offsets: tuple[int, ...], prev: str) -> Digest:
        leaves = tuple(record_leaf(r) for r in chunk)
        times = [r["event_time_us"] for r in chunk]
        digest = Digest(
            topic=self.topic, partition=partition, first_offset=offsets[0], last_offset=offsets[-1],
            offsets=offsets, leaves=leaves, min_event_time_us=min(times), max_event_time_us=max(times),
            prev_digest=prev, sink_run=self.sink_run, created_at_us=time.time_ns() // 1000,
            key_id=self.signer.key_id, root=merkle_root(offsets, leaves),
        )
        header = digest.header()
        return _replace(digest, signature=self.signer.sign(header), digest_id=hashlib.sha256(header).hexdigest())

    def advance(self, digests: Iterable[Digest]) -> None:
        """Make these (stored) digests the heads their partitions' next digests point back to."""
        for digest in digests:
            self._heads[digest.partition] = digest.digest_id

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop heads of partitions no longer owned; a later owner starts its own chain."""
        for partition in partitions:
            self._heads.pop(partition, None)


def _replace(digest: Digest, **changes: Any) -> Digest:
    fields = {name: getattr(digest, name) for name in Digest.__slots__}
    fields.update(changes)
    return Digest(**fields)


_TS = pa.timestamp("us", tz="UTC")
DIGESTS_SCHEMA = pa.schema([
    ("digest_id", pa.string()), ("topic", pa.string()), ("kafka_partition", pa.uint16()),
    ("first_offset", pa.uint64()), ("last_offset", pa.uint64()), ("rows", pa.uint32()),
    ("min_event_time", _TS), ("max_event_time", _TS), ("offsets", pa.list_(pa.uint64())),
    ("leaves_bin", pa.list_(_LEAF_TYPE)), ("root", pa.string()), ("prev_digest", pa.string()),
    ("sink_run", pa.string()), ("created_at", _TS), ("key_id", pa.string()), ("signature", pa.string()),
])


def _lists(values: list[Sequence[Any]], type_: pa.DataType) -> pa.ListArray:
    """One list per digest, built from one flat array (per-element conversion of nested lists is slow)."""
    bounds = [0]
    for v in values:
        bounds.append(bounds[-1] + len(v))
    flat = pa.array([x for v in values for x in v], type=type_)
    return pa.ListArray.from_arrays(pa.array(bounds, type=pa.int32()), flat)


def _leaf_lists(digests: Sequence[Digest]) -> pa.ListArray:
    """Each digest's leaves as 16-byte values (the store keeps bytes, half the hex): one unhexlify for all."""
    raw = binascii.unhexlify("".join(leaf for d in digests for leaf in d.leaves))
    flat = pa.FixedSizeBinaryArray.from_buffers(_LEAF_TYPE, len(raw) // _LEAF_BYTES, [None, pa.py_buffer(raw)])
    bounds = [0]
    for d in digests:
        bounds.append(bounds[-1] + len(d.leaves))
    return pa.ListArray.from_arrays(pa.array(bounds, type=pa.int32()), flat)


def digests_table(digests: Sequence[Digest]) -> pa.Table:
    """The ``action_digests`` rows of ``digests`` (schemas/ddl/0002_digests.sql)."""
    return pa.Table.from_pydict({
        "digest_id": [d.digest_id for d in digests], "topic": [d.topic for d in digests],
        "kafka_partition": [d.partition for d in digests], "first_offset": [d.first_offset for d in digests],
        "last_offset": [d.last_offset for d in digests], "rows": [len(d.offsets) for d in digests],
        "min_event_time": [d.min_event_time_us for d in digests],
        "max_event_time": [d.max_event_time_us for d in digests],
        "offsets": _lists([d.offsets for d in digests], pa.uint64()),
        "leaves_bin": _leaf_lists(digests),
        "root": [d.root for d in digests], "prev_digest": [d.prev_digest for d in digests],
        "sink_run": [d.sink_run for d in digests], "created_at": [d.created_at_us for d in digests],
        "key_id": [d.key_id for d in digests], "signature": [d.signature for d in digests],
    }, schema=DIGESTS_SCHEMA)


# -- verification -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Finding:
    """One thing ``verify --store`` found: a changed row or a digest record that does not hold."""

    kind: str  # modified, deleted, added, bad_digest, chain_break
    partition: int
    offset: int
    event_id: str = ""
    detail: str = ""

    def __str__(self) -> str:
        where = f"partition {self.partition} offset {self.offset}"
        who = f" event {self.event_id}" if self.event_id else ""
        return f"{self.kind}: {where}{who}: {self.detail}"


@dataclass(slots=True)
class StoreReport:
    """What :func:`verify_store` checked and found."""

    digests: int = 0
    rows: int = 0
    covered: int = 0
    undigested: int = 0
    expired: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def counts(self) -> dict[str, int]:
        """Findings per kind."""
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.kind] = out.get(f.kind, 0) + 1
        return out


_DIGEST_SQL = (
    "SELECT digest_id, toString(topic), kafka_partition, first_offset, last_offset, rows, "
    "toUnixTimestamp64Micro(min_event_time), toUnixTimestamp64Micro(max_event_time), offsets, leaves, root, "
    "prev_digest, sink_run, toUnixTimestamp64Micro(created_at), key_id, signature FROM action_digests FINAL "
    "ORDER BY kafka_partition, first_offset, created_at"
)


def _check_digest(row: Sequence[Any], keys: Mapping[str, Ed25519PublicKey]) -> tuple[Digest, str]:
    (digest_id, topic, partition, first, last, rows, tmin, tmax, offsets, leaves, root, prev, run, created,
     kid, signature) = row
    digest = Digest(topic=topic, partition=int(partition), first_offset=int(first), last_offset=int(last),
                    offsets=tuple(int(o) for o in offsets), leaves=tuple(leaves), min_event_time_us=int(tmin),
                    max_event_time_us=int(tmax), prev_digest=prev, sink_run=run, created_at_us=int(created),
                    key_id=kid, root=root, signature=signature, digest_id=digest_id)
    if rows != len(digest.offsets) or len(digest.offsets) != len(digest.leaves):
        return digest, f"rows {rows} but {len(digest.offsets)} offsets and {len(digest.leaves)} leaves"
    header = digest.header()
    if hashlib.sha256(header).hexdigest() != digest_id:
        older = _replace(digest, version=1)  # written before RFC 8785 leaves: checked with its own leaves
        if hashlib.sha256(older.header()).hexdigest() != digest_id:
            return digest, "digest_id does not match its header (the record was altered)"
        digest, header = older, older.header()
    key = keys.get(kid)
    if key is None:
        return digest, f"signed by key {kid}, not one of the trusted keys ({', '.join(sorted(keys)) or 'none'})"
    try:
        key.verify(bytes.fromhex(signature), header)
    except (InvalidSignature, ValueError):
        return digest, "bad signature"
    try:
        if merkle_root(digest.offsets, digest.leaves) != root:
            return digest, "root does not match its offsets and leaves"
    except ValueError:
        return digest, "malformed leaves"
    return digest, ""


def verify_store(store: Any, keys: Mapping[str, Ed25519PublicKey], *, retention_days: int | None = None,
                 now_us: int | None = None) -> StoreReport:
    """Re-read ``action_digests`` and ``actions`` and report rows modified, deleted or added after the fact.

    :param store: an open :class:`~agentaudit.infra.clickhouse.Store` on the database to check.
    :param keys: trusted digest public keys by key id (:func:`load_public_keys`).
    :param retention_days: the actions TTL; digested rows older than it may be gone and are not reported.
    :param now_us: "now" for the retention cut-off, default the wall clock.
    """
    report = StoreReport()
    expected: dict[tuple[int, int], tuple[str, bool, int]] = {}  # (partition, offset) -> (leaf, may expire, version)
    first_digest_us: int | None = None
    cutoff = None
    if retention_days is not None:
        cutoff = (now_us if now_us is not None else time.time_ns() // 1000) - retention_days * 86_400_000_000
    chains: dict[tuple[str, int], set[str]] = {}
    valid: list[Digest] = []
    for row in store.query(_DIGEST_SQL).rows:
        report.digests += 1
        digest, problem = _check_digest(row, keys)
        # Chains name every record present, valid or not: a bad record is reported once, as itself.
        chains.setdefault((digest.sink_run, digest.partition), set()).add(digest.digest_id)
        if problem:
            report.findings.append(Finding("bad_digest", digest.partition, digest.first_offset,
                                           detail=f"digest {digest.digest_id[:16]} of offsets {digest.first_offset}.."
                                                  f"{digest.last_offset}: {problem}"))
            continue
        valid.append(digest)
        if first_digest_us is None or digest.created_at_us < first_digest_us:
            first_digest_us = digest.created_at_us
        expirable = cutoff is not None and digest.min_event_time_us < cutoff
        for offset, leaf in zip(digest.offsets, digest.leaves, strict=False):
            expected[(digest.partition, offset)] = (leaf, expirable, digest.version)
    for digest in valid:
        if digest.prev_digest and digest.prev_digest not in chains[(digest.sink_run, digest.partition)]:
            report.findings.append(Finding(
                "chain_break", digest.partition, digest.first_offset,
                detail=f"digest {digest.digest_id[:16]} follows {digest.prev_digest[:16]}, which is gone "
                       "(a digest record was deleted)"))

    versions = sorted({want[2] for want in expected.values()} | {DIGEST_VERSION})
    at: dict[tuple[int, int], list[tuple[dict[int, str], str]]] = {}  # position -> [({version: leaf}, event_id)]
    leaves_at_expected: set[str] = set()
    for partition in [r[0] for r in store.query("SELECT DISTINCT kafka_partition FROM actions ORDER BY 1").rows]:
        rows = store.query(f"SELECT kafka_offset, toUnixTimestamp64Micro(ingested_at), {_ROW_SQL} FROM actions "  # noqa: S608 - _ROW_SQL is this module's constant; the partition goes as a parameter
                           "WHERE kafka_partition = {p:UInt16}", {"p": partition}).rows
        for row in rows:
            report.rows += 1
            offset, ingested, values = int(row[0]), int(row[1]), row[2:]
            leaves = {version: _row_leaf(values, version) for version in versions}
            pos = (int(partition), offset)
            at.setdefault(pos, []).append((leaves, values[0]))
            want = expected.get(pos)
            if want is None:
                if first_digest_us is None or ingested < first_digest_us:
                    report.undigested += 1  # stored before digests existed: cannot be checked
                else:
                    report.findings.append(Finding("added", pos[0], offset, values[0],
                                                   "row at a position no digest covers"))
            elif want[0] == leaves[want[2]]:
                report.covered += 1
                leaves_at_expected.add(want[0])
    for pos, (leaf, expirable, version) in expected.items():
        found = at.get(pos)
        if found is None:
            if leaf in leaves_at_expected:
                continue  # an identical copy stored at another position kept this content (a merge)
            if expirable:
                report.expired += 1
                continue
            report.findings.append(Finding("deleted", pos[0], pos[1], detail=f"digested row (leaf {leaf}) is gone"))
        elif all(f[version] != leaf for f, _ in found):
            for _, event_id in found:
                report.findings.append(Finding("modified", pos[0], pos[1], event_id,
                                               f"content differs from the digest (leaf {leaf})"))
        else:
            for other, event_id in found:
                if other[version] != leaf:
                    report.findings.append(Finding("added", pos[0], pos[1], event_id,
                                                   "a second row claims a digested position"))
    report.findings.sort(key=lambda f: (f.kind, f.partition, f.offset, f.event_id))
    return report
