"""The README's threat model names only attack tests that exist and incidents that something can raise (issue 12).

Read as a new user would: every ``test_*.py`` it points at is a file in ``tests/security/``, and every
``integrity.*`` rule id it promises is either a rule of the built-in pack or a constant in the code that raises
it (the control-plane admission raises ``integrity.unauthorized-command`` outside the pack).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("agentaudit", "consumers", "producers", "schemas", "infra", "dashboard")


def _threat_model() -> str:
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Threat model\n(.*?)(?=^## |\Z)", text, re.DOTALL | re.MULTILINE)
    assert section, "README lost its '## Threat model' section"
    return section.group(1)


def _pack_rule_ids() -> set[str]:
    ids: set[str] = set()
    for path in (ROOT / "agentaudit" / "rules" / "pack").glob("*.yaml"):
        document = yaml.safe_load(path.read_text()) or {}
        rules = document.get("rules", []) if isinstance(document, dict) else document
        ids.update(rule["id"] for rule in rules if isinstance(rule, dict) and "id" in rule)
    return ids


def _code_rule_ids() -> set[str]:
    found: set[str] = set()
    for folder in CODE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            found.update(re.findall(r"""["'](integrity\.[a-z-]+)["']""", path.read_text()))
    return found


def test_every_attack_test_the_threat_model_names_exists() -> None:
    named = set(re.findall(r"\b(test_[a-z0-9_]+\.py)\b", _threat_model()))
    assert named, "the threat model names no attack tests"
    missing = sorted(name for name in named if not (ROOT / "tests" / "security" / name).is_file())
    assert not missing, f"README threat model names tests not in tests/security/: {missing}"


def test_every_integrity_incident_the_threat_model_names_can_be_raised() -> None:
    named = set(re.findall(r"\b(integrity\.[a-z]+(?:-[a-z]+)*)", _threat_model()))
    assert named, "the threat model names no integrity incidents"
    raisable = _pack_rule_ids() | _code_rule_ids()
    missing = sorted(named - raisable)
    assert not missing, f"README threat model names incidents no rule or code raises: {missing}"
