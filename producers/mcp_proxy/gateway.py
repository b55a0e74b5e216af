"""The gateway: an MCP server whose tools are another MCP server's, each call judged and recorded first.

Every ``tools/call`` is one ``execute_tool`` action of the SDK (tool name, keyed digest of the arguments
and of the result, status, latency), child of the session's root action, so the client's session is the
trace. Before it is forwarded, the SDK's gate decides (control commands: kill, pause, tool block,
approval requirement; then the inline guard). A refusal is an MCP error result (``isError: true``) whose
text says why, recorded as a ``guardrail`` event, and the upstream server never sees the call.

>>> gateway = McpGateway(Upstream.stdio(["python", "server.py"]), audit)
>>> server = gateway.server()           # an mcp lowlevel Server: run it over stdio or streamable HTTP
"""

from __future__ import annotations

import contextvars
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from anyio import to_thread
from mcp import Client
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError

from agentaudit.control import ActionBlocked
from agentaudit.control.approvals import args_hash, canonical_json
from agentaudit.logs import get_logger
from agentaudit.producers.client import Action, AuditClient
from agentaudit.producers.mcp_proxy._approvals import ApprovalWatcher
from agentaudit.producers.mcp_proxy._probe import blocked_by_name
from agentaudit.producers.mcp_proxy.settings import McpProxySettings
from agentaudit.producers.mcp_proxy.upstream import Upstream

__all__ = ["McpGateway"]

_log = get_logger("agentaudit.mcp_proxy")

#: Longest tool name a call may carry (MCP names are short identifiers); longer names are refused.
MAX_TOOL_NAME = 256
#: The code the mcp client raises when the upstream's connection is gone (its process died, its socket closed).
CONNECTION_CLOSED = -32000
#: Sessions whose root action is kept open at once over HTTP; the oldest is ended first.
MAX_SESSIONS = 10_000


def _error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def _first_text(result: types.CallToolResult) -> str:
    for item in result.content:
        if isinstance(item, types.TextContent):
            return item.text[:500]
    return "the tool reported an error"


@dataclass(slots=True)
class _Root:
    """A session's root action, entered in its own context so it encloses no other task."""

    action_id: str
    action: Action | None = None
    context: contextvars.Context | None = None

    def end(self) -> None:
        if self.action is not None and self.context is not None:
            self.context.run(self.action.__exit__, None, None, None)
            self.action = None


@dataclass(slots=True)
class _State:
    """What the proxy holds while it serves: the upstream session and the roots of the client sessions."""

    client: Client
    server_name: str
    tools: set[str] = field(default_factory=set)
    roots: OrderedDict[str, _Root] = field(default_factory=OrderedDict)
    lock: anyio.Lock = field(default_factory=anyio.Lock)


