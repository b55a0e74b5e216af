"""Attacks on the notifier's claims: the webhook signature cannot be forged or moved to another body, hostile
incident text cannot ping a Slack channel or plant a link, a receiver that hangs or answers with an endless
body holds neither the worker nor the other routes, and notified events are admitted only as granted."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from agentaudit.consumers.notify import Notification, Notifier, NotifySettings, Sender, load_routes, verify_signature
from agentaudit.consumers.notify.payloads import SIGNATURE_HEADER, TIMESTAMP_HEADER, render
from agentaudit.control.authority import Authority
from agentaudit.control.provision import provision_authority
from agentaudit.rules.owners import load_owners
from agentaudit.schemas import SigningKey
from tests.notify_support import Receiver, incident_record, owners_file

SECRET = "an-hmac-secret-of-some-length"
HOSTILE = "<!channel> <!here> @here @channel <@U024BE7LH> *bold* _it_ `code` <https://evil.example|click me> &amp;"


def _note(**fields) -> Notification:
    base = dict(incident_id="inc-1", state="opened", key="opened/0", route_id="payments/0", tenant="acme",
                team="payments", rule_id="security.dangerous-tool", severity="high", summary=HOSTILE,
                agent_id="<!everyone>", actor="", note=HOSTILE, level=0, first_seen_us=1_700_000_000_000_000,
                at_us=1_700_000_000_000_000, link="https://audit.example.com/?page=incident&incident=inc-1")
    return Notification(**{**base, **fields})


def _routes(tmp_path: Path, routes: list[dict]):
    return load_routes(load_owners(owners_file(tmp_path / "owners.yaml", routes)), {}).for_team("payments")


def test_the_webhook_signature_verifies_over_http_and_a_tampered_body_or_replay_does_not(tmp_path: Path) -> None:
    receiver = Receiver().start()
    try:
        route = _routes(tmp_path, [{"kind": "webhook", "url": receiver.url, "secret": SECRET}])[0]
        Sender(NotifySettings(state_dir=tmp_path)).send(route, _note(summary="refund issued"))
        got = receiver.wait_for(1)[0]
    finally:
        receiver.stop()
    ts, sig = got.headers[TIMESTAMP_HEADER.lower()], got.headers[SIGNATURE_HEADER.lower()]
    assert verify_signature(SECRET.encode(), got.body, ts, sig)
    tampered = got.body.replace(b"refund issued", b"refund denied")
    assert tampered != got.body and not verify_signature(SECRET.encode(), tampered, ts, sig)
    assert not verify_signature(b"another-secret-entirely", got.body, ts, sig)
    assert not verify_signature(SECRET.encode(), got.body, str(int(ts) + 1), sig)  # the timestamp is signed too
    assert not verify_signature(SECRET.encode(), got.body, ts, sig, now=int(ts) + 3600)  # a replay an hour later
    assert not verify_signature(SECRET.encode(), got.body, "not-a-number", sig)


def test_hostile_incident_text_cannot_mention_link_or_format_in_slack(tmp_path: Path) -> None:
    route = _routes(tmp_path, [{"kind": "slack", "url": "https://hooks.example.com/x"}])[0]
    body = json.loads(render(route, _note())[0])
    texts = [body["text"], body["blocks"][0]["text"]["text"]]
    for text in texts:
        for attack in ("<!channel>", "<!here>", "<!everyone>", "<@U024BE7LH>", "<https://evil.example", "@here",
                       "@channel", "*bold*", "_it_", "`code`"):
            assert attack not in text, (attack, text)
        assert "&lt;!channel&gt;" in text and "&amp;amp;" in text  # shown as written, inert
    # the only link is ours
    assert texts[1].count("<") == 1 and "<https://audit.example.com/?page=incident&incident=inc-1|" in texts[1]


@pytest.mark.parametrize("mode", ["hang", "huge"])
def test_a_receiver_that_hangs_or_floods_costs_one_bounded_attempt(tmp_path: Path, mode: str) -> None:
    receiver = Receiver(mode=mode).start()
    try:
        route = _routes(tmp_path, [{"kind": "slack", "url": receiver.url}])[0]
        sender = Sender(NotifySettings(state_dir=tmp_path, timeout_s=1.0, max_response_bytes=4096))
        began = time.monotonic()
        if mode == "hang":
            from agentaudit.consumers.exceptions import DeliveryError

            with pytest.raises(DeliveryError) as caught:
                sender.post_once(route, _note())
            assert caught.value.retryable
        else:
            delivered = sender.post_once(route, _note())
            assert delivered.status == 200 and len(delivered.body) <= 4096  # not 10 GiB
        assert time.monotonic() - began < 4.0
    finally:
        receiver.stop()


@pytest.mark.integration
@pytest.mark.broker
def test_a_hanging_route_does_not_delay_the_teams_other_route(kafka_settings_factory, group_factory,
                                                              tmp_path: Path) -> None:
    from tests.integration.test_notify import notify_settings, publish, running

    kafka = kafka_settings_factory(partitions=1)
    stuck, healthy = Receiver(mode="hang").start(), Receiver().start()
    try:
        owners = load_owners(owners_file(tmp_path / "owners.yaml", [{"kind": "slack", "url": stuck.url},
                                                                    {"kind": "slack", "url": healthy.url}]))
        notifier = Notifier(kafka, notify_settings(tmp_path / "state", group_factory(), timeout_s=1.0), owners)
        with running(notifier):
            time.sleep(4)
            incidents = [incident_record() for _ in range(3)]
            sent = time.time()
            publish(kafka, incidents=incidents)
            got = healthy.wait_for(3, timeout=10)
            assert max(r.at for r in got) - sent < 2.0  # while the other route's requests hang
            assert len(stuck.requests) >= 1  # it was tried, and is still hanging
    finally:
        stuck.stop()
        healthy.stop()


def test_notified_events_are_recorded_only_when_the_authority_grants_them(tmp_path: Path) -> None:
    from agentaudit.settings import KafkaSettings

    provisioned = provision_authority(tmp_path / "home")
    key = SigningKey.load(provisioned.service_key_file)
    owners = load_owners(owners_file(tmp_path / "owners.yaml", []))
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:1")  # never dialled: no run()
    granted = Authority.load(provisioned.authority_file)
    assert Notifier(kafka, NotifySettings(state_dir=tmp_path / "a"), owners, key=key, authority=granted)._recording
    # an authority file from before the grant existed: no loop of refused events, deliveries stay in the outbox
    document = json.loads(provisioned.authority_file.read_text())
    document["grants"] = [g for g in document["grants"] if "agentaudit-notifier" not in json.dumps(g)]
    old = Authority.from_document(document, source="old-authority.yaml")
    assert not Notifier(kafka, NotifySettings(state_dir=tmp_path / "b"), owners, key=key, authority=old)._recording
    # and an unsigned notifier (no key) is not admitted either
    assert not Notifier(kafka, NotifySettings(state_dir=tmp_path / "c"), owners, authority=granted)._recording
