"""OIDC sign-in end to end: Streamlit's ``st.login`` in headless Chromium against a real OpenID provider
(``oidc-provider-mock``: discovery, client registration, authorization code flow with nonce, RS256 ID
tokens), run as its own process on loopback.

The client is registered with the provider like any relying party; the dashboard reads its ``[auth]``
section from ``.streamlit/secrets.toml`` in its working directory. A hand-made or wrongly signed user cookie
naming a listed identity signs no one in. An identity the users file does not list signs in at the provider but
sees nothing and cannot act; a listed one acknowledges an incident,
and the lifecycle event on Kafka names that OIDC identity.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from itsdangerous import URLSafeTimedSerializer

from agentaudit.dashboard import add_user
from agentaudit.infra.embedded import free_port
from agentaudit.infra.kafka import read_all
from agentaudit.schemas import AvroCodec
from tests.dashboard_browser import CHROMIUM, CHROMIUM_ARGS, need_chromium, serve_dashboard
from tests.dashboard_support import seeded_database

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]

CAROL = "carol@example.com"  # listed in the users file, operator
MALLORY = "mallory@example.com"  # has an account at the provider, not at the dashboard


def _register_client(issuer: str, redirect_uri: str) -> dict[str, str]:
    """Dynamic client registration, as an operator would register the dashboard with their provider."""
    body = json.dumps({"redirect_uris": [redirect_uri]}).encode()
    request = urllib.request.Request(f"{issuer}/oauth2/clients", data=body,  # noqa: S310 - loopback
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


@contextmanager
def oidc_provider(log_path) -> Iterator[str]:  # type: ignore[no-untyped-def]  # a pytest fixture argument
    """The provider as a separate process (as a real one would be); yields its issuer URL once discovery answers."""
    if importlib.util.find_spec("oidc_provider_mock") is None:  # not imported here: it warns on import
        pytest.skip("oidc-provider-mock is not installed (pip install -e '.[test]')")
    port = free_port()
    users = [{"sub": "u-1001", "email": CAROL, "name": "Carol"}, {"sub": "u-6666", "email": MALLORY, "name": "Mallory"}]
    argv = [sys.executable, "-m", "oidc_provider_mock", "--port", str(port), "--require-registration", "true",
            "--require-nonce", "true"] + [arg for user in users for arg in ("--user-claims", json.dumps(user))]
    issuer = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=2):  # noqa: S310 - the mock issuer on loopback
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the OIDC provider did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.2)
        yield issuer
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def oidc_dashboard(store_server, kafka_settings_factory, tmp_path):
    need_chromium()
    kafka = kafka_settings_factory(partitions=1)
    store_settings, _ = seeded_database(store_server.url, big_trace_actions=10)
    users = tmp_path / "dashboard-users"
    add_user(users, CAROL, team="team-sre", oidc=True)
    with oidc_provider(tmp_path / "oidc.log") as issuer:
        port = free_port()
        redirect_uri = f"http://127.0.0.1:{port}/oauth2callback"
        client = _register_client(issuer, redirect_uri)
        (tmp_path / ".streamlit").mkdir()
        (tmp_path / ".streamlit" / "secrets.toml").write_text(
            "[auth]\n"
            f'redirect_uri = "{redirect_uri}"\n'
            f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
            f'client_id = "{client["client_id"]}"\n'
            f'client_secret = "{client["client_secret"]}"\n'
            f'server_metadata_url = "{issuer}/.well-known/openid-configuration"\n')
        env = {"AGENTAUDIT_DASHBOARD_AUTH": "oidc", "AGENTAUDIT_DASHBOARD_USERS_FILE": str(users)}
        with serve_dashboard(port, tmp_path, kafka=kafka, store=store_settings, env=env) as url:
            yield url, kafka


def _log_in_at_provider(page, subject: str) -> None:  # type: ignore[no-untyped-def]  # a Playwright page
    """Click the dashboard's Log in, then pick ``subject`` on the provider's authorization page."""
    from playwright.sync_api import expect

    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Authorize Client")).to_be_visible()
    page.get_by_role("button", name=subject).click()


def test_oidc_sign_in_names_the_identity_on_the_lifecycle_event(oidc_dashboard):
    from playwright.sync_api import expect, sync_playwright

    url, kafka = oidc_dashboard
    expect.set_options(timeout=30_000)  # two cores shared with the broker, the store and the provider
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1800})
            # Forged identity: Streamlit's user cookie naming carol, written by hand (base64 of the JSON) or signed
            # the way Streamlit signs it but with a guessed secret. Expected: not signed in, nothing to act on.
            forged = json.dumps({"email": CAROL, "sub": "u-1001", "is_logged_in": True}, separators=(",", ":"))
            guessed_secret = URLSafeTimedSerializer("changeme", salt="_streamlit_user").dumps(forged)
            page = context.new_page()
            page.set_default_timeout(30_000)
            for value in (base64.b64encode(forged.encode()).decode(), guessed_secret):
                context.add_cookies([{"name": "_streamlit_user", "value": value, "url": url}])
                page.goto(f"{url}/?page=incident&incident=inc-critical-open")
                expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
                expect(page.get_by_text(f"Signed in as {CAROL}")).to_have_count(0)
                expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
                context.clear_cookies()

            # Mallory holds a valid account at the provider, but the users file does not list her.
            _log_in_at_provider(page, "u-6666")
            expect(page.get_by_text(f"{MALLORY} is not a dashboard user")).to_be_visible()
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
            page.get_by_role("button", name="Log out").click()  # RP-initiated logout at the provider
            page.get_by_role("button", name="End session").click()
            page.goto(f"{url}/?page=incident&incident=inc-critical-open")
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

            _log_in_at_provider(page, "u-1001")
            expect(page.get_by_text(f"Signed in as {CAROL}")).to_be_visible()
            page.goto(f"{url}/?page=incident&incident=inc-critical-open")  # the OIDC cookie outlives a page load
            expect(page.get_by_text(f"Signed in as {CAROL}")).to_be_visible()
            expect(page.get_by_text("not acknowledged")).to_be_visible()
            page.get_by_label("Note").fill("paged via SSO")
            page.get_by_label("Note").press("Enter")
            page.get_by_role("button", name="Acknowledge").click()
            expect(page.get_by_text(f"acknowledged by {CAROL} published")).to_be_visible()
        finally:
            browser.close()
            expect.set_options(timeout=5_000)  # Playwright's default, for the tests that follow

    messages = read_all(kafka, kafka.topics.lifecycle, expected=1, timeout=15, idle=5)
    events = [AvroCodec("incident_lifecycle").decode(m.value()) for m in messages]
    assert [(m.key(), e["type"], e["actor"]["type"], e["actor"]["id"], e["note"])
            for m, e in zip(messages, events, strict=True)] == [
        (b"inc-critical-open", "acknowledged", "human", CAROL, "paged via SSO")]
