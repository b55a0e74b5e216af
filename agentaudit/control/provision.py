"""A first authority for a new installation: one operator, one service key, grants for what each does.

``agentaudit up`` calls :func:`provision_authority` on start. Existing files are kept as they are
(an operator may have edited the grants), so a restart never widens or resets them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from agentaudit.control.authority import ACTIONS, Authority
from agentaudit.rules.owners import ESCALATOR, NOTIFIER
from agentaudit.schemas import SigningKey

__all__ = ["AUTHORITY_FILE", "RULES_ISSUER", "SERVICE_KEY_ID", "ProvisionedAuthority", "provision_authority"]

AUTHORITY_FILE = "authority.yaml"
SERVICE_KEY_ID = "agentaudit-service"
#: The issuer of commands that enforce-mode rules publish (``ControlPublisherSettings.issuer_id``'s default).
RULES_ISSUER = "system:agentaudit-rules"
#: What any person the dashboard vouches for may do (the dashboard lets only its operators act).
_PEOPLE = ["kill", "pause", "clear", "acknowledge", "assign", "resolve", "reopen", "comment"]


@dataclass(frozen=True, slots=True)
class ProvisionedAuthority:
    """Where the files are; ``created`` is True on the start that made them."""

    authority_file: Path
    operator_key_file: Path
    service_key_file: Path
    operator: str
    created: bool


def provision_authority(home: str | Path, operator: str = "admin") -> ProvisionedAuthority:
    """Make (or find) ``home/authority.yaml``, ``home/keys/operator-<operator>.key`` and the service key.

    The operator may do everything on every tenant; the service key (dashboard, consumer, escalator) signs
    on behalf of people and of the rules and escalator, which hold only the grants they use.
    """
    home = Path(home)
    keys = home / "keys"
    operator_path = keys / f"operator-{operator}.key"
    service_path = keys / f"{SERVICE_KEY_ID}.key"
    authority_path = home / AUTHORITY_FILE
    operator_key = SigningKey.load_or_create(operator_path)
    service_key = SigningKey.load_or_create(service_path)
    if authority_path.exists():
        Authority.load(authority_path)  # a broken file fails the start, naming the entry
        return ProvisionedAuthority(authority_path, operator_path, service_path, operator, created=False)
    document = {
        "keys": [
            {"id": operator_key.key_id, "public_key": operator_key.public_key, "principal": f"human:{operator}"},
            {"id": service_key.key_id, "public_key": service_key.public_key, "principal": f"service:{SERVICE_KEY_ID}"},
        ],
        "grants": [
            {"principal": f"human:{operator}", "may": sorted(ACTIONS), "tenants": ["*"]},
            {"principal": "human:*", "may": _PEOPLE, "tenants": ["*"]},
            {"principal": RULES_ISSUER, "may": ["pause", "block", "require_approval", "kill"], "tenants": ["*"]},
            {"principal": f"system:{ESCALATOR}", "may": ["escalate"], "tenants": ["*"]},
            {"principal": f"system:{NOTIFIER}", "may": ["notify"], "tenants": ["*"]},
            {"principal": f"service:{SERVICE_KEY_ID}",
             "on_behalf_of": ["human:*", RULES_ISSUER, f"system:{ESCALATOR}", f"system:{NOTIFIER}"]},
        ],
    }
    Authority.from_document(document, source=str(authority_path))  # what we write must load
    fd = os.open(authority_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(document, indent=2) + "\n")  # JSON is YAML, and diffs cleanly
    return ProvisionedAuthority(authority_path, operator_path, service_path, operator, created=True)
