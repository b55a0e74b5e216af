"""The on-disk spool: sealed events wait here, in order, while the broker is away.

A spool is a directory of append-only segment files. Each record is framed as
``length (u32) | crc32 (u32) | key length (u16) | key | value``; a torn write at the tail
(the process died mid-append) fails its length or CRC check and is cut off on open.
A ``cursor`` file remembers how far delivery was confirmed, so a restarted process resumes
after the last confirmed record and a fully delivered segment is deleted.

Each client locks one ``slot-N`` directory under the spool root (``flock``); a new process
takes the first free slot and so adopts what a killed process left there. Only the client's
background thread touches its spool.
"""

from __future__ import annotations

import fcntl
import os
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, NamedTuple

from agentaudit.logs import get_logger
from agentaudit.producers.exceptions import SpoolError

__all__ = ["Position", "Spool", "SpoolRecord"]

_log = get_logger("agentaudit.producers.spool")

_HEADER = struct.Struct(">II")
_KEYLEN = struct.Struct(">H")
_CURSOR = struct.Struct(">QQ")
_FIRST_SEGMENT = 1 << 40  # room below for segments prepended in front of the head
_SUFFIX = ".seg"
_MAX_SLOTS = 1024


class Position(NamedTuple):
    """Where a record ends: ``(segment number, byte offset)``; positions sort in spool order."""

    segment: int
    offset: int


class SpoolRecord(NamedTuple):
    key: bytes
    value: bytes
    end: Position


def _frame(key: bytes, value: bytes) -> bytes:
    payload = _KEYLEN.pack(len(key)) + key + value
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _scan(path: Path, start: int = 0) -> tuple[int, int]:
    """``(records, valid length)`` of a segment from ``start``: stops at the first torn record."""
    count = 0
    with path.open("rb") as f:
        f.seek(start)
        offset = start
        while True:
            header = f.read(_HEADER.size)
            if len(header) < _HEADER.size:
                return count, offset
            length, crc = _HEADER.unpack(header)
            payload = f.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                return count, offset
            offset += _HEADER.size + length
            count += 1


