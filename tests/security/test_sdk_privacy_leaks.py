"""Attack: read an agent's secrets back out of its audit trail.

Whoever reads the action topic or the store (anyone on the broker, a store client, a dashboard
visitor) sees every sealed event. Two leaks were reported:

- digests were plain SHA-256 of the input, so a short secret input (a 6-digit one-time code) was
  recovered by hashing every candidate, in under a second;
- with the default ``capture_bodies=False``, ``error_message`` kept a database URL with its password
  and an API key in clear: redaction covered bodies only.

Each test runs the attack on the real sealed bytes (what the worker wrote to its spool, exactly what
it produces to Kafka) and expects it to fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode

from agentaudit.control import ActionBlocked
from agentaudit.control.approvals import Approval
from agentaudit.producers import AuditClient, SdkSettings
from agentaudit.producers._digests import key_path
from agentaudit.producers.exceptions import SdkConfigError
from agentaudit.producers.otel import AuditSpanProcessor
from agentaudit.rules.evaluator import RuleEvaluator, load_rule_set
from agentaudit.rules.harness import replay
from tests.sdk_support import offline_client, records_of

OTP = "493817"


class Unprintable:
    def __str__(self) -> str:
        raise ValueError("no text")


def sealed_bytes(spool_dir: Path) -> bytes:
    """Every byte of every spool segment: the sealed events as they go to Kafka."""
    return b"".join(p.read_bytes() for p in sorted(spool_dir.rglob("*")) if p.is_file() and "keys" not in p.parts)


def test_a_six_digit_code_cannot_be_brute_forced_from_its_digests(tmp_path: Path) -> None:
    """Attack: the agent sends a one-time code (``input="493817"``, ``input={"otp": "493817"}``) and gets an
    approval bound to ``{"otp": "493817"}``; the attacker hashes all 1,000,000 codes in each canonical form
    (plain SHA-256, what ``args_hash`` and the digests used to be) and compares them with every 64-hex value
    and 12-hex prefix in the sealed events. Expected: no candidate matches; the digests are keyed."""
    audit = offline_client(tmp_path / "spool")
    args = {"otp": OTP}
    grant = Approval.grant(agent_id="agent-under-test", tool="auth.verify", args=args, approver="alice")
    audit.approval("alice", grant=grant)
    with audit.action("execute_tool", name="auth.verify", input=args, approval=grant) as act:
        act.set_output(OTP)
    audit.decision("send-code", input=OTP)
    with pytest.raises(ActionBlocked):  # a mismatch: its refusal is recorded too (a guardrail event)
        with audit.action("execute_tool", name="auth.verify", input={"otp": "000000"}, approval=grant):
            pass
    audit.close(timeout=0.3)
    records = records_of(tmp_path / "spool")
    raw = sealed_bytes(tmp_path / "spool").decode("latin-1")
    runs = re.findall(r"[0-9a-f]{12,}", raw)
    prefixes = {run[i:i + 12] for run in runs for i in range(len(run) - 11)}  # every 12-hex window recorded
    recorded = {r[f] for r in records for f in ("input_digest", "output_digest") if r[f]}
    recorded |= {r["attributes"]["args_hash"] for r in records if "args_hash" in r["attributes"]}
    assert recorded and all(len(value) == 64 for value in recorded)
    found = []
    for n in range(1_000_000):
        code = f"{n:06d}"
        for form in (code, '{"otp":"' + code + '"}'):  # canonical JSON of {"otp": code}
            hexed = hashlib.sha256(form.encode()).hexdigest()
            if hexed in recorded or hexed[:12] in prefixes:
                found.append(code)
    assert found == [], f"recovered {found} from unkeyed digests"
    assert json.dumps(args, separators=(",", ":")) == '{"otp":"' + OTP + '"}'  # the form tried above
    assert audit.digest(OTP) in recorded  # the key holder can still look the code's events up


@pytest.mark.parametrize("secret", [
    "S3cr3t-pw-93",  # the password in postgresql://app:S3cr3t-pw-93@db.internal:5432/prod
    "sk-proj-Zq81kLmN0pQrStUvWxYz1234",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_" + "a1B2c3D4" * 5,
    "xoxb-1234567890-abcdefghijkl",
    "AIzaSyD-1234567890abcdefghijklmnopqrstu",
    "hunter2-api-key-value",  # as api_key=..., token: ..., password=...
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlMTIz",
])
def test_secrets_in_free_text_never_reach_a_sealed_event(tmp_path: Path, secret: str) -> None:
    """Attack: with default settings (``capture_bodies=False``) the agent's database driver fails with
    ``could not connect to postgresql://app:<secret>@db.internal:5432/prod`` and an HTTP client with
    ``401 for api_key=<secret>`` (and ``token: ``, ``password=``); the same text lands in every free-text place the
    SDK offers: the error
    message, attributes (keys and values), names, a status message, emit(), a decision reason, an OTel
    span's status and attributes. Expected: ``<secret>`` appears in no sealed byte; the events are there."""
    url = f"postgresql://app:{secret}@db.internal:5432/prod"
    leak = f"could not connect to {url}; 401 for api_key={secret}; token: {secret}; password={secret}"
    audit = offline_client(tmp_path / "spool")
    with pytest.raises(ConnectionError), audit.action("execute_tool", name="db.query", attributes={"dsn": url}) as act:
        act.set_attribute("last_error", leak)
        raise ConnectionError(leak)
    with audit.action("execute_tool", name=f"call?api_key={secret}") as act:
        act.set_status("error", leak)
    audit.emit({"kind": "tool_error", "error_message": leak, "detail": leak, f"password={secret}": "x",
                f"api_key={secret}": Unprintable()})  # the note on the unprintable value quotes its key
    audit.decision("retry", reason=leak)
    audit.record_action("chat", "m", action_id="a-1", trace_id="t-1", start_time_us=1_800_000_000_000_000,
                        end_time_us=1_800_000_000_000_100, status="error", error_type="AuthError",
                        error_message=leak, attributes={"url": url})
    provider = TracerProvider()
    provider.add_span_processor(AuditSpanProcessor(audit))
    with provider.get_tracer("t").start_as_current_span("chat", attributes={
            "gen_ai.operation.name": "chat", "http.url": url}) as span:
        span.set_status(Status(StatusCode.ERROR, leak))
    provider.shutdown()
    audit.close(timeout=0.3)
    raw = sealed_bytes(tmp_path / "spool")
    assert secret.encode() not in raw
    records = records_of(tmp_path / "spool")
    assert len(records) == 10
    errors = [r["error_message"] for r in records if r["error_message"]]
    assert len(errors) == 5 and all("postgresql://[CREDENTIALS]@db.internal:5432/prod" in e for e in errors)


