"""xdist groups: tests that share a machine-wide resource run one after another in one worker.

The README test command runs the suite in parallel (`pytest -n 4 --dist loadgroup`). `agentaudit up` takes its
default ports (9092, 8123, 8501, 9108, 4318) when they look free; two ups starting at once in two workers could
both pick the same one, so every test that starts `up` runs in this one group."""

import pytest

AGENTAUDIT_UP = pytest.mark.xdist_group("agentaudit-up")
