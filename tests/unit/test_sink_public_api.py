"""The consumers package re-exports its public classes, and every module's ``__all__`` resolves."""

from __future__ import annotations

import importlib
import inspect

from agentaudit import consumers

MODULES = ["dlq", "exceptions", "migrate", "owners", "replay", "rules_worker", "settings", "sink"]
REEXPORTED = ["exceptions", "settings", "sink"]


def test_module_all_names_resolve():
    for name in MODULES:
        module = importlib.import_module(f"agentaudit.consumers.{name}")
        missing = [item for item in module.__all__ if not hasattr(module, item)]
        assert not missing, f"{name}.__all__ lists undefined names {missing}"


def test_package_reexports_every_public_class():
    for name in REEXPORTED:
        module = importlib.import_module(f"agentaudit.consumers.{name}")
        classes = [n for n, obj in vars(module).items()
                   if inspect.isclass(obj) and obj.__module__ == module.__name__ and not n.startswith("_")]
        assert set(classes) <= set(consumers.__all__), f"{name}: {set(classes) - set(consumers.__all__)} not exported"
    assert all(hasattr(consumers, item) for item in consumers.__all__)
