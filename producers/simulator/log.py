"""The simulator's event-log file: the exact Kafka keys and values of a run, in emission order.

Format (all integers big-endian)::

    b"AASIMLOG" + u16 version (1)              header, 10 bytes
    then per event: u32 key length, key bytes (the stream id, UTF-8),
                    u32 value length, value bytes (the framed Avro message, as produced to Kafka)

Nothing else is written (no timestamps, no run metadata), so two runs of the same virtual-clock
config produce byte-identical files. Read it back with :func:`read_log`, decode values with
``AvroCodec("action")``, and check the chains with ``verify_streams``.
"""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

from agentaudit.exceptions import ConfigError
from agentaudit.producers.simulator.exceptions import SimulatorError

if TYPE_CHECKING:
    from agentaudit.producers.simulator.engine import SimStats, Simulator

__all__ = ["LOG_MAGIC", "read_log", "write_log"]

LOG_MAGIC = b"AASIMLOG"
_VERSION = 1
_HEADER = LOG_MAGIC + struct.pack(">H", _VERSION)
_LEN = struct.Struct(">I")


def write_log(simulator: Simulator, path: str | os.PathLike[str]) -> SimStats:
    """Run ``simulator`` to the end and write every event to ``path`` (replaced atomically)."""
    cfg = simulator.config
    if cfg.traces is None and cfg.events is None and cfg.duration_s is None:
        raise ConfigError("an event log needs a stop condition: set traces, events or duration_s")
    target = os.fspath(path)
    partial = f"{target}.partial"
    pack = _LEN.pack
    try:
        with open(partial, "wb", buffering=1 << 20) as out:
            out.write(_HEADER)
            write = out.write
            for key, value, _ in itertools.chain(simulator.events(), simulator.tail_events()):
                write(pack(len(key)))
                write(key)
                write(pack(len(value)))
                write(value)
        os.replace(partial, target)
    except OSError as exc:
        raise SimulatorError(f"cannot write the simulator log {target}: {exc}; check the directory "
                             "exists and is writable") from exc
    return simulator.stats


def read_log(path: str | os.PathLike[str]) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` pairs of a simulator log, in the order they were written."""
    target = os.fspath(path)
    with open(target, "rb") as f:
        data = f.read()
    if data[:len(_HEADER)] != _HEADER:
        raise SimulatorError(f"{target} is not a simulator log (version {_VERSION}): bad header {data[:10]!r}")
    pos, size, unpack = len(_HEADER), len(data), _LEN.unpack_from
    while pos < size:
        if pos + 4 > size:
            raise SimulatorError(f"{target} is truncated at byte {pos}")
        (klen,) = unpack(data, pos)
        key = data[pos + 4:pos + 4 + klen]
        pos += 4 + klen
        if pos + 4 > size:
            raise SimulatorError(f"{target} is truncated at byte {pos}")
        (vlen,) = unpack(data, pos)
        value = data[pos + 4:pos + 4 + vlen]
        pos += 4 + vlen
        if len(key) != klen or len(value) != vlen:
            raise SimulatorError(f"{target} is truncated at byte {size}")
        yield key, value
