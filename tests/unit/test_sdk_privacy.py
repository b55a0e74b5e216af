"""Privacy in the SDK: digests by default; bodies only on opt-in, redacted first, then capped."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from agentaudit.producers import redact
from agentaudit.producers.redaction import cap, canonical, luhn_valid
from tests.sdk_support import offline_client, records_of


@pytest.mark.parametrize(("text", "expected"), [
    ("write to bob.smith+x@example.co.uk now", "write to [EMAIL] now"),
    ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
    ("card 4111-1111-1111-1111", "card [CARD]"),
    ("order 4111111111111112 is not a card", "order 4111111111111112 is not a card"),  # fails Luhn
    ("id 123456789012", "id 123456789012"),  # 12 digits: too short for a card
    ("key sk-proj-abcdefghijklmnopqrstuvwx end", "key [API_KEY] end"),
    ("aws AKIAIOSFODNN7EXAMPLE", "aws [API_KEY]"),
    ("gh ghp_" + "a1B2" * 9, "gh [API_KEY]"),
    ("slack xoxb-1234567890-abcdefghij", "slack [API_KEY]"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "Authorization: [API_KEY]"),
])
def test_default_redactor_masks_emails_cards_and_key_shapes(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_luhn_and_cap() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert cap("héllo wörld", 100) == "héllo wörld"
    capped = cap("x" * 1000, 64)
    assert len(capped.encode()) <= 64 and capped.endswith("...[truncated]")
    assert len(cap("é" * 100, 31).encode()) <= 31  # never cuts inside a character


def test_inputs_and_outputs_are_digests_unless_bodies_are_opted_in(tmp_path: Path) -> None:
    args = {"to": "bob@example.com", "amount": 40}
    audit = offline_client(tmp_path / "off")
    with audit.action("execute_tool", name="mail", input=args) as act:
        act.set_output("sent")
    audit.close(timeout=0.2)
    start, end = records_of(tmp_path / "off")
    expected = audit.digest(args)
    assert start["input_digest"] == end["input_digest"] == expected
    assert expected != hashlib.sha256(canonical(args).encode()).hexdigest()  # keyed, not a plain SHA-256
    assert end["output_digest"] == audit.digest("sent")
    assert start["input_body"] is None and end["output_body"] is None
    assert "bob@example.com" not in repr(start) + repr(end)

    audit = offline_client(tmp_path / "on", capture_bodies=True, body_max_bytes=64)
    with audit.action("execute_tool", name="mail", input=args) as act:
        act.set_output("token sk-abcdefghijklmnopqrstuvwxyz " + "y" * 500)
    audit.close(timeout=0.2)
    start, end = records_of(tmp_path / "on")
    assert start["input_body"] == '{"amount":40,"to":"[EMAIL]"}'
    assert start["input_digest"] == audit.digest(args)  # the digest is of the original, not the redacted body
    assert end["output_body"].startswith("token [API_KEY] yyy") and len(end["output_body"].encode()) <= 64
    assert end["payload_bytes"] > 500


def test_a_custom_redactor_runs_and_a_failing_one_keeps_the_body_out(tmp_path: Path) -> None:
    audit = offline_client(tmp_path / "custom", capture_bodies=True, redactor=lambda s: s.replace("secret", "***"))
    audit.decision("d", input="my secret plan")
    audit.close(timeout=0.2)
    assert records_of(tmp_path / "custom")[0]["input_body"] == "my *** plan"

    def broken(_: str) -> str:
        raise RuntimeError("redactor bug")

    audit = offline_client(tmp_path / "broken", capture_bodies=True, redactor=broken)
    audit.decision("d", input="my secret plan")
    audit.close(timeout=0.2)
    (record,) = records_of(tmp_path / "broken")
    assert record["input_body"] is None and record["input_digest"]
    assert record["name"] == "[REDACTION_FAILED]"  # free text too: a broken hook never lets it through
    assert audit.stats()["redaction_errors"] == 2
