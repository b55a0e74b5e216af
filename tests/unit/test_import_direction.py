"""Imports point one way: the shared cores import none of their users, and the two sides of the
pipeline (producers, consumers) never import each other. See docs/architecture.md.

Every ``import`` in a module counts, including those inside functions: a lazy import is still a
dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Folder on disk -> import name (setup.py maps the top-level folders onto ``agentaudit.*``).
FOLDERS = {"agentaudit": "agentaudit", "schemas": "agentaudit.schemas", "producers": "agentaudit.producers",
           "consumers": "agentaudit.consumers", "dashboard": "agentaudit.dashboard", "infra": "agentaudit.infra"}

#: Room -> rooms it must never import. A room is ``agentaudit.<name>`` (``infra.<name>`` for infra).
FORBIDDEN: dict[str, set[str]] = {
    "schemas": {"rules", "control", "producers", "consumers", "dashboard", "cli", "infra.stack", "infra.store"},
    "rules": {"control", "producers", "consumers", "dashboard", "cli", "infra.kafka", "infra.clickhouse",
              "infra.stack", "infra.store", "infra.embedded"},
    "control": {"producers", "consumers", "dashboard", "cli", "infra.stack", "infra.store"},
    "producers": {"consumers", "dashboard", "cli", "infra.stack", "infra.store"},
    "consumers": {"producers", "dashboard", "cli", "infra.stack"},
    "dashboard": {"producers", "consumers", "cli"},
    "infra.kafka": {"schemas", "rules", "control", "producers", "consumers", "dashboard", "cli"},
    "infra.clickhouse": {"schemas", "rules", "control", "producers", "consumers", "dashboard", "cli"},
}


def _room(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "agentaudit" or len(parts) == 1:
        return None
    if parts[1] == "infra" and len(parts) > 2:
        return f"infra.{parts[2]}"
    return parts[1]


def _edges() -> list[tuple[str, str, str, int]]:
    """``(room, imported room, file, line)`` for every import that crosses rooms."""
    edges = []
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT / folder).with_suffix("")
            source = _room(".".join([package, *relative.parts]))
            if source is None:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                for name in names:
                    target = _room(name)
                    if target is not None and target != source:
                        edges.append((source, target, str(path.relative_to(ROOT)), node.lineno))
    return edges


EDGES = _edges()


def test_the_scan_sees_the_known_edges():
    # guards the scan itself: an empty or broken walk would pass the contract below vacuously
    rooms = {(source, target) for source, target, _, _ in EDGES}
    assert ("producers", "control") in rooms and ("consumers", "rules") in rooms and ("control", "rules") in rooms


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_room_imports_none_of_its_users(room):
    wrong = [f"{file}:{line} imports agentaudit.{target}" for source, target, file, line in EDGES
             if source == room and target in FORBIDDEN[room]]
    assert not wrong, f"{room} must not import {sorted(FORBIDDEN[room])}:\n" + "\n".join(wrong)
