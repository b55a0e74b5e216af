"""``python -m agentaudit.cli``: what the ``agentaudit`` console script runs."""

from agentaudit.cli import main

main()
