"""The Streamlit entry point: ``agentaudit dashboard`` (or ``streamlit run dashboard/app.py``).

Settings are read from the environment here and nowhere deeper: ``AGENTAUDIT_CLICKHOUSE_URL`` and
``AGENTAUDIT_DATABASE`` (read-only session), ``AGENTAUDIT_BOOTSTRAP_SERVERS`` and the lifecycle and control topics,
``AGENTAUDIT_DASHBOARD_*`` (users file, auth, graph size), ``AGENTAUDIT_AUTHORITY_FILE`` (which control commands
are shown) and ``AGENTAUDIT_SERVICE_KEY_FILE`` (the key that signs acts on behalf of the signed-in person).
No page shows before sign-in unless ``AGENTAUDIT_DASHBOARD_ANONYMOUS_VIEW`` is set, and only operators act.
"""

from __future__ import annotations

import streamlit as st

from agentaudit.control.settings import AuthoritySettings
from agentaudit.dashboard import _pages
from agentaudit.dashboard._catalog import RuleInfo, load_catalog
from agentaudit.dashboard._control_page import control_page
from agentaudit.dashboard.auth import SESSION_COOKIE, Credential, SessionTokens, SignInThrottle, User, sign_in
from agentaudit.dashboard.control import ControlDesk
from agentaudit.dashboard.credentials import read_users
from agentaudit.dashboard.exceptions import AuthError
from agentaudit.dashboard.lifecycle import LifecyclePublisher
from agentaudit.dashboard.settings import DashboardSettings
from agentaudit.exceptions import AgentAuditError
from agentaudit.infra.clickhouse import Store, connect
from agentaudit.settings import KafkaSettings, StoreSettings

PAGES = {
    "incidents": ("🔥 Incidents", _pages.incidents_page),
    "incident": ("🔎 Incident detail", _pages.incident_page),
    "owners": ("👥 Owners", _pages.owners_page),
    "agents": ("🤖 Agents", _pages.agents_page),
    "rules": ("📏 Rules", _pages.rules_page),
    "traces": ("🧵 Trace explorer", _pages.traces_page),
    "control": ("🛑 Control", control_page),
}


@st.cache_resource(show_spinner=False)
def _store(url: str, database: str, user: str, _settings: StoreSettings) -> Store:
    return connect(_settings, readonly=True)


@st.cache_resource(show_spinner=False)
def _publisher(bootstrap: str, topic: str, key_file: str, _settings: KafkaSettings,
               _authority: AuthoritySettings) -> LifecyclePublisher:
    return LifecyclePublisher(_settings, key=_authority.service_key())


@st.cache_resource(show_spinner=False)
def _control(bootstrap: str, topic: str, key_file: str, authority_file: str, _settings: KafkaSettings,
             _authority: AuthoritySettings) -> ControlDesk:
    return ControlDesk(_settings, key=_authority.service_key(), authority=_authority.load_authority())


@st.cache_resource(show_spinner=False)
def _catalog(paths: str | None) -> tuple[dict[str, RuleInfo], str]:
    return load_catalog(paths)


@st.cache_resource(show_spinner=False)
def _throttle() -> SignInThrottle:
    return SignInThrottle()  # one per process: a new browser session does not reset the count


@st.cache_resource(show_spinner=False)
def _tokens() -> SessionTokens:
    return SessionTokens()  # one key per process: a restart signs everyone out


def _cookie_script(token: str | None, ttl: float) -> None:
    """Set (or with None, delete) the sign-in cookie in the browser; Streamlit cannot set cookies from Python."""
    value, age = (token, int(ttl)) if token else ("", 0)
    st.html(f"<script>document.cookie = '{SESSION_COOKIE}={value}; Path=/; Max-Age={age}; SameSite=Strict'"
            " + (location.protocol === 'https:' ? '; Secure' : '');</script>", unsafe_allow_javascript=True)


def _password_actor(credentials: dict[str, Credential]) -> User | None:
    """The user signed in with name and password (in this session, or by the signed cookie of an earlier one),
    checked again on every run."""
    tokens = _tokens()
    signed_in: tuple[str, str] | None = st.session_state.get("signed_in")
    cookie = st.context.cookies.get(SESSION_COOKIE)
    if signed_in is None and cookie and cookie != st.session_state.get("dropped_cookie"):
        user = tokens.check(credentials, cookie)
        if user is not None:
            signed_in = st.session_state["signed_in"] = (user.name, credentials[user.name].hash)
            st.session_state["session_token"] = cookie
    if signed_in is not None:
        entry = credentials.get(signed_in[0])
        if entry is not None and entry.hash == signed_in[1]:
            user = entry.user
            if "set_cookie" in st.session_state:
                _cookie_script(st.session_state.pop("set_cookie"), tokens.ttl)
            st.caption(f"Signed in as **{_pages.md(user.name)}**" + (f" ({_pages.md(user.team)})" if user.team else "")
                       + ("" if user.may_act else " · viewer: may read, not act"))
            if st.button("Sign out", key="sign_out"):
                _sign_out(tokens)
                st.rerun()
            return user
        # Removed from the users file or given a new password since: this session ends.
        _sign_out(tokens)
        st.warning("Signed out: your dashboard credential was reset or removed.")
    if st.session_state.pop("clear_cookie", False):
        _cookie_script(None, 0)
    with st.form("sign_in", border=True):
        name = st.text_input("User", key="sign_in_user", autocomplete="username")
        password = st.text_input("Password", type="password", key="sign_in_password",
                                 autocomplete="current-password")
        if st.form_submit_button("Sign in"):
            try:
                user = sign_in(credentials, name.strip(), password, throttle=_throttle())
            except AuthError as exc:
                st.error(str(exc))
            else:
                token = tokens.issue(credentials[user.name])
                st.session_state.update(signed_in=(user.name, credentials[user.name].hash), session_token=token,
                                        set_cookie=token)
                st.rerun()
    return None


