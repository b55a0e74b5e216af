"""The environment a test hands to a child process it points at the test's broker."""

from __future__ import annotations

import os

# How the test broker is reached and written to: the SASL tier of .ci/run sets these for every client, and a
# child without them cannot even fetch metadata from the SASL listener.
_BROKER_ACCESS = ("AGENTAUDIT_KAFKA_", "AGENTAUDIT_ENABLE_IDEMPOTENCE")


def child_env(*drop: str) -> dict[str, str]:
    """``os.environ`` without agentaudit's settings (and any ``drop`` prefixes), keeping broker access."""
    return {k: v for k, v in os.environ.items()
            if k.startswith(_BROKER_ACCESS) or not k.startswith(("AGENTAUDIT_", *drop))}
