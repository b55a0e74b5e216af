"""The ``agentaudit`` command line: one module per command group, registered on one app.

The import order below is the order ``--help`` lists the commands in.
"""

from __future__ import annotations

from agentaudit.cli._app import app

# Each import registers its command group, in the order --help lists them: isort must keep the order.
# isort: off
from agentaudit.cli import stack, store, consume, rules, owners, control, simulate, imports, otlp  # noqa: F401 - registers commands
from agentaudit.cli import dashboard, keys  # noqa: F401 - registers commands
from agentaudit.cli import notify  # noqa: F401 - registers commands
from agentaudit.cli import mcp_proxy  # noqa: F401 - registers commands
# isort: on

__all__ = ["app", "main"]


def main() -> None:
    app()