def _sign_out(tokens: SessionTokens) -> None:
    """End this session's sign-in: revoke its token, delete the cookie, and never read that cookie again here."""
    st.session_state.pop("signed_in", None)
    token = st.session_state.pop("session_token", None)
    if token:
        tokens.revoke(token)
    cookie = st.context.cookies.get(SESSION_COOKIE)
    if cookie:
        tokens.revoke(cookie)
        st.session_state["dropped_cookie"] = cookie  # this session's handshake keeps sending it
    st.session_state["clear_cookie"] = True


def _oidc_actor(credentials: dict[str, Credential]) -> User | None:
    """The OIDC identity (its e-mail, else its subject) when the users file lists it."""
    if not st.user.is_logged_in:
        st.button("Log in", on_click=st.login, key="oidc_login")
        return None
    identity = str(st.user.get("email") or st.user.get("sub") or "")
    entry = credentials.get(identity)
    st.button("Log out", on_click=st.logout, key="oidc_logout")
    if st.user.get("email_verified") is False or entry is None:
        st.error(f"{_pages.md(identity)} is not a dashboard user (or its e-mail is not verified); an operator adds "
                 "it with `agentaudit dashboard-users add IDENTITY --oidc`.")
        return None
    user = entry.user
    st.caption(f"Signed in as **{_pages.md(user.name)}**" + (f" ({_pages.md(user.team)})" if user.team else "")
               + ("" if user.may_act else " · viewer: may read, not act"))
    return user


def _signed_in(settings: DashboardSettings, credentials: dict[str, Credential]) -> User | None:
    """Who is signed in, if anyone: never an anonymous actor."""
    with st.sidebar:
        return _oidc_actor(credentials) if settings.auth == "oidc" else _password_actor(credentials)


def main() -> None:
    st.set_page_config(page_title="agentaudit", page_icon="🛡️", layout="wide")
    try:
        settings = DashboardSettings()
        store_settings = StoreSettings()
        kafka = KafkaSettings()
        authority = AuthoritySettings()
        credentials = read_users(settings.users_file)  # every run: a reset or a removal applies at once
    except (AgentAuditError, ValueError) as exc:
        st.error(f"Configuration error: {exc}")
        st.stop()
    keys = list(PAGES)
    # The URL picks the page on a session's first run (deep links); buttons that navigate set nav_page.
    wanted = st.session_state.pop("nav_page", None)
    if wanted is None and "page" not in st.session_state:
        wanted = st.query_params.get("page", "incidents")
    if wanted is not None:
        st.session_state["page"] = wanted if wanted in keys else "incidents"
    with st.sidebar:
        st.markdown("## 🛡️ agentaudit")
        page = st.radio("Page", keys, key="page", format_func=lambda k: PAGES[k][0], label_visibility="collapsed")
    if st.query_params.get("page") != page:
        st.query_params.clear()  # another page's parameters (incident, trace) do not carry over
        st.query_params["page"] = page
    user = _signed_in(settings, credentials)
    if user is None and not settings.anonymous_view:
        st.title("Sign in")
        st.info("Sign in (sidebar) to see incidents, agents and traces.")
        st.stop()
    actor = user if user is not None and user.may_act else None  # viewers and visitors never act
    try:
        store = _store(store_settings.clickhouse_url, store_settings.database, store_settings.clickhouse_user,
                       store_settings)
    except AgentAuditError as exc:
        st.error(f"The store is not reachable: {exc}")
        st.stop()
    catalog, revision = _catalog(settings.rules)
    with st.sidebar:
        st.caption(f"store {store_settings.redacted_url()} · db `{store_settings.database}` (read-only)  \n"
                   f"broker {kafka.bootstrap_servers} · `{kafka.topics.lifecycle}`")
    key_file, authority_file = str(authority.service_key_file or ""), str(authority.authority_file or "")
    try:
        publisher = _publisher(kafka.bootstrap_servers, kafka.topics.lifecycle, key_file, kafka, authority)
        control = _control(kafka.bootstrap_servers, kafka.topics.control, key_file, authority_file, kafka, authority)
    except AgentAuditError as exc:
        st.error(f"Configuration error (authority or service key): {exc}")
        st.stop()
    ctx = _pages.Context(store=store, settings=settings, users=[c.user for c in credentials.values()],
                         publisher=publisher, actor=actor, catalog=catalog, catalog_revision=revision,
                         control=control)
    try:
        PAGES[page][1](ctx)
    except AgentAuditError as exc:
        st.error(f"{PAGES[page][0]} failed: {exc}")


main()