def test_bodies_and_free_text_are_redacted_when_bodies_are_captured(tmp_path: Path) -> None:
    """Attack: ``capture_bodies=True`` with the DB URL in the input and the exception. Expected: neither the
    body nor the error message holds the password; the digest is still of the original input."""
    url = "postgresql://app:S3cr3t-pw-93@db.internal:5432/prod"
    audit = offline_client(tmp_path / "spool", capture_bodies=True)
    with pytest.raises(RuntimeError), audit.action("execute_tool", name="db.connect", input={"dsn": url}):
        raise RuntimeError(f"cannot reach {url}")
    audit.close(timeout=0.3)
    assert b"S3cr3t-pw-93" not in sealed_bytes(tmp_path / "spool")
    start, _ = records_of(tmp_path / "spool")
    assert start["input_body"] == '{"dsn":"postgresql://[CREDENTIALS]@db.internal:5432/prod"}'
    assert start["input_digest"] == audit.digest({"dsn": url})


def test_the_generated_key_is_private_reused_and_per_tenant(tmp_path: Path) -> None:
    """Attack: read or replace the generated digest key. Expected: it is created mode 0600 (directory 0700),
    a second client on the same spool reuses it (digests stay comparable across restarts), another tenant
    gets different digests, and a key file others can read is refused with the fix in the message."""
    spool = tmp_path / "spool"
    first = offline_client(spool, tenant="acme")
    digest = first.digest(OTP)
    first.close(timeout=0.2)
    path = key_path(spool, "acme")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = offline_client(spool, tenant="acme")
    other = offline_client(tmp_path / "spool-other", tenant="globex", digest_key_file=path)
    try:
        assert again.digest(OTP) == digest and other.digest(OTP) != digest
    finally:
        again.close(timeout=0.2)
        other.close(timeout=0.2)
    os.chmod(path, 0o644)
    with pytest.raises(SdkConfigError, match="chmod 600"):
        offline_client(tmp_path / "spool-3", digest_key_file=path)


