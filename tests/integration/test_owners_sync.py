"""The owners file reaches the owners table, and syncing again updates rather than duplicates."""

from __future__ import annotations

import pytest

from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.owners import sync_owners
from agentaudit.infra.stack import DEFAULT_OWNERS
from agentaudit.rules.owners import load_owners

pytestmark = pytest.mark.integration


def test_sync_owners_writes_every_mapping_once(store_settings_factory, store_factory):
    settings = store_settings_factory()
    migrate(settings)
    expected = load_owners(DEFAULT_OWNERS).rows()
    assert sync_owners(settings, DEFAULT_OWNERS) == len(expected)
    assert sync_owners(settings, DEFAULT_OWNERS) == len(expected)
    store = store_factory(settings)
    rows = store.query(
        "SELECT subject_kind, pattern, team FROM owners FINAL ORDER BY subject_kind, pattern").rows
    assert rows == sorted((r["subject_kind"], r["pattern"], r["team"]) for r in expected)
    assert ("agent", "payments-*", "team-payments") in rows
