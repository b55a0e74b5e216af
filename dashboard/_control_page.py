"""The Control page: commands in force, the kill switch per agent, and clears, each under the actor's name."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from agentaudit.dashboard import queries as q
from agentaudit.dashboard._pages import Context, md
from agentaudit.dashboard.exceptions import DashboardError
from agentaudit.exceptions import AgentAuditError
from agentaudit.schemas import ControlCommand, ControlState

__all__ = ["control_page"]

#: Seconds a session reuses its last read of the control topic (a publish or Refresh reads again).
STATE_TTL_S = 10.0


def _when(us: int | None) -> str:
    return "" if us is None else datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _state(ctx: Context) -> ControlState | None:
    cached = st.session_state.get("control_state")
    if cached is not None and time.monotonic() - cached[0] < STATE_TTL_S:
        return cached[1]
    try:
        state = ctx.control.state()
    except AgentAuditError as exc:
        st.error(f"Reading the control topic {ctx.control.topic!r} failed: {exc}")
        return None
    st.session_state["control_state"] = (time.monotonic(), state)
    return state


def _act(ctx: Context, what: str, send: Callable[[str], ControlCommand]) -> None:
    """Publish a command (``send(actor_name)``), then show the re-read state with the result on top."""
    if ctx.actor is None:
        st.error(f"Sign in (sidebar) before you {what}: every control command carries your name.")
        return
    try:
        command: ControlCommand = send(ctx.actor.name)
    except (DashboardError, AgentAuditError) as exc:
        st.error(f"{what} failed: {exc}")
        return
    st.session_state["control_flash"] = (
        f"{command.type.value} of agent {command.agent_id} by {command.issuer.id} published to "
        f"{ctx.control.topic} (command {command.command_id}).")
    st.session_state.pop("control_state", None)  # read the topic again, with this command in it
    st.rerun()


def _commands_frame(commands: list[ControlCommand]) -> pd.DataFrame:
    return pd.DataFrame([{
        "command": c.command_id, "type": c.type.value, "tenant": c.tenant, "agent": c.agent_id, "tool": c.tool or "",
        "issuer": f"{c.issuer.type.value}:{c.issuer.id}", "issued": _when(c.issued_at_us),
        "expires": _when(c.expires_at_us), "reason": c.reason, "incident": c.incident_id or "",
    } for c in commands])


def control_page(ctx: Context) -> None:
    """Commands in force with a Clear per command; a Kill per recently active agent and for any typed agent id."""
    st.title("Control")
    if ctx.control is None:
        st.error("No Kafka broker configured (AGENTAUDIT_BOOTSTRAP_SERVERS): control commands cannot be read or "
                 "published.")
        return
    flash = st.session_state.pop("control_flash", None)
    if flash:
        st.success(flash)
    if st.button("Refresh", key="control_refresh"):
        st.session_state.pop("control_state", None)
    state = _state(ctx)
    if state is None:
        return
    now = time.time_ns() // 1000
    active = state.active(now)
    st.caption(f"{len(active)} command(s) in force, folded from all {state.applied} on `{ctx.control.topic}`. "
               "Humans kill and clear here or with `agentaudit control kill/clear`; each is recorded with its actor.")
    who = ctx.actor.name if ctx.actor else None
    with st.container(border=True):
        st.markdown(f"**Act** as **{md(who)}**" if who else "**Act** — sign in first (sidebar)")
        note = st.text_input("Note", key="control_note", placeholder="why: a kill needs one, a clear should have one")

    st.subheader("In force")
    if not active:
        st.info("No control command is in force: every agent may act.")
    else:
        st.dataframe(_commands_frame(active), hide_index=True, width="stretch")
        for c in active:
            cols = st.columns([4, 1])
            cols[0].markdown(f"`{c.type.value}` · **{md(c.agent_id)}**" + (f" · tool `{md(c.tool)}`" if c.tool else "")
                             + f" · by {md(c.issuer.id)} · {md(c.reason)}")
            if cols[1].button("Clear", key=f"clear:{c.command_id}", width="stretch"):
                _act(ctx, f"clear {c.type.value} {c.command_id}",
                     lambda actor, c=c: ctx.control.clear(c, actor=actor, note=note))

    st.subheader("Kill switch")
    st.caption("Stops every action of the agent (its next check raises ActionBlocked) until the kill is cleared.")
    c1, c2, c3 = st.columns([3, 2, 1])
    typed = c1.text_input("Agent id", key="kill_agent_id", placeholder="billing-bot, or * for every agent")
    tenant = c2.text_input("Tenant", key="kill_tenant", placeholder="any")
    if c3.button("Kill", key="kill_typed", type="primary", width="stretch"):
        _act(ctx, f"kill {typed!r}",
             lambda actor: ctx.control.kill(typed, actor=actor, reason=note, tenant=tenant.strip()))
    agents = q.recent_agents(ctx.store)
    if agents.empty:
        st.info("No agent acted in the last 24 hours.")
        return
    for row in agents.itertuples(index=False):
        blocking = state.blocking(row.tenant, row.agent_id, None, now)
        cols = st.columns([3, 2, 2, 1])
        cols[0].markdown(f"**{md(row.agent_id)}** · {md(row.tenant)}")
        cols[1].caption(f"{row.events} events, last {pd.Timestamp(row.last_seen).strftime('%H:%M:%S')}")
        cols[2].caption(f"⛔ {blocking.type.value} by {md(blocking.issuer.id)}" if blocking else "running")
        if cols[3].button("Kill", key=f"kill:{row.tenant}:{row.agent_id}", width="stretch",
                          disabled=blocking is not None and blocking.type.value == "kill_agent"):
            _act(ctx, f"kill {row.agent_id!r}",
                 lambda actor, row=row: ctx.control.kill(row.agent_id, actor=actor, reason=note, tenant=row.tenant))