def test_a_tenant_path_cannot_escape_the_key_directory(tmp_path: Path) -> None:
    """Attack: tenant ``../../etc/cron.d/x`` (the generated key's file name comes from the tenant).
    Expected: the key file stays under ``<spool>/keys``."""
    path = key_path(tmp_path, "../../etc/cron.d/x")
    assert path.parent == tmp_path / "keys" and "/" not in path.name and not path.name.startswith(".")


def test_the_configured_key_never_prints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack: read ``AGENTAUDIT_DIGEST_KEY`` from a settings dump or the client's repr. Expected: masked;
    two processes given the same key agree on digests (both sides of an approval must)."""
    key = "k3y-" + "9" * 40
    monkeypatch.setenv("AGENTAUDIT_DIGEST_KEY", key)
    settings = SdkSettings()
    assert key not in repr(settings) and key not in str(settings.model_dump())
    a = offline_client(tmp_path / "a", settings=settings)
    b = offline_client(tmp_path / "b", settings=settings)
    try:
        assert a.digest({"x": 1}) == b.digest({"x": 1})
        assert key not in repr(a) + repr(a._digests)
    finally:
        a.close(timeout=0.2)
        b.close(timeout=0.2)
    with pytest.raises(SdkConfigError, match="at least 16"):
        AuditClient("127.0.0.1:1", spool_dir=tmp_path / "c", digest_key="short", ensure_topic=False)


def test_keyed_args_hash_still_binds_an_approval_in_the_consumer_rules(tmp_path: Path) -> None:
    """Attack: run a refund with no approval of its arguments, next to one that has it, hoping the keyed
    ``args_hash`` broke the consumer's check (``security.unapproved-consequential-action``, ``bind: args_hash``).
    Expected: the rule, run on the sealed events, passes the approved refund and fires for the other one."""
    audit = offline_client(tmp_path / "spool")
    approved, other = {"order": "o-1", "amount": 40}, {"order": "o-2", "amount": 4000}
    grant = Approval.grant(agent_id="agent-under-test", tool="payments.refund", args=approved, approver="alice")
    with audit.action("invoke_agent", name="support-bot"):
        audit.approval("alice", grant=grant)
        with audit.action("execute_tool", name="payments.refund", input=approved, approval=grant):
            pass
        with audit.action("execute_tool", name="payments.refund", input=other) as unapproved:
            pass
    audit.close(timeout=0.3)
    records = records_of(tmp_path / "spool")
    evaluator = RuleEvaluator(load_rule_set())
    fired = [i for i in replay(evaluator, records) if i.rule_id == "security.unapproved-consequential-action"]
    assert len(fired) == 1 and fired[0].count == 1
    [event] = [r for r in records if r["event_id"] in fired[0].event_ids]
    assert event["action_id"] == unapproved.action_id  # the approved refund passed: its keyed args_hash bound
