"""An authority for tests: alice (operator), bob (acknowledge only, tenant acme), the dashboard service
key that signs for people, the rules' service key; and mallory, whose key is registered but granted nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agentaudit.control.authority import Authority
from agentaudit.schemas import SigningKey


@dataclass
class Operators:
    authority: Authority
    path: Path
    alice: SigningKey
    mallory: SigningKey
    dashboard: SigningKey
    rules: SigningKey
    stranger: SigningKey  # never registered


def make_operators(directory: Path, *, people_may: list[str] | None = None) -> Operators:
    """The authority above in ``directory/authority.yaml``; ``people_may`` grants every person those actions too."""
    keys = {name: SigningKey.generate(f"{name}-1") for name in ("alice", "mallory", "dashboard", "rules", "stranger")}
    document = {
        "keys": [
            {"id": "alice-1", "public_key": keys["alice"].public_key, "principal": "human:alice"},
            {"id": "mallory-1", "public_key": keys["mallory"].public_key, "principal": "human:mallory"},
            {"id": "dashboard-1", "public_key": keys["dashboard"].public_key, "principal": "service:dashboard"},
            {"id": "rules-1", "public_key": keys["rules"].public_key, "principal": "service:rules"},
        ],
        "grants": [
            {"principal": "human:alice", "may": ["kill", "pause", "clear", "promote", "acknowledge", "assign",
                                                 "resolve"], "tenants": ["*"]},
            {"principal": "human:bob", "may": ["acknowledge"], "tenants": ["acme"]},
            {"principal": "human:carol", "may": ["kill", "clear"], "tenants": ["acme"]},
            {"principal": "system:agentaudit-rules", "may": ["pause", "block", "require_approval", "kill"]},
            {"principal": "service:dashboard", "on_behalf_of": ["human:*"]},
            {"principal": "service:rules", "on_behalf_of": ["system:agentaudit-rules"]},
        ],
    }
    if people_may:
        document["grants"].append({"principal": "human:*", "may": people_may, "tenants": ["*"]})
    path = directory / "authority.yaml"
    path.write_text(json.dumps(document))
    return Operators(Authority.load(path), path, keys["alice"], keys["mallory"], keys["dashboard"], keys["rules"],
                     keys["stranger"])


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
