"""The schemas shipped in ``schemas/avro``, parsed once and indexed by fingerprint."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

__all__ = ["SchemaInfo", "known_schemas", "latest", "load", "parse"]

_FILE_SUFFIX = ".avsc"


@dataclass(frozen=True, slots=True)
class SchemaInfo:
    """One versioned schema: ``name`` is the record family (action, incident, ...)."""

    name: str
    version: int
    parsed: Any
    raw: dict[str, Any]
    fingerprint: bytes  # 8 bytes, little-endian CRC-64-AVRO, as single-object encoding writes it
    canonical_form: str

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()


def parse(name: str, version: int, raw: dict[str, Any]) -> SchemaInfo:
    parsed = fastavro.parse_schema(raw)
    canonical = to_parsing_canonical_form(parsed)
    return SchemaInfo(
        name=name,
        version=version,
        parsed=parsed,
        raw=raw,
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
        canonical_form=canonical,
    )


@cache
def known_schemas() -> dict[bytes, SchemaInfo]:
    """Every shipped schema, keyed by fingerprint."""
    found: dict[bytes, SchemaInfo] = {}
    for entry in resources.files("agentaudit.schemas").joinpath("avro").iterdir():
        if not entry.name.endswith(_FILE_SUFFIX):
            continue
        stem = entry.name[: -len(_FILE_SUFFIX)]
        name, _, version = stem.rpartition(".v")
        info = parse(name, int(version), json.loads(entry.read_text()))
        found[info.fingerprint] = info
    return found


def load(name: str, version: int) -> SchemaInfo:
    """The shipped schema ``name`` at ``version``, e.g. ``load("action", 1)``."""
    for info in known_schemas().values():
        if info.name == name and info.version == version:
            return info
    raise KeyError(f"no schema {name}.v{version}{_FILE_SUFFIX} in agentaudit/schemas/avro")


def latest(name: str) -> SchemaInfo:
    """The newest shipped version of ``name``."""
    versions = [i for i in known_schemas().values() if i.name == name]
    if not versions:
        raise KeyError(f"no schema named {name!r} in agentaudit/schemas/avro")
    return max(versions, key=lambda i: i.version)
