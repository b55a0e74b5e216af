"""The Streamlit entry point: ``agentaudit dashboard`` (or ``streamlit run dashboard/app.py``).

Settings are read from the environment here and nowhere deeper: ``AGENTAUDIT_CLICKHOUSE_URL`` and
``AGENTAUDIT_DATABASE`` (read-only session), ``AGENTAUDIT_BOOTSTRAP_SERVERS`` and the lifecycle and control topics,
``AGENTAUDIT_DASHBOARD_*`` (users, auth, graph size).
"""

from __future__ import annotations

import streamlit as st

from agentaudit.dashboard import _pages
from agentaudit.dashboard._control_page import control_page
from agentaudit.dashboard._catalog import RuleInfo, load_catalog
from agentaudit.dashboard.auth import User, parse_users, sign_in
from agentaudit.dashboard.control import ControlDesk
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
def _publisher(bootstrap: str, topic: str, _settings: KafkaSettings) -> LifecyclePublisher:
    return LifecyclePublisher(_settings)


@st.cache_resource(show_spinner=False)
def _control(bootstrap: str, topic: str, _settings: KafkaSettings) -> ControlDesk:
    return ControlDesk(_settings)


@st.cache_resource(show_spinner=False)
def _catalog(paths: str | None) -> tuple[dict[str, RuleInfo], str]:
    return load_catalog(paths)


def _actor(settings: DashboardSettings, users: list[User]) -> User | None:
    """The signed-in actor: Streamlit OIDC in production, the configured user list by default."""
    with st.sidebar:
        if settings.auth == "oidc":
            if not st.user.is_logged_in:
                st.button("Log in", on_click=st.login, key="oidc_login")
                return None
            name = str(st.user.get("email") or st.user.get("name") or "")
            st.caption(f"Signed in as **{_pages.md(name)}**")
            st.button("Log out", on_click=st.logout, key="oidc_logout")
            return User(name)
        current: User | None = st.session_state.get("actor")
        if current is not None:
            st.caption(f"Signed in as **{_pages.md(current.name)}**" + (f" ({_pages.md(current.team)})" if current.team else ""))
            if st.button("Sign out", key="sign_out"):
                del st.session_state["actor"]
                st.rerun()
            return current
        with st.form("sign_in", border=True):
            name = st.selectbox("Sign in as", [u.name for u in users], key="sign_in_user")
            password = st.text_input("Password", type="password", key="sign_in_password") \
                if settings.password.get_secret_value() else ""
            if st.form_submit_button("Sign in"):
                try:
                    st.session_state["actor"] = sign_in(users, name, password,
                                                        required_password=settings.password.get_secret_value())
                    st.rerun()
                except AuthError as exc:
                    st.error(str(exc))
        return None


def main() -> None:
    st.set_page_config(page_title="agentaudit", page_icon="🛡️", layout="wide")
    try:
        settings = DashboardSettings()
        store_settings = StoreSettings()
        kafka = KafkaSettings()
        users = parse_users(settings.users)
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
    actor = _actor(settings, users)
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
    ctx = _pages.Context(store=store, settings=settings, users=users,
                         publisher=_publisher(kafka.bootstrap_servers, kafka.topics.lifecycle, kafka), actor=actor,
                         catalog=catalog, catalog_revision=revision,
                         control=_control(kafka.bootstrap_servers, kafka.topics.control, kafka))
    try:
        PAGES[page][1](ctx)
    except AgentAuditError as exc:
        st.error(f"{PAGES[page][0]} failed: {exc}")


main()
