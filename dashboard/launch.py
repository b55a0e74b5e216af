"""Starting the dashboard: the ``streamlit run`` command line, shared by the CLI and ``agentaudit up``."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["APP_PATH", "dashboard_command"]

#: The Streamlit script of the dashboard.
APP_PATH = Path(__file__).resolve().parent / "app.py"


def dashboard_command(port: int = 8501, host: str = "127.0.0.1", *, python: str | None = None,
                      extra: list[str] | None = None) -> list[str]:
    """The argv that serves the dashboard: ``python -m streamlit run app.py`` headless on ``host:port``.

    :param port: TCP port (``AGENTAUDIT_DASHBOARD_PORT``), default 8501.
    :param host: interface to bind, default loopback only (``AGENTAUDIT_DASHBOARD_HOST``).
    :param python: interpreter, default the running one.
    :param extra: more ``streamlit run`` options, e.g. ``["--server.runOnSave", "true"]``.
    """
    return [
        python or sys.executable, "-m", "streamlit", "run", str(APP_PATH),
        "--server.port", str(port),
        "--server.address", host,
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--global.developmentMode", "false",
        *(extra or []),
    ]