class McpGateway:
    """Serves an upstream MCP server's tools through the agentaudit gate and SDK.

    :param upstream: how to reach the real server (:meth:`Upstream.stdio` or :meth:`Upstream.http`).
    :param audit: the SDK client that records the calls and owns the gate (``control=True`` and/or
        ``guard_rules``); its agent and tenant are the proxied agent's.
    :param settings: what is enforced and how long a call waits for an approval.
    :param transport: ``stdio`` or ``http``, recorded on each call as ``mcp.transport``.
    """

    def __init__(self, upstream: Upstream, audit: AuditClient, settings: McpProxySettings | None = None, *,
                 transport: str = "stdio") -> None:
        self.upstream = upstream
        self.audit = audit
        self.settings = settings or McpProxySettings()
        self.transport = transport
        self._approvals: ApprovalWatcher | None = None
        self.calls = {"forwarded": 0, "refused": 0, "failed": 0}

    # -- the MCP server ---------------------------------------------------------------------------

    def server(self) -> Server[_State]:
        """A lowlevel MCP server that lists and calls the upstream's tools through the gate."""
        return Server("agentaudit-mcp-proxy", lifespan=self._lifespan, on_list_tools=self._list_tools,
                      on_call_tool=self._call_tool)

    @asynccontextmanager
    async def _lifespan(self, _server: Server[_State]) -> AsyncIterator[_State]:
        async with self.upstream.client() as client:
            info = client.server_info
            state = _State(client=client, server_name=(info.name if info is not None else "") or "upstream")
            try:
                yield state
            finally:
                for root in state.roots.values():
                    root.end()
                state.roots.clear()
                if self._approvals is not None:
                    self._approvals.close()

    async def _list_tools(self, ctx: ServerRequestContext[_State],
                          params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        state = ctx.lifespan_context
        cursor = params.cursor if params is not None else None
        try:
            listed = (await state.client.session.list_tools(params=params) if cursor
                      else await state.client.list_tools())
        except MCPError as exc:
            if exc.code != CONNECTION_CLOSED:
                raise
            raise MCPError(types.INTERNAL_ERROR, f"upstream_unavailable: the upstream MCP server "
                           f"{state.server_name!r} closed the connection; restart the proxy or the server") from exc
        state.tools.update(tool.name for tool in listed.tools)
        tools = listed.tools
        if self.settings.hide_blocked:
            tools = [tool for tool in tools if not await to_thread.run_sync(blocked_by_name, self.audit, tool.name)]
        return types.ListToolsResult(tools=tools, next_cursor=listed.next_cursor)

    async def _call_tool(self, ctx: ServerRequestContext[_State],
                         params: types.CallToolRequestParams) -> types.CallToolResult:
        state = ctx.lifespan_context
        name = params.name
        args: dict[str, Any] = dict(params.arguments or {})
        key = _session_key(ctx)
        if key is None:  # no session (2026-07-28 HTTP): the call gets a root of its own, ended with it
            single = await self._open_root(state, f"call:{uuid.uuid4().hex}")
            try:
                return await self._judge_and_forward(state, single.action_id, name, args)
            finally:
                single.end()
        return await self._judge_and_forward(state, await self._root(key, state), name, args)

    async def _judge_and_forward(self, state: _State, root: str, name: str,
                                 args: dict[str, Any]) -> types.CallToolResult:
        refusal = await self._screen(state, root, name, args)
        if refusal is not None:
            self.calls["refused"] += 1
            return _error_result(refusal)
        act, refused = await self._admit(root, name, args, state)
        if act is None:
            self.calls["refused"] += 1
            return _error_result(refused or "refused")
        context = contextvars.Context()
        try:
            result = await state.client.call_tool(name, args, read_timeout_seconds=self.settings.upstream_timeout_s)
        except MCPError as exc:
            self.calls["failed"] += 1
            context.run(act.__exit__, type(exc), exc, None)
            if exc.code != CONNECTION_CLOSED:
                raise  # the upstream's own JSON-RPC error goes back as it was
            _log.error("mcp_proxy.upstream_gone", server=state.server_name, tool=name)
            return _error_result(f"upstream_unavailable: the upstream MCP server {state.server_name!r} closed the "
                                 f"connection during or before {name!r}; restart the proxy or the server")
        except Exception as exc:  # noqa: BLE001 - an upstream that broke must not break the proxy
            self.calls["failed"] += 1
            context.run(act.__exit__, type(exc), exc, None)
            _log.warning("mcp_proxy.upstream_failed", tool=name, error=repr(exc))
            return _error_result(f"the upstream MCP server failed on {name!r}: {type(exc).__name__}")
        self.calls["forwarded"] += 1
        act.set_output(result.model_dump(mode="json", exclude_none=True, by_alias=True).get("content"))
        if result.is_error:
            act.set_status("error", _first_text(result))
        context.run(act.__exit__, None, None, None)
        return result

    # -- judging a call --------------------------------------------------------------------------

    async def _screen(self, state: _State, root: str, name: str, args: dict[str, Any]) -> str | None:
        """Refusals that need no gate: odd names, tools the upstream does not list, oversized arguments."""
        code = reason = None
        if not name or len(name) > MAX_TOOL_NAME:
            code, reason = "bad_tool_name", f"a tool name must have 1 to {MAX_TOOL_NAME} characters"
        else:
            if name not in state.tools:
                async with state.lock:  # the client may call without listing first: learn the names once
                    if name not in state.tools:
                        try:
                            state.tools.update(t.name for t in (await state.client.list_tools()).tools)
                        except Exception as exc:  # noqa: BLE001 - an upstream that cannot list must not break the call; the name is judged unknown
                            _log.warning("mcp_proxy.list_failed", error=repr(exc))
            if name not in state.tools:
                # exact names only: a case or Unicode variant of a listed tool is not that tool
                code, reason = "unknown_tool", f"the upstream server {state.server_name!r} lists no tool {name!r}"
            else:
                try:
                    size = len(canonical_json(args).encode("utf-8"))
                except (ValueError, RecursionError):  # NaN, infinity, or nesting too deep to judge
                    size = -1
                if size < 0:
                    code, reason = "bad_arguments", "the arguments are not JSON values"
                elif size > self.settings.max_argument_bytes:
                    code = "arguments_too_large"
                    reason = (f"the arguments have {size} bytes, more than the {self.settings.max_argument_bytes} "
                              "the proxy accepts (AGENTAUDIT_MCP_MAX_ARGUMENT_BYTES)")
        if code is None:
            return None
        self.audit.event("guardrail", "mcp-proxy", parent=root, status="denied",
                         attributes={"decision": "deny", "code": code, "reason": reason, "guarded_kind": "execute_tool",
                                     "guarded_name": name[:MAX_TOOL_NAME]})
        return f"{code}: refused by agentaudit mcp-proxy: {reason}"

    async def _admit(self, root: str, name: str, args: dict[str, Any],
                     state: _State) -> tuple[Action | None, str | None]:
        """The started action when the gate says yes, else (None, why); waits for an approval when asked to."""
        attributes = {"mcp.server": state.server_name, "mcp.transport": self.transport}
        try:
            return await self._start(root, name, args, attributes, None), None
        except ActionBlocked as exc:
            if exc.code != "approval_required" or self.settings.approval_timeout_s <= 0:
                return None, str(exc)
            first = exc
        watcher = self._watcher()
        plain = args_hash(args)
        timeout = self.settings.approval_timeout_s
        _log.info("mcp_proxy.held", tool=name, agent=self.audit.settings.agent_id, timeout_s=timeout)
        approval = await to_thread.run_sync(watcher.wait, self.audit.settings.agent_id, name,
                                            self.audit.args_hash(args), plain, timeout, abandon_on_cancel=True)
        if approval is None:
            return None, f"{first}; no approval of these arguments arrived within {timeout:g}s"
        try:
            return await self._start(root, name, args, attributes, approval), None
        except ActionBlocked as exc:
            return None, str(exc)

    async def _start(self, root: str, name: str, args: dict[str, Any], attributes: dict[str, str],
                     approval: Any) -> Action:
        act = self.audit.action("execute_tool", name, parent=root, input=args, attributes=attributes,
                                approval=approval)
        context = contextvars.Context()
        # the gate may wait for the control log to be read: off the event loop
        await to_thread.run_sync(context.run, act.__enter__)
        return act

    def _watcher(self) -> ApprovalWatcher:
        if self._approvals is None:
            self._approvals = ApprovalWatcher(self.audit.kafka, self.audit.settings.tenant).start()
        return self._approvals

    # -- sessions as traces ----------------------------------------------------------------------

    async def _root(self, key: str, state: _State) -> str:
        """The id of the root action of the client session ``key`` (started on first use)."""
        root = state.roots.get(key)
        if root is not None:
            state.roots.move_to_end(key)
            return root.action_id
        async with state.lock:
            root = state.roots.get(key)
            if root is None:
                root = await self._open_root(state, key)
                state.roots[key] = root
                while len(state.roots) > MAX_SESSIONS:
                    state.roots.popitem(last=False)[1].end()
        return root.action_id

    async def _open_root(self, state: _State, key: str) -> _Root:
        act = self.audit.action("invoke_agent", f"mcp:{state.server_name}",
                                attributes={"mcp.server": state.server_name, "mcp.transport": self.transport,
                                            "mcp.session": key})
        context = contextvars.Context()
        try:
            await to_thread.run_sync(context.run, act.__enter__)
        except ActionBlocked:  # a killed or paused agent: its calls are refused, still under one trace id
            return _Root(action_id=f"mcp-{uuid.uuid4().hex}")
        return _Root(action_id=act.action_id, action=act, context=context)


def _session_key(ctx: ServerRequestContext[Any]) -> str | None:
    """The client session: the ``Mcp-Session-Id`` of streamable HTTP, else the process (stdio has one client).

    None when there is no session: the 2026-07-28 protocol over HTTP has none, so each call is its own trace.
    """
    request = ctx.request
    headers = getattr(request, "headers", None)
    if headers is None:
        return "stdio"
    session_id = headers.get("mcp-session-id")
    if session_id:
        return f"http:{session_id[:128]}"
    return None
