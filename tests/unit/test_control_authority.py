"""The authority check: a signed record is applied only when its key, its issuer and the grant agree."""

from __future__ import annotations

import pytest

from agentaudit.control.authority import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    Authority,
    AuthorityError,
    read_signature,
    sign_headers,
)
from agentaudit.schemas import SigningKey

TOPIC = "agentaudit.control"
VALUE = b"\xc3\x01...a kill command's Avro bytes..."


@pytest.fixture
def keys():
    return {name: SigningKey.generate(f"{name}-1") for name in ("alice", "mallory", "dashboard")}


@pytest.fixture
def authority(keys):
    return Authority.from_document({
        "keys": [
            {"id": "alice-1", "public_key": keys["alice"].public_key, "principal": "human:alice"},
            {"id": "mallory-1", "public_key": keys["mallory"].public_key, "principal": "human:mallory"},
            {"id": "dashboard-1", "public_key": keys["dashboard"].public_key, "principal": "service:dashboard"},
        ],
        "grants": [
            {"principal": "human:alice", "may": ["kill", "clear", "resolve"], "tenants": ["acme"]},
            {"principal": "human:bob", "may": ["acknowledge"]},
            {"principal": "service:dashboard", "on_behalf_of": ["human:*"]},
        ],
    })


def _check(authority, headers, *, issuer="human:alice", action="kill", tenant="acme", value=VALUE, topic=TOPIC):
    return authority.check(purpose="control", topic=topic, value=value, headers=headers, action=action,
                           tenant=tenant, issuer=issuer, at_us=None)


def test_a_granted_issuer_signing_with_its_own_key_is_applied(authority, keys):
    verdict = _check(authority, sign_headers(keys["alice"], "control", TOPIC, VALUE))
    assert verdict.ok and verdict.signer == "human:alice" and verdict.key_id == "alice-1"


def test_the_dashboard_signs_for_the_person_it_names(authority, keys):
    headers = sign_headers(keys["dashboard"], "control", TOPIC, VALUE)
    assert _check(authority, headers, issuer="human:bob", action="acknowledge").ok
    assert not _check(authority, headers, issuer="human:bob", action="kill").ok  # bob holds no kill grant


@pytest.mark.parametrize(("case", "expected"), [
    ("unsigned", "unsigned"),
    ("forged_as_alice", "belongs to human:mallory"),
    ("edited_value", "bad_signature"),
    ("other_topic", "bad_signature"),
    ("other_tenant", "no grant to kill on tenant 'globex'"),
    ("not_granted", "no grant to promote"),
])
def test_every_forgery_is_refused_with_its_reason(authority, keys, case, expected):
    headers = sign_headers(keys["alice"], "control", TOPIC, VALUE)
    kwargs = {}
    if case == "unsigned":
        headers = []
    elif case == "forged_as_alice":  # mallory signs a record that names alice as its issuer
        headers = sign_headers(keys["mallory"], "control", TOPIC, VALUE)
    elif case == "edited_value":
        kwargs["value"] = VALUE + b"!"
    elif case == "other_topic":
        kwargs["topic"] = "agentaudit.lifecycle"
    elif case == "other_tenant":
        kwargs["tenant"] = "globex"
    elif case == "not_granted":
        kwargs["action"] = "promote"
    verdict = _check(authority, headers, **kwargs)
    assert not verdict.ok and expected in verdict.reason


def test_a_service_cannot_sign_for_another_service(authority, keys):
    headers = sign_headers(keys["dashboard"], "control", TOPIC, VALUE)
    assert "may not sign for service:escalator" in _check(authority, headers, issuer="service:escalator").reason


def test_headers_are_read_first_wins_and_bad_files_name_the_entry(tmp_path):
    assert read_signature([(KEY_HEADER, b"k"), (SIGNATURE_HEADER, b"s"), (KEY_HEADER, b"other")]) == ("k", b"s")
    assert read_signature(None) == (None, None)
    path = tmp_path / "authority.yaml"
    path.write_text("grants:\n  - {principal: 'human:x', may: [kill, launch_missiles]}\n")
    with pytest.raises(AuthorityError, match=r"grants\[0\] \(human:x\): unknown action\(s\) \['launch_missiles'\]"):
        Authority.load(path)
    path.write_text("keys: []\nusers: []\n")
    with pytest.raises(AuthorityError, match="unknown section"):
        Authority.load(path)
