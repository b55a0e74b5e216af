"""The SDK client: actions, point events and the causal context around them.

Everything an agent calls does cheap work on the agent's thread (ids, clock, a tuple) and hands
the event to a background worker (:mod:`agentaudit.producers._worker`) that seals it into its
stream's hash chain and produces it, spilling to the on-disk spool while the broker is away.
Telemetry trouble is logged and counted in :meth:`AuditClient.stats`, never raised.

>>> with AuditClient("127.0.0.1:9092", tenant="acme", agent="billing-bot") as audit:
...     with audit.action("execute_tool", name="db.query", input={"sql": "select 1"}) as act:
...         act.set_output(rows)
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import inspect
import itertools
import logging
import math
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from contextvars import Token
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pydantic import ValidationError

from agentaudit.control import ActionBlocked
from agentaudit.producers._context import CURRENT, ContextExecutor, Frame, wrap
from agentaudit.producers._queue import BASE_EVENT_BYTES, EventQueue
from agentaudit.producers._spool import Spool
from agentaudit.producers._worker import Worker
from agentaudit.producers.exceptions import SdkConfigError
from agentaudit.producers.redaction import Redactor, canonical, digest, redact
from agentaudit.producers.settings import SdkSettings, default_spool_dir
from agentaudit.schemas import ActionKind
from agentaudit.settings import KafkaSettings

__all__ = ["Action", "AuditClient", "get_client"]

_log = logging.getLogger("agentaudit.producers")

F = TypeVar("F", bound=Callable[..., Any])

_KINDS = frozenset(k.value for k in ActionKind)
_STATUSES = frozenset(("unset", "ok", "error", "cancelled", "denied", "timeout"))
_now_ns = time.time_ns
_perf_ns = time.perf_counter_ns

#: ``emit(dict)`` keys that map onto event fields; any other key becomes an attribute.
EMIT_FIELDS = frozenset(("kind", "name", "agent", "agent_id", "phase", "status", "input", "output", "model",
                         "input_tokens", "output_tokens", "cost_usd", "latency_us", "error_type", "error_message",
                         "attributes", "parent", "parent_action_id", "action_id", "links", "actor_type",
                         "actor_id"))

_EMIT_CASTS: dict[str, Callable[[Any], Any]] = {"input_tokens": int, "output_tokens": int, "cost_usd": float,
                                                "latency_us": int, "model": str, "error_type": str,
                                                "error_message": str}

_DEFAULT = object()


def _kind(kind: str, attributes: dict[str, str] | None) -> tuple[str, dict[str, str] | None]:
    kind = str(kind)
    if kind in _KINDS:
        return kind, attributes
    attributes = dict(attributes or {})
    attributes["kind"] = kind
    return "other", attributes


def _attrs(values: Mapping[str, Any] | None) -> dict[str, str] | None:
    if not values:
        return None
    return {str(k): v if isinstance(v, str) else str(v) for k, v in values.items()}


class Action:
    """One action: a start event when entered, an end event (status, latency, error) when left.

    Use it as a context manager (``with`` or ``async with``) or as a decorator, which records the
    call's arguments and return value as the input and output digests.
    """

    __slots__ = ("_client", "kind", "name", "agent", "_parent", "_input", "_attributes", "model", "_links",
                 "_run_id", "action_id", "trace_id", "parent_action_id", "depth", "_token", "_t0", "_start_us",
                 "_in_digest", "_out_digest", "_out_text", "input_tokens", "output_tokens", "cost_usd", "_status",
                 "_status_message", "_payload", "_done", "_frame_run", "_approval")

    def __init__(self, client: AuditClient, kind: str, name: str, agent: str | None, parent: Any,
                 input: Any, attributes: dict[str, str] | None, model: str | None, links: list[str] | None,
                 run_id: str | None, approval: Any = None) -> None:
        self._client = client
        self._approval = approval
        self.kind = kind
        self.name = name
        self.agent = agent
        self._parent = parent
        self._input = input
        self._attributes = attributes
        self.model = model
        self._links = links
        self._run_id = run_id
        self.action_id: str = ""
        self.trace_id: str = ""
        self.parent_action_id: str | None = None
        self.depth = 0
        self._token: Token[Frame | None] | None = None
        self._out_digest: str | None = None
        self._out_text: str | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        self._status: str | None = None
        self._status_message: str | None = None
        self._payload = 0
        self._done = False

    # -- during the action ----------------------------------------------------------------------

    def set_cost(self, *, input_tokens: int | None = None, output_tokens: int | None = None,
                 cost_usd: float | None = None, model: str | None = None) -> None:
        """Record tokens, cost and model; the end event carries them. Later calls overwrite."""
        try:
            if input_tokens is not None:
                self.input_tokens = max(0, int(input_tokens))
            if output_tokens is not None:
                self.output_tokens = max(0, int(output_tokens))
            if cost_usd is not None:
                cost = float(cost_usd)
                if math.isfinite(cost) and cost >= 0:  # the pipeline rejects NaN, inf and negative costs
                    self.cost_usd = cost
                else:
                    _log.warning("sdk.bad_cost %r ignored for action %s", cost_usd, self.name)
        except (TypeError, ValueError) as exc:
            _log.warning("sdk.bad_cost %r", exc)
        if model is not None:
            self.model = str(model)

    def add_cost(self, *, input_tokens: int = 0, output_tokens: int = 0, cost_usd: float = 0.0) -> None:
        """Add to the tokens and cost recorded so far (several model calls in one action)."""
        self.set_cost(input_tokens=self.input_tokens + int(input_tokens),
                      output_tokens=self.output_tokens + int(output_tokens), cost_usd=self.cost_usd + float(cost_usd))

    def set_output(self, output: Any) -> None:
        """Record the action's result: digested now; kept as a redacted body only with ``capture_bodies``."""
        try:
            text = canonical(output)
        except Exception:  # noqa: BLE001 - an odd output must not break the agent
            text = repr(output)
        self._out_digest = digest(text)
        self._payload += len(text)
        if self._client._capture:
            self._out_text = text

    def set_attribute(self, key: str, value: Any) -> None:
        """Attach a ``key=value`` attribute (a string) to the end event."""
        if self._attributes is None:
            self._attributes = {}
        self._attributes[str(key)] = value if isinstance(value, str) else str(value)

    def set_status(self, status: str, message: str | None = None) -> None:
        """Override the end status (``ok``, ``error``, ``cancelled``, ``denied``, ``timeout``) without raising."""
        if status not in _STATUSES:
            _log.warning("sdk.bad_status %r ignored (one of %s)", status, sorted(_STATUSES))
            return
        self._status = status
        self._status_message = message

    def link(self, action_id: str | Action) -> None:
        """Add a causal link to another action (beyond the parent)."""
        target = action_id.action_id if isinstance(action_id, Action) else str(action_id)
        if self._links is None:
            self._links = []
        self._links.append(target)

    # -- start and end --------------------------------------------------------------------------

    def __enter__(self) -> Action:
        self._begin()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._finish(exc)

    async def __aenter__(self) -> Action:
        self._begin()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._finish(exc)

    def _begin(self) -> None:
        self._done = False
        client = self._client
        frame = CURRENT.get()
        parent = self._parent
        aid = f"{client._id_prefix}{next(client._ids):012x}"
        trace, depth, parent_id = _place(aid, parent, frame)
        agent = self.agent or (frame.agent if frame is not None else client._agent)
        run_id = self._run_id or (frame.run_id if frame is not None else client._run_id)
        self.agent = agent
        self.action_id, self.trace_id, self.parent_action_id, self.depth = aid, trace, parent_id, depth
        self._frame_run = run_id
        if client._gate is not None or self._approval is not None:  # control plane: may raise ActionBlocked
            client._gate_for(self).before_action(self, self._input, self._approval)
        self._token = CURRENT.set(Frame(aid, trace, depth, agent, run_id))
        extra: dict[str, Any] | None = None
        size = BASE_EVENT_BYTES
        self._in_digest = None
        if self._input is not None:
            extra, size = client._digest_input(self._input, "input")
            self._in_digest = extra["input_digest"]
            self._payload = extra["payload_bytes"]
            self._input = None
        if self._attributes or self._links or self.model:
            if extra is None:
                extra = {}
            if self._attributes:
                extra["attributes"] = dict(self._attributes)
            if self._links:
                extra["links"] = list(self._links)
            if self.model:
                extra["model"] = self.model
        self._start_us = start = _now_ns() // 1000
        self._t0 = _perf_ns()
        client._queue.put((agent, self.kind, "start", self.name, aid, parent_id, trace, depth, run_id, start,
                           extra, size))

    def _finish(self, exc: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        latency = (_perf_ns() - self._t0) // 1000
        client = self._client
        token = self._token
        if token is not None:
            try:
                CURRENT.reset(token)
            except ValueError:  # left in another context (e.g. a generator); put the parent back by hand
                CURRENT.set(None)
        status = self._status
        extra: dict[str, Any] = {"latency_us": latency, "start_time_us": self._start_us,
                                 "end_time_us": self._start_us + latency}
        if exc is not None:
            if status is None:
                status = _status_for(exc)
            extra["error_type"] = type(exc).__qualname__
            extra["error_message"] = str(exc)[:1024]
        elif self._status_message is not None:
            extra["error_message"] = self._status_message
        extra["status"] = status or "ok"
        if self.input_tokens or self.output_tokens or self.cost_usd:
            extra["input_tokens"] = self.input_tokens
            extra["output_tokens"] = self.output_tokens
            extra["cost_usd"] = self.cost_usd
        if self.model:
            extra["model"] = self.model
        if self._in_digest is not None:
            extra["input_digest"] = self._in_digest
        if self._out_digest is not None:
            extra["output_digest"] = self._out_digest
        if self._payload:
            extra["payload_bytes"] = self._payload
        size = BASE_EVENT_BYTES
        if self._out_text is not None:
            extra["_bodies"] = [("output_body", self._out_text)]
            size += len(self._out_text)
        if self._attributes:
            extra["attributes"] = self._attributes
        if self._links:
            extra["links"] = self._links
        client._queue.put((self.agent, self.kind, "end", self.name, self.action_id, self.parent_action_id,
                           self.trace_id, self.depth, self._frame_run, extra["end_time_us"], extra, size))

    # -- as a decorator -------------------------------------------------------------------------

    def _fresh(self, input: Any) -> Action:
        return Action(self._client, self.kind, self.name, self.agent, self._parent, input,
                      dict(self._attributes) if self._attributes else None, self.model,
                      list(self._links) if self._links else None, self._run_id, self._approval)

    def __call__(self, fn: F) -> F:
        name = self.name or getattr(fn, "__qualname__", "call")
        if not self.name:
            self.name = name
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                act = self._fresh({"args": list(args), "kwargs": kwargs} if args or kwargs else None)
                with act:
                    result = await fn(*args, **kwargs)
                    act.set_output(result)
                    return result
            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            act = self._fresh({"args": list(args), "kwargs": kwargs} if args or kwargs else None)
            with act:
                result = fn(*args, **kwargs)
                act.set_output(result)
                return result
        return run  # type: ignore[return-value]


def _place(action_id: str, parent: Any, frame: Any) -> tuple[str, int, str | None]:
    """Where a new action sits in the causal tree: ``(trace_id, depth, parent_action_id)``.

    An explicit ``parent`` (an :class:`Action` or an action id) wins over the enclosing context's frame;
    with neither, the action is a trace root.
    """
    if parent is None:
        if frame is None:
            return action_id, 0, None
        return frame.trace_id, frame.depth + 1, frame.action_id
    if isinstance(parent, Action):
        return parent.trace_id, parent.depth + 1, parent.action_id
    parent_id = str(parent)
    if frame is None:
        return parent_id, 1, parent_id
    return frame.trace_id, frame.depth + 1, parent_id


def _status_for(exc: BaseException) -> str:
    if isinstance(exc, ActionBlocked):
        return "denied"
    if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)):
        return "cancelled"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "error"