class Spool:
    """A bounded FIFO of ``(key, value)`` records on disk with confirmed-delivery cursor.

    :param root: the spool root; this spool locks the first free ``slot-N`` below it.
    :param max_bytes: bound on the bytes on disk; see :meth:`append` for what happens when full.
    :param segment_bytes: size at which a new segment file starts.
    :param fsync: ``always``, ``batch`` (on :meth:`sync`) or ``never``.
    """

    def __init__(self, root: Path, *, max_bytes: int, segment_bytes: int, fsync: str = "batch") -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.segment_bytes = max(1024, min(segment_bytes, max_bytes // 4))
        self.fsync = fsync
        self.dir: Path | None = None
        self._lock_fd: int | None = None
        self._segments: dict[int, list[int]] = {}  # segment -> [records, bytes]
        self._writer: BinaryIO | None = None
        self._write_segment = 0
        self._committed = Position(0, 0)  # confirmed delivered up to here
        self._read = Position(0, 0)  # handed out up to here
        self._reader: BinaryIO | None = None
        self._reader_segment = -1
        self.pending = 0  # records not yet confirmed
        self.bytes = 0
        self._dirty = False
        self._skip: dict[int, int] = {}  # segment -> offset already confirmed (behind a prepended segment)

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self) -> None:
        """Lock a slot, cut torn tails, load the cursor. :raises SpoolError: unusable directory."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for n in range(_MAX_SLOTS):
                slot = self.root / f"slot-{n}"
                slot.mkdir(exist_ok=True)
                fd = os.open(slot / "lock", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                self._lock_fd, self.dir = fd, slot
                break
            else:
                raise SpoolError(f"all {_MAX_SLOTS} spool slots under {self.root} are locked by live clients; "
                                 "close some clients or set AGENTAUDIT_SPOOL_DIR to another directory")
            self._load()
        except OSError as exc:
            raise SpoolError(f"spool directory {self.root} is unusable: {exc}; set AGENTAUDIT_SPOOL_DIR to a "
                             "writable directory") from exc

    def _load(self) -> None:
        assert self.dir is not None  # noqa: S101 - narrows the Optional: only called once a spool slot is locked
        cursor = Position(0, 0)
        try:
            raw = (self.dir / "cursor").read_bytes()
            pairs = [Position(*_CURSOR.unpack_from(raw, i)) for i in range(0, len(raw) - len(raw) % 16, 16)]
            if pairs:
                cursor = pairs[0]
                self._skip = {p.segment: p.offset for p in pairs[1:]}
        except OSError:
            pass
        for path in sorted(self.dir.glob(f"*{_SUFFIX}")):
            number = int(path.stem)
            if number < cursor.segment:
                path.unlink()  # fully delivered before the last process stopped
                continue
            count, valid = _scan(path)
            if valid < path.stat().st_size:
                _log.warning("spool.torn_tail", segment=path, kept_bytes=valid, cut=path.stat().st_size - valid)
                with path.open("r+b") as f:
                    f.truncate(valid)
            start = cursor.offset if number == cursor.segment else self._skip.get(number, 0)
            if start:
                done, _ = _scan_prefix(path, start)
                count -= done
            self._segments[number] = [count, valid]
            self.pending += count
            self.bytes += valid
        if self._segments:
            first = min(self._segments)
            self._committed = cursor if cursor.segment == first else Position(first, 0)
            self._write_segment = max(self._segments)
        else:
            self._committed = Position(_FIRST_SEGMENT, 0)
            self._write_segment = _FIRST_SEGMENT
        self._read = self._committed
        if self.pending:
            _log.info("spool.adopted", dir=self.dir, records=self.pending, bytes=self.bytes)

    def close(self) -> None:
        """Write the cursor, close files and release the slot. Undelivered records stay for the next process."""
        self._save_cursor()
        for f in (self._writer, self._reader):
            if f is not None:
                f.close()
        self._writer = self._reader = None
        if self.pending == 0 and self.dir is not None:
            for path in self.dir.glob(f"*{_SUFFIX}"):
                path.unlink()
            (self.dir / "cursor").unlink(missing_ok=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- writing --------------------------------------------------------------------------------

    def room_for(self, size: int) -> bool:
        """Whether ``size`` more bytes fit under ``max_bytes``."""
        return self.bytes + size <= self.max_bytes

    def append(self, key: bytes, value: bytes) -> bool:
        """Add a record at the tail; False when it does not fit (the caller applies the full policy)."""
        data = _frame(key, value)
        if not self.room_for(len(data)):
            return False
        writer = self._writer_for(len(data))
        writer.write(data)
        seg = self._segments[self._write_segment]
        seg[0] += 1
        seg[1] += len(data)
        self.pending += 1
        self.bytes += len(data)
        self._dirty = True
        if self.fsync == "always":
            self.sync()
        return True

    def _writer_for(self, size: int) -> BinaryIO:
        assert self.dir is not None  # noqa: S101 - narrows the Optional: only called once a spool slot is locked
        seg = self._segments.get(self._write_segment)
        if seg is not None and seg[1] and seg[1] + size > self.segment_bytes:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._write_segment += 1
            seg = None
        if seg is None:
            self._segments[self._write_segment] = [0, 0]
        if self._writer is None:
            self._writer = (self.dir / f"{self._write_segment:020d}{_SUFFIX}").open("ab")
        return self._writer

    def prepend(self, records: Iterable[tuple[bytes, bytes]]) -> int:
        """Put records in front of everything spooled (older events that failed after being handed to
        Kafka). Only valid while nothing is being read (no records handed out and unconfirmed)."""
        assert self.dir is not None  # noqa: S101 - narrows the Optional: only called once a spool slot is locked
        data = b"".join(_frame(k, v) for k, v in records)
        if not data:
            return 0
        count = 0
        offset = 0
        while offset < len(data):  # count frames
            length, _ = _HEADER.unpack_from(data, offset)
            offset += _HEADER.size + length
            count += 1
        number = min(self._segments, default=self._committed.segment) - 1
        if self._committed.offset:
            self._skip[self._committed.segment] = self._committed.offset
        path = self.dir / f"{number:020d}{_SUFFIX}"
        with path.open("wb") as f:
            f.write(data)
            f.flush()
            if self.fsync != "never":
                os.fsync(f.fileno())
        self._segments[number] = [count, len(data)]
        self.pending += count
        self.bytes += len(data)
        self._committed = self._read = Position(number, 0)
        self._close_reader()
        self._save_cursor()
        return count

    def sync(self) -> None:
        """Flush written records to the OS (and to disk unless ``fsync="never"``)."""
        if self._writer is not None and self._dirty:
            self._writer.flush()
            if self.fsync != "never":
                os.fsync(self._writer.fileno())
        self._dirty = False

    def drop_oldest(self) -> int:
        """Delete the oldest segment that holds no record handed out and unconfirmed, to make room;
        returns how many undelivered records were dropped (0: nothing can go)."""
        in_flight = self._read > self._committed
        candidates = [s for s in self._segments if not in_flight or s > self._read.segment]
        if candidates and min(candidates) == self._write_segment:
            # the candidate is the tail segment: start a new one so that it can go
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._write_segment += 1
            self._segments[self._write_segment] = [0, 0]
        candidates = [s for s in candidates if s != self._write_segment]
        if not candidates:
            return 0
        oldest = min(candidates)
        dropped, size = self._segments.pop(oldest)  # the count excludes confirmed records
        self._skip.pop(oldest, None)
        self.pending -= dropped
        self.bytes -= size
        if self._reader_segment == oldest:
            self._close_reader()
        assert self.dir is not None  # noqa: S101 - narrows the Optional: only called once a spool slot is locked
        (self.dir / f"{oldest:020d}{_SUFFIX}").unlink(missing_ok=True)
        if not in_flight and self._committed.segment <= oldest:
            nxt = min(self._segments)
            self._committed = self._read = Position(nxt, self._skip.get(nxt, 0))
        self._save_cursor()
        return dropped

    # -- reading and confirming -----------------------------------------------------------------

    def read(self, limit: int, max_bytes: int | None = None) -> list[SpoolRecord]:
        """Up to ``limit`` records after the last one handed out, in order, whose keys and values add up
        to at most ``max_bytes`` (the first record is handed out whatever its size).

        The read position moves past exactly the records returned: a caller that cannot use all of
        them must ask for fewer, never drop the rest, or those records are skipped until a restart.
        """
        out: list[SpoolRecord] = []
        if self._writer is not None and self._dirty:
            self._writer.flush()
        size = 0
        while len(out) < limit:
            segment, offset = self._read
            info = self._segments.get(segment)
            if info is None:
                later = [s for s in self._segments if s > segment]
                if not later:
                    break
                self._read = Position(min(later), self._skip.get(min(later), 0))
                continue
            if offset >= info[1]:
                if segment == self._write_segment:
                    break
                later = [s for s in self._segments if s > segment]
                if not later:
                    break
                self._read = Position(min(later), self._skip.get(min(later), 0))
                continue
            reader = self._reader_at(segment, offset)
            header = reader.read(_HEADER.size)
            length, crc = _HEADER.unpack(header)
            if max_bytes is not None and out and size + length - _KEYLEN.size > max_bytes:
                reader.seek(offset)  # the record stays for the next read
                break
            payload = reader.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:  # cannot happen after _load; be safe
                _log.error("spool.corrupt", segment=segment, offset=offset, action="skipping the rest of the segment")
                self._read = Position(segment, info[1])
                continue
            (klen,) = _KEYLEN.unpack_from(payload)
            end = Position(segment, offset + _HEADER.size + length)
            value = payload[2 + klen:]
            size += length - _KEYLEN.size
            out.append(SpoolRecord(payload[2:2 + klen], value, end))
            self._read = end
        return out

    def _reader_at(self, segment: int, offset: int) -> BinaryIO:
        assert self.dir is not None  # noqa: S101 - narrows the Optional: only called once a spool slot is locked
        if self._reader is None or self._reader_segment != segment:
            self._close_reader()
            self._reader = (self.dir / f"{segment:020d}{_SUFFIX}").open("rb")
            self._reader_segment = segment
        if self._reader.tell() != offset:
            self._reader.seek(offset)
        return self._reader

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = None
        self._reader_segment = -1

    def rewind(self) -> None:
        """Hand out again everything not confirmed (after a failed delivery)."""
        self._read = self._committed

    def confirm(self, end: Position, records: int) -> None:
        """``records`` more records were delivered, the last of them ending at ``end``."""
        if end <= self._committed:
            return  # from a segment dropped meanwhile
        self.pending -= records
        assert self.dir is not None  # noqa: S101 - narrows the Optional: only called once a spool slot is locked
        for segment in [s for s in self._segments if s < end.segment]:
            count, size = self._segments.pop(segment)
            records -= count
            self.bytes -= size
            self._skip.pop(segment, None)
            if self._reader_segment == segment:
                self._close_reader()
            (self.dir / f"{segment:020d}{_SUFFIX}").unlink(missing_ok=True)
        seg = self._segments.get(end.segment)
        if seg is not None:
            seg[0] = max(0, seg[0] - max(0, records))
        self._committed = end
        if self.pending <= 0 and self._read >= end:
            self._reset()
        else:
            self._save_cursor()

    def _reset(self) -> None:
        """Everything delivered: remove the files and start over at the first segment number."""
        assert self.dir is not None  # noqa: S101 - narrows the Optional: only called once a spool slot is locked
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._close_reader()
        for segment in list(self._segments):
            (self.dir / f"{segment:020d}{_SUFFIX}").unlink(missing_ok=True)
        self._segments.clear()
        self._skip.clear()
        self.pending = 0
        self.bytes = 0
        self._write_segment = _FIRST_SEGMENT
        self._committed = self._read = Position(_FIRST_SEGMENT, 0)
        self._save_cursor()

    def _save_cursor(self) -> None:
        if self.dir is None:
            return
        tmp = self.dir / "cursor.tmp"
        tmp.write_bytes(b"".join(_CURSOR.pack(*p) for p in (self._committed, *self._skip.items())))
        os.replace(tmp, self.dir / "cursor")

    @property
    def empty(self) -> bool:
        """Nothing waits to be delivered."""
        return self.pending <= 0

    @property
    def unread(self) -> bool:
        """Records wait that were not handed out yet."""
        info = self._segments.get(self._read.segment)
        if info is not None and self._read.offset < info[1]:
            return True
        return any(s > self._read.segment and v[1] for s, v in self._segments.items())


def _scan_prefix(path: Path, end: int) -> tuple[int, int]:
    """Records wholly before byte ``end`` of a segment."""
    count = 0
    offset = 0
    with path.open("rb") as f:
        while offset < end:
            header = f.read(_HEADER.size)
            if len(header) < _HEADER.size:
                break
            length, _ = _HEADER.unpack(header)
            f.seek(length, os.SEEK_CUR)
            offset += _HEADER.size + length
            count += 1
    return count, offset
