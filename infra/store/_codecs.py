"""HTTP body codecs: streaming decompression of requests, compression of responses."""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["RESPONSE_ENCODINGS", "compressor", "decompress_stream", "pick_encoding"]

# Preference order when a client accepts several (clickhouse-connect sends e.g. "lz4;q=1.0, zstd, gzip").
RESPONSE_ENCODINGS = ("lz4", "zstd", "gzip", "deflate")


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self._c = zlib.compressobj(6, zlib.DEFLATED, wbits)

    def compress(self, data: bytes) -> bytes:
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush()


_OUT_STEP = 1 << 20  # most bytes one decompression step may produce (a bomb expands only this far at a time)
_IN_STEP = 64  # input per step for brotli, which has no output bound


def _bounded_zlib(wbits: int) -> Callable[[bytes], Iterator[bytes]]:
    obj = zlib.decompressobj(wbits=wbits)

    def decompress(data: bytes) -> Iterator[bytes]:
        while data:
            out = obj.decompress(data, _OUT_STEP)
            data = obj.unconsumed_tail
            if out:
                yield out
            elif obj.eof:
                return

    return decompress


def _sliced(step: Callable[[bytes], bytes]) -> Callable[[bytes], Iterator[bytes]]:
    def decompress(data: bytes) -> Iterator[bytes]:
        for start in range(0, len(data), _IN_STEP):
            out = step(data[start:start + _IN_STEP])
            if out:
                yield out

    return decompress


def _decompressor(encoding: str) -> Callable[[bytes], Iterator[bytes]]:
    """A function from compressed bytes to decoded pieces of at most about ``_OUT_STEP`` bytes each,
    so a caller counting the pieces stops a decompression bomb before it is in memory."""
    if encoding == "gzip":
        return _bounded_zlib(47)  # gzip or zlib header
    if encoding == "deflate":
        return _bounded_zlib(15)
    if encoding == "lz4":
        import lz4.frame

        lz4_obj = lz4.frame.LZ4FrameDecompressor()

        def lz4_decompress(data: bytes) -> Iterator[bytes]:
            while True:
                out = lz4_obj.decompress(data, max_length=_OUT_STEP)
                data = b""
                if out:
                    yield out
                if not lz4_obj.needs_input and not lz4_obj.eof:
                    continue
                return

        return lz4_decompress
    if encoding == "br":
        try:
            import brotli
        except ImportError:
            raise ValueError("Content-Encoding br needs the brotli package, which is not installed") from None
        return _sliced(brotli.Decompressor().process)
    raise ValueError(f"unsupported Content-Encoding {encoding!r} (use lz4, zstd, gzip, deflate)")


def decompress_stream(chunks: Iterable[bytes], encoding: str | None) -> Iterator[bytes]:
    """Decode a request body chunk by chunk, so large inserts never sit whole in memory."""
    encoding = (encoding or "").strip().lower()
    if encoding in ("", "identity"):
        yield from chunks
        return
    if encoding == "zstd":
        import zstandard

        # stream_reader.read(n) returns at most n bytes however far the input would expand
        reader = zstandard.ZstdDecompressor().stream_reader(_ChunkReader(chunks), read_across_frames=True)
        while out := reader.read(_OUT_STEP):
            yield out
        return
    decompress = _decompressor(encoding)
    for chunk in chunks:
        yield from decompress(chunk)


class _ChunkReader(io.RawIOBase):
    """A file-like view of an iterator of byte chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def pick_encoding(accept_encoding: str | None) -> str | None:
    """The response encoding to use for an ``Accept-Encoding`` header, or ``None``."""
    if not accept_encoding:
        return None
    offered = [part.split(";")[0].strip().lower() for part in accept_encoding.split(",")]
    for encoding in offered:
        if encoding in RESPONSE_ENCODINGS:
            return encoding
    return None


def compressor(encoding: str):  # -> object with compress(bytes) and flush()
    """A streaming compressor for a response ``Content-Encoding``."""
    if encoding == "gzip":
        return _Zlib(31)
    if encoding == "deflate":
        return _Zlib(15)
    if encoding == "lz4":
        import lz4.frame

        class _Lz4:
            def __init__(self) -> None:
                self._c = lz4.frame.LZ4FrameCompressor()
                self._started = False

            def compress(self, data: bytes) -> bytes:
                head = b""
                if not self._started:
                    head, self._started = self._c.begin(), True
                return head + self._c.compress(data)

            def flush(self) -> bytes:
                head = b"" if self._started else self._c.begin()
                return head + self._c.flush()

        return _Lz4()
    if encoding == "zstd":
        import zstandard

        class _Zstd:
            def __init__(self) -> None:
                self._c = zstandard.ZstdCompressor().compressobj()

            def compress(self, data: bytes) -> bytes:
                return self._c.compress(data)

            def flush(self) -> bytes:
                return self._c.flush()

        return _Zstd()
    raise ValueError(f"unsupported response encoding {encoding!r}")