class AuditClient:
    """Records what agents do as hash-chained Avro events on Kafka, without slowing them down.

    :param bootstrap_servers: the broker, default ``AGENTAUDIT_BOOTSTRAP_SERVERS`` (``127.0.0.1:9092``).
    :param tenant: ``AGENTAUDIT_TENANT``, default ``default``.
    :param agent: the agent when an action names none (``AGENTAUDIT_AGENT_ID``, default ``agent``).
    :param settings: a complete :class:`SdkSettings`; default read from the environment, with the
        keyword arguments (any :class:`SdkSettings` field, e.g. ``spool_dir=``, ``capture_bodies=``) on top.
    :param kafka: a complete :class:`~agentaudit.settings.KafkaSettings` instead of ``bootstrap_servers``.
    :param topic: the action topic, default ``kafka.topics.actions`` (``agentaudit.actions``).
    :param redactor: applied to bodies before they are recorded (only with ``capture_bodies``),
        default :func:`~agentaudit.producers.redaction.redact`; ``None`` records bodies unredacted.
    :param producer_config: librdkafka overrides for the SDK's producer.
    :param ensure_topic: create the topic if missing, default true.
    :param control: obey the control topic (kill, pause, tool blocks, approval requirements) for this
        client's agents: a blocked action raises :class:`ActionBlocked` before it starts; default
        ``AGENTAUDIT_CONTROL`` (false).
    :param guard_rules: rule files or directories judged inline before each action (single-event rules;
        enforce-mode matches raise :class:`ActionBlocked`); default ``AGENTAUDIT_GUARD_RULES`` (comma-separated
        paths; none). See the README's control-plane section.
    :param control_config: librdkafka overrides for the control listener's consumer.
    :raises SdkConfigError: a setting is invalid. :raises SpoolError: the spool directory is unusable.

    Example::

        audit = AuditClient("127.0.0.1:9092", tenant="acme", agent="support-bot")
        with audit.action("invoke_agent", name="support-bot"):
            with audit.action("chat", name="gpt-4o") as call:
                call.set_cost(input_tokens=812, output_tokens=95, cost_usd=0.0031, model="gpt-4o")
            audit.approval(approver="alice", name="refund")
        audit.close()
    """

    def __init__(self, bootstrap_servers: str | None = None, *, tenant: str | None = None, agent: str | None = None,
                 settings: SdkSettings | None = None, kafka: KafkaSettings | None = None, topic: str | None = None,
                 redactor: Redactor | None | object = _DEFAULT, producer_config: Mapping[str, Any] | None = None,
                 ensure_topic: bool = True, control: bool | None = None, guard_rules: str | list[str] | None = None,
                 control_config: Mapping[str, Any] | None = None, **overrides: Any) -> None:
        fields = dict(overrides)
        if tenant is not None:
            fields["tenant"] = tenant
        if agent is not None:
            fields["agent_id"] = agent
        unknown = set(fields) - set(SdkSettings.model_fields)
        if unknown:
            raise SdkConfigError(f"AuditClient got unknown settings {sorted(unknown)}; known: "
                                 f"{sorted(SdkSettings.model_fields)}")
        try:
            if settings is None:
                settings = SdkSettings(**fields)
            elif fields:
                settings = settings.model_copy(update=fields)
            if kafka is None:
                kafka = KafkaSettings(bootstrap_servers=bootstrap_servers) if bootstrap_servers else KafkaSettings()
            elif bootstrap_servers:
                kafka = kafka.model_copy(update={"bootstrap_servers": bootstrap_servers})
        except ValidationError as exc:
            raise SdkConfigError(f"invalid SDK settings: {exc}") from exc
        if not kafka.bootstrap_servers.strip():
            raise SdkConfigError("bootstrap_servers is empty; pass it or set AGENTAUDIT_BOOTSTRAP_SERVERS")
        self.settings = settings
        self.kafka = kafka
        self.topic = topic or kafka.topics.actions
        self.instance_id = str(uuid.uuid4())
        self._agent = settings.agent_id
        self._run_id = settings.run_id or str(uuid.uuid4())
        self._capture = settings.capture_bodies
        self._redactor: Redactor | None = redact if redactor is _DEFAULT else redactor  # type: ignore[assignment]
        if self._redactor is not None and not callable(self._redactor):
            raise SdkConfigError(f"redactor must be a callable str -> str or None, got {self._redactor!r}")
        self._id_prefix = str(uuid.uuid4())[:24]
        self._ids = itertools.count()
        self._queue = EventQueue(settings.queue_max_events, settings.queue_max_bytes, policy=settings.full_policy,
                                 block_ms=settings.block_ms)
        self._spool = Spool(Path(settings.spool_dir) if settings.spool_dir else default_spool_dir(),
                            max_bytes=settings.spool_max_bytes, segment_bytes=settings.spool_segment_bytes,
                            fsync=settings.spool_fsync)
        self._spool.open()
        self._worker = Worker(queue=self._queue, settings=settings, kafka=kafka, topic=self.topic, spool=self._spool,
                              instance_id=self.instance_id, redactor=self._redactor,
                              producer_config=dict(producer_config or {}), ensure_topic=ensure_topic)
        self._closed = False
        self._close_lock = threading.Lock()
        self._gate: Any = None
        if control is None:  # explicit arguments win over AGENTAUDIT_CONTROL / AGENTAUDIT_GUARD_RULES
            control = settings.control
        if guard_rules is None:
            guard_rules = settings.guard_rule_paths()
        if control or guard_rules is not None:
            from agentaudit.producers.gate import ClientGate  # the rule engine loads only when asked for

            self._gate = ClientGate.create(self, control=control, guard_rules=guard_rules,
                                           control_config=control_config)
        self._worker.start()
        self_ref = weakref.ref(self)
        self._atexit = functools.partial(_close_at_exit, self_ref)
        atexit.register(self._atexit)

    # -- actions ------------------------------------------------------------------------------

    def action(self, kind: str, name: str = "", *, agent: str | None = None, parent: str | Action | None = None,
               input: Any = None, attributes: Mapping[str, Any] | None = None, model: str | None = None,
               links: list[str] | None = None, run_id: str | None = None, approval: Any = None) -> Action:
        """An action of ``kind`` (``invoke_agent``, ``chat``, ``execute_tool``, ``plan``, ...) to use as
        ``with client.action(...) as act:`` or ``@client.action(...)``.

        :param name: tool, model or agent name.
        :param agent: acting agent, default the enclosing action's agent, else the client's.
        :param parent: parent action (id or :class:`Action`), default the enclosing action.
        :param input: tool arguments or prompt: recorded as a SHA-256 digest (a body only with ``capture_bodies``).
        :param approval: an :class:`~agentaudit.control.approvals.Approval` of exactly these arguments
            (``input``); the action is refused (:class:`ActionBlocked`) if they differ or it expired.
        """
        kind, attrs = _kind(kind, _attrs(attributes))
        return Action(self, kind, name, agent, parent, input, attrs, model, list(links) if links else None, run_id,
                      approval)

    def _gate_for(self, action: Action) -> Any:
        if self._gate is not None:
            return self._gate
        from agentaudit.producers.gate import ActionGate, ClientGate

        return ClientGate(self, ActionGate())  # approval check only

    # -- point events -------------------------------------------------------------------------

    def event(self, kind: str, name: str = "", *, agent: str | None = None, parent: str | Action | None = None,
              input: Any = None, output: Any = None, attributes: Mapping[str, Any] | None = None,
              actor: tuple[str, str] | None = None, status: str = "unset", links: list[str] | None = None) -> str:
        """A point event (``decision``, ``message``, ``approval``, ``handoff``, ``guardrail``, ``human_action``)
        linked to the enclosing action; returns its action id."""
        try:
            kind, attrs = _kind(kind, _attrs(attributes))
            return self._point(kind, str(name), agent, parent, input, output, attrs, actor, status, links)
        except Exception as exc:  # noqa: BLE001 - telemetry must not break the agent
            _log.warning("sdk.event_failed kind=%s error=%r", kind, exc)
            return ""

    def _point(self, kind: str, name: str, agent: str | None, parent: Any, input: Any, output: Any,
               attrs: dict[str, str] | None, actor: tuple[str, str] | None, status: str,
               links: list[str] | None, fields: dict[str, Any] | None = None) -> str:
        frame = CURRENT.get()
        aid = f"{self._id_prefix}{next(self._ids):012x}"
        trace, depth, parent_id = _place(aid, parent, frame)
        agent = agent or (frame.agent if frame is not None else self._agent)
        run_id = frame.run_id if frame is not None else self._run_id
        extra: dict[str, Any] | None = None
        size = BASE_EVENT_BYTES
        if input is not None:
            extra, size = self._digest_input(input, "input")
        if output is not None:
            out, out_size = self._digest_input(output, "output")
            if extra is None:
                extra = out
            else:
                extra["payload_bytes"] += out.pop("payload_bytes")
                bodies = out.pop("_bodies", None)
                extra.update(out)
                if bodies:
                    extra.setdefault("_bodies", []).extend(bodies)
            size += out_size - BASE_EVENT_BYTES
        if attrs or actor or links or status != "unset" or fields:
            if extra is None:
                extra = {}
            if fields:
                extra.update(fields)
            if attrs:
                extra["attributes"] = attrs
            if actor:
                extra["actor"] = {"type": actor[0], "id": actor[1]}
            if links:
                extra["links"] = [str(x) for x in links]
            if status != "unset":
                extra["status"] = status if status in _STATUSES else "unset"
        self._queue.put((agent, kind, "point", name, aid, parent_id, trace, depth, run_id, _now_ns() // 1000,
                         extra, size))
        return aid

    def decision(self, name: str, *, input: Any = None, output: Any = None, reason: str | None = None,
                 agent: str | None = None, attributes: Mapping[str, Any] | None = None) -> str:
        """The agent chose something (a plan step, a route, a tool); ``reason`` becomes an attribute."""
        attrs = dict(attributes or {})
        if reason is not None:
            attrs["reason"] = reason
        return self.event("decision", name, agent=agent, input=input, output=output, attributes=attrs)

    def message(self, name: str = "", *, content: Any = None, to: str | None = None, role: str | None = None,
                agent: str | None = None, attributes: Mapping[str, Any] | None = None) -> str:
        """A message sent or received (to a user, another agent, a channel); ``content`` is digested."""
        attrs = dict(attributes or {})
        if to is not None:
            attrs["to"] = to
        if role is not None:
            attrs["role"] = role
        return self.event("message", name or (to or ""), agent=agent, input=content, attributes=attrs)

    def approval(self, approver: str, *, name: str = "", input: Any = None, granted: bool = True,
                 grant: Any = None, agent: str | None = None, attributes: Mapping[str, Any] | None = None) -> str:
        """A named human approved (or refused, ``granted=False``) something the agent wants to do.

        :param grant: an :class:`~agentaudit.control.approvals.Approval`, whose attributes (args_hash,
            expiry) the event then carries so that the SDK and the rules can check it.
        """
        attrs: dict[str, Any] = {"approver": approver, "granted": "true" if granted else "false"}
        if grant is not None:
            attrs.update(grant.attributes())
            name = name or grant.tool
        attrs.update(attributes or {})
        return self.event("approval", name, agent=agent, input=input, attributes=attrs, actor=("human", approver),
                          status="ok" if granted else "denied")

    def handoff(self, to_agent: str, *, input: Any = None, agent: str | None = None,
                attributes: Mapping[str, Any] | None = None) -> str:
        """The current agent hands the work to ``to_agent``; the receiving agent's actions should pass
        ``parent=<returned id>`` (or run inside the same context) to stay in the trace."""
        frame = CURRENT.get()
        attrs = {"to_agent": to_agent, "from_agent": agent or (frame.agent if frame else self._agent)}
        attrs.update(attributes or {})
        return self.event("handoff", to_agent, agent=agent, input=input, attributes=attrs)

    def emit(self, event: Mapping[str, Any]) -> str:
        """Logging-style quick use: ``client.emit({"kind": "decision", "name": "route", "why": "cheap"})``.

        Known keys map onto fields (``kind``, ``name``, ``agent``, ``status``, ``input``, ``output``, ``model``,
        tokens, ``cost_usd``, ``parent``, ...); every other key becomes an attribute. Never raises.
        """
        try:
            data = dict(event)
            attrs = {str(k): v for k, v in (data.pop("attributes", None) or {}).items()}
            for key in [k for k in data if k not in EMIT_FIELDS]:
                attrs[str(key)] = data.pop(key)
            kind, attrs_s = _kind(data.get("kind", "other"), _attrs(attrs))
            actor = None
            if data.get("actor_type") or data.get("actor_id"):
                actor = (str(data.get("actor_type") or "agent"), str(data.get("actor_id") or ""))
            fields: dict[str, Any] = {}
            for key, cast in _EMIT_CASTS.items():
                if data.get(key) is not None:
                    fields[key] = cast(data[key])
            return self._point(kind, str(data.get("name", "")), data.get("agent") or data.get("agent_id"),
                               data.get("parent") or data.get("parent_action_id"), data.get("input"),
                               data.get("output"), attrs_s, actor, str(data.get("status", "unset")),
                               data.get("links"), fields)
        except Exception as exc:  # noqa: BLE001
            _log.warning("sdk.emit_failed error=%r", exc)
            return ""

    def record_action(self, kind: str, name: str, *, action_id: str, trace_id: str, start_time_us: int,
                      end_time_us: int, parent_action_id: str | None = None, depth: int = 0,
                      agent: str | None = None, status: str = "ok", error_type: str | None = None,
                      error_message: str | None = None, model: str | None = None, input_tokens: int = 0,
                      output_tokens: int = 0, cost_usd: float = 0.0, attributes: Mapping[str, Any] | None = None,
                      links: list[str] | None = None) -> None:
        """Record an action that already happened (start and end events), e.g. from another tracer.
        The ids are the caller's; the events join the agent's stream like any other. Never raises."""
        try:
            kind, attrs = _kind(kind, _attrs(attributes))
            agent = agent or self._agent
            latency = max(0, end_time_us - start_time_us)
            common: dict[str, Any] = {}
            if attrs:
                common["attributes"] = attrs
            if links:
                common["links"] = [str(x) for x in links]
            if model:
                common["model"] = str(model)
            start = dict(common)
            end = dict(common, status=status if status in _STATUSES else "unset", latency_us=latency,
                       start_time_us=start_time_us, end_time_us=end_time_us, input_tokens=int(input_tokens),
                       output_tokens=int(output_tokens), cost_usd=float(cost_usd))
            if error_type is not None:
                end["error_type"] = str(error_type)
            if error_message is not None:
                end["error_message"] = str(error_message)[:1024]
            put = self._queue.put
            put((agent, kind, "start", name, action_id, parent_action_id, trace_id, depth, self._run_id,
                 start_time_us, start or None, BASE_EVENT_BYTES))
            put((agent, kind, "end", name, action_id, parent_action_id, trace_id, depth, self._run_id, end_time_us,
                 end, BASE_EVENT_BYTES))
        except Exception as exc:  # noqa: BLE001
            _log.warning("sdk.record_action_failed kind=%s name=%s error=%r", kind, name, exc)

    def _digest_input(self, value: Any, field: str) -> tuple[dict[str, Any], int]:
        try:
            text = canonical(value)
        except Exception:  # noqa: BLE001
            text = repr(value)
        extra: dict[str, Any] = {f"{field}_digest": digest(text), "payload_bytes": len(text)}
        size = BASE_EVENT_BYTES
        if self._capture:
            extra["_bodies"] = [(f"{field}_body", text)]
            size += len(text)
        return extra, size

    # -- context helpers ------------------------------------------------------------------------

    @staticmethod
    def current_action_id() -> str | None:
        """The id of the innermost running action in this context, or None."""
        frame = CURRENT.get()
        return None if frame is None else frame.action_id

    @staticmethod
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` bound to the current context: run it on another thread and its actions are children of
        the current action (``threading.Thread(target=client.wrap(work))``)."""
        return wrap(fn)

    @staticmethod
    def executor(max_workers: int | None = None, **kwargs: Any) -> ContextExecutor:
        """A thread pool whose tasks run as children of the action that submitted them."""
        return ContextExecutor(max_workers=max_workers, **kwargs)

    # -- lifecycle ------------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait up to ``timeout`` seconds until every event emitted so far is confirmed by the broker.
        Returns False if some are still queued or spooled (they are not lost)."""
        if self._closed:
            return self._spool.empty
        return self._worker.wait_idle(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what can be delivered within ``timeout`` seconds, keep the rest in the spool, stop."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self._atexit)
        self._queue.closed = True
        if self._gate is not None:
            self._gate.close()
        try:
            self._worker.finish(timeout)
        except Exception:  # noqa: BLE001
            _log.exception("sdk.close_failed")
        global _default
        if _default is self:
            _default = None

    def stats(self) -> dict[str, Any]:
        """Counters: ``sealed``, ``delivered``, ``spooled``, ``replayed``, ``dropped_queue_full``,
        ``dropped_spool_full``, ``failed``, ``invalid``, ``blocked_emits``, and the current ``queue_depth``,
        ``spool_pending``, ``spool_bytes`` and ``mode`` (``direct`` or ``spooling``)."""
        stats: dict[str, Any] = dict(self._worker.stats)
        stats.update(dropped_queue_full=self._queue.dropped, blocked_emits=self._queue.blocked,
                     queue_depth=len(self._queue), spool_pending=self._spool.pending, spool_bytes=self._spool.bytes,
                     mode=self._worker.mode, spool_dir=str(self._spool.dir))
        return stats

    def __enter__(self) -> AuditClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"AuditClient(bootstrap={self.kafka.bootstrap_servers!r}, tenant={self.settings.tenant!r}, "
                f"agent={self._agent!r}, instance={self.instance_id!r})")


def _close_at_exit(ref: weakref.ref[AuditClient]) -> None:
    client = ref()
    if client is not None:
        client.close(timeout=5.0)


_default: AuditClient | None = None
_default_lock = threading.Lock()


def get_client(**kwargs: Any) -> AuditClient:
    """The process-wide client, built on first call from ``AGENTAUDIT_*`` variables and ``kwargs``
    (the :class:`AuditClient` arguments). Later calls return it; passing ``kwargs`` then is an error."""
    global _default
    with _default_lock:
        if _default is None:
            _default = AuditClient(**kwargs)
        elif kwargs:
            raise SdkConfigError("get_client() already built the process-wide client; call it without arguments, "
                                 "or build a separate AuditClient(...)")
        return _default
