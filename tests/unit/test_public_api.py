"""Every package's ``__all__`` names exactly its public API, and every name resolves."""

from __future__ import annotations

import importlib
import types

import pytest

PACKAGES = [
    "agentaudit",
    "agentaudit.schemas",
    "agentaudit.infra",
    "agentaudit.infra.kafka",
    "agentaudit.infra.clickhouse",
    "agentaudit.infra.embedded",
    "agentaudit.consumers",
    "agentaudit.rules",
    "agentaudit.control",
    "agentaudit.producers",
    "agentaudit.producers.importers",
    "agentaudit.producers.integrations",
    "agentaudit.producers.mcp_proxy",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_complete_and_resolves(name):
    module = importlib.import_module(name)
    exported = set(module.__all__)
    assert len(exported) == len(module.__all__), f"{name}.__all__ has duplicates"
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.__all__ names {symbol!r}, which does not exist"
    public = {
        symbol
        for symbol, value in vars(module).items()
        if not symbol.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", name).startswith("agentaudit")
    }
    missing = public - exported
    assert not missing, f"{name} defines public names missing from __all__: {sorted(missing)}"
