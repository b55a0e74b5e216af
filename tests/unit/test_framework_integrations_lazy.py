"""The base install needs no agent framework: importing agentaudit (the SDK and the integrations package)
imports none of them; a framework is imported only when its integration is."""

from __future__ import annotations

import subprocess
import sys

FRAMEWORKS = ("agents", "langchain_core", "langchain", "langgraph", "openai", "opentelemetry.instrumentation")


def _imported_after(statement: str) -> set[str]:
    code = (f"import sys\n{statement}\n"
            f"print(','.join(m for m in {FRAMEWORKS!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(filter(None, done.stdout.strip().split(",")))


def test_importing_the_sdk_and_the_integrations_package_imports_no_framework() -> None:
    assert _imported_after("import agentaudit.producers, agentaudit.producers.integrations") == set()


def test_an_integration_imports_its_framework_only() -> None:
    assert "agents" in _imported_after("from agentaudit.producers.integrations import AuditTracingProcessor")
    assert "langchain_core" in _imported_after("from agentaudit.producers.integrations import AuditCallbackHandler")
    assert "langchain_core" not in _imported_after("import agentaudit.producers.integrations.openai_agents")
