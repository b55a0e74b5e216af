"""HTTP body codecs: streaming decompression of requests, compression of responses."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator

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


def _decompressor(encoding: str) -> Callable[[bytes], bytes]:
    if encoding == "gzip":
        return zlib.decompressobj(wbits=47).decompress  # gzip or zlib header
    if encoding == "deflate":
        return zlib.decompressobj().decompress
    if encoding == "lz4":
        import lz4.frame

        return lz4.frame.LZ4FrameDecompressor().decompress
    if encoding == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress
    if encoding == "br":
        try:
            import brotli
        except ImportError:
            raise ValueError("Content-Encoding br needs the brotli package, which is not installed") from None
        return brotli.Decompressor().process
    raise ValueError(f"unsupported Content-Encoding {encoding!r} (use lz4, zstd, gzip, deflate)")


def decompress_stream(chunks: Iterable[bytes], encoding: str | None) -> Iterator[bytes]:
    """Decode a request body chunk by chunk, so large inserts never sit whole in memory."""
    encoding = (encoding or "").strip().lower()
    if encoding in ("", "identity"):
        yield from chunks
        return
    decompress = _decompressor(encoding)
    for chunk in chunks:
        out = decompress(chunk)
        if out:
            yield out


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
