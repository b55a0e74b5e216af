"""`agentaudit mcp-proxy` refuses a muddled command line before it starts anything (exit 2, a message that
says what to give), and its settings read AGENTAUDIT_MCP_* with the documented defaults."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from agentaudit.cli import app
from agentaudit.producers.mcp_proxy import (
    McpProxyConfigError,
    McpProxySettings,
    Upstream,
)

runner = CliRunner()


@pytest.mark.parametrize(("args", "says"), [
    (["mcp-proxy", "--", "python", "server.py"], "exactly one of --stdio or --listen"),
    (["mcp-proxy", "--stdio", "--listen", "127.0.0.1:1", "--", "python"], "exactly one of --stdio or --listen"),
    (["mcp-proxy", "--stdio"], "--upstream URL or as a command"),
    (["mcp-proxy", "--listen", "127.0.0.1:9", "--upstream", "http://x/mcp", "--", "python"], "not both"),
    (["mcp-proxy", "--listen", "nohostport", "--upstream", "http://127.0.0.1:1/mcp"], "must be HOST:PORT"),
    (["mcp-proxy", "--listen", "127.0.0.1:1", "--upstream", "file:///etc/passwd"], "must start with http"),
    (["mcp-proxy", "--stdio", "--", "no-such-binary-for-mcp-proxy"], "not found"),
])
def test_bad_command_lines_exit_2_with_a_reason(args: list[str], says: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert says in result.output


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert McpProxySettings().hide_blocked is False and McpProxySettings().approval_timeout_s == 300
    monkeypatch.setenv("AGENTAUDIT_MCP_HIDE_BLOCKED", "true")
    monkeypatch.setenv("AGENTAUDIT_MCP_GUARD_RULES", "a.yaml, b/ ,")
    settings = McpProxySettings()
    assert settings.hide_blocked is True and settings.guard_rule_paths() == ["a.yaml", "b/"]


def test_upstream_needs_a_command_or_an_http_url() -> None:
    with pytest.raises(McpProxyConfigError):
        Upstream.stdio([])
    assert str(Upstream.http("https://tools.example/mcp")) == "https://tools.example/mcp"
