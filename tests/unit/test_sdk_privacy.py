"""Privacy in the SDK: digests by default; bodies only on opt-in, redacted first, then capped."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

import pytest

from agentaudit.producers import redact
from agentaudit.producers._digests import Digester
from agentaudit.producers.redaction import canonical, cap, luhn_valid, redact_fields
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
    ("dsn postgresql://app:S3cr3t!@db:5432/prod", "dsn postgresql://[CREDENTIALS]@db:5432/prod"),
    ("redis://:pw@cache/0 and https://u:p@h/x?token=abc&y=1",
     "redis://[CREDENTIALS]@cache/0 and https://[CREDENTIALS]@h/x?token=[SECRET]&y=1"),
    ('{"password": "hunter2", "user": "bob"}', '{"password": [SECRET], "user": "bob"}'),
    ("DB_PASSWORD=abc api_key: xyz client_secret='q w'", "DB_PASSWORD=[SECRET] api_key: [SECRET] client_secret=[SECRET]"),
    ("input_tokens: 5 max_tokens=4096", "input_tokens: 5 max_tokens=4096"),  # counts are not secrets
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe [API_KEY]"),
    ("google AIzaSyD-1234567890abcdefghijklmnopqrstu", "google [API_KEY]"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl", "jwt [API_KEY]"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY----- ok", "[PRIVATE_KEY] ok"),
    ("Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Authorization: [API_KEY]"),
    ("digest ab4111111111111111cd and id-4111111111111111", "digest ab4111111111111111cd and id-4111111111111111"),
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


def test_digests_are_hmac_sha256_with_a_per_tenant_key() -> None:
    secret = b"s" * 32
    text = '{"otp":"493817"}'
    for tenant in ("acme", "globex"):
        key = hmac.digest(secret, b"agentaudit digest v1\x00" + tenant.encode(), "sha256")
        assert Digester(secret, tenant, "test").digest(text) == hmac.new(key, text.encode(), "sha256").hexdigest()
    assert Digester(secret, "acme", "t").digest(text) != Digester(secret, "globex", "t").digest(text)
    assert Digester(secret, "acme", "t").digest("é" * 5000) == Digester(secret, "acme", "t").digest("é" * 5000)


def test_free_text_fields_are_redacted_but_ids_and_digests_are_not() -> None:
    luhn_hex = "ab" + "4111111111111111" + "0" * 46  # a digest can hold a Luhn-valid run of digits
    record = {"name": "call api_key=XYZ", "error_type": None, "error_message": "postgres://a:b@h/x", "model": "m",
              "attributes": {"args_hash": luhn_hex, "note": "mail bob@example.com", "agentaudit.uncaptured.x": "why",
                             "password=abc": "v"}}
    assert redact_fields(record, redact) == 0
    assert record["name"] == "call api_key=[SECRET]" and record["error_message"] == "postgres://[CREDENTIALS]@h/x"
    assert record["attributes"] == {"args_hash": luhn_hex, "note": "mail [EMAIL]", "agentaudit.uncaptured.x": "why",
                                    "password=[SECRET]": "v"}


def test_redaction_takes_linear_time_on_hostile_text() -> None:
    started = time.perf_counter()
    for text in ("x" * 200_000 + "@", "1" * 200_000, "://a:" * 40_000, "key" * 60_000, "eyJ" * 60_000):
        redact(text)
    assert time.perf_counter() - started < 5  # quadratic patterns took minutes on these
