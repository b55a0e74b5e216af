"""Free loopback ports for every port `agentaudit up` opens.

`up` takes its default ports (9092, 8123, 8501, 9108, 4318) when they look free, so two ups started at once
(tests in parallel pytest-xdist workers) could both pick the same one. Tests give each up all five instead."""

from __future__ import annotations

from agentaudit.infra.embedded import free_port

UP_PORTS = ("broker", "store", "dashboard", "metrics", "otlp")


def up_port_settings() -> dict[str, int]:
    """``StackSettings`` keyword arguments: a free port for each."""
    return {f"{name}_port": free_port() for name in UP_PORTS}


def up_port_env() -> dict[str, str]:
    """The same as ``AGENTAUDIT_*_PORT`` variables, for an `agentaudit up` child process."""
    return {f"AGENTAUDIT_{name.upper()}": str(port) for name, port in up_port_settings().items()}
