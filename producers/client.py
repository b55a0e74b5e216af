"""The SDK client: actions, point events and the causal context around them.

Everything an agent calls does cheap work on the agent's thread (ids, clock, a queue entry) and hands
the event to a background worker (:mod:`agentaudit.producers._worker`) that seals it into its
stream's hash chain and produces it, spilling to the on-disk spool while the broker is away.
Telemetry trouble is logged and counted in :meth:`AuditClient.stats`, never raised; a value the SDK
cannot capture (a raising ``__repr__``, a cycle, a lone surrogate) is recorded as far as it can be and
named in an ``agentaudit.uncaptured.<field>`` attribute (:mod:`agentaudit.producers._capture`).

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
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from contextvars import Token
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

from pydantic import ValidationError

from agentaudit.control import ActionBlocked, args_hash
from agentaudit.logs import get_logger
from agentaudit.producers._capture import UNCAPTURED, json_text, number, text, type_name
from agentaudit.producers._context import CURRENT, ContextExecutor, Frame, new_frame, wrap
from agentaudit.producers._digests import Digester
from agentaudit.producers._queue import BASE_EVENT_BYTES, EventQueue, new_entry
from agentaudit.producers._spool import Spool
from agentaudit.producers._worker import Worker
from agentaudit.producers.exceptions import SdkConfigError
from agentaudit.producers.redaction import Redactor, redact
from agentaudit.producers.settings import SdkSettings, default_spool_dir
from agentaudit.schemas import ActionKind, KeysFileError, SigningKey
from agentaudit.schemas.validation import MAX_EVENT_TIME_US, MIN_EVENT_TIME_US
from agentaudit.settings import KafkaSettings

__all__ = ["Action", "AuditClient", "get_client"]

_log = get_logger("agentaudit.producers")

F = TypeVar("F", bound=Callable[..., Any])

_KINDS = frozenset(k.value for k in ActionKind)
_STATUSES = frozenset(("unset", "ok", "error", "cancelled", "denied", "timeout"))
_now_ns = time.time_ns
_perf_ns = time.perf_counter_ns

#: ``emit(dict)`` keys that map onto event fields; any other key becomes an attribute.
EMIT_FIELDS = frozenset(("kind", "name", "agent", "agent_id", "phase", "status", "input", "output", "model",
                         "input_tokens", "output_tokens", "cost_usd", "latency_us", "error_type", "error_message",
                         "attributes", "parent", "parent_action_id", "action_id", "links", "actor_type",
                         "actor_id", "time_us"))

_EMIT_CASTS: dict[str, Callable[[Any], Any]] = {"input_tokens": int, "output_tokens": int, "cost_usd": float,
                                                "latency_us": int, "model": str, "error_type": str,
                                                "error_message": str}

_DEFAULT = object()

# Bounds that keep every event encodable and accepted by the pipeline whatever the agent passes.
_NAME_MAX = 1024  # names, models, error types
_ID_MAX = 256  # ids the pipeline checks (agent, parent, run, links)
_AGENT_MAX = 200
_ERROR_MAX = 1024
_ATTR_KEY_MAX = 256
_ATTR_VALUE_MAX = 4096
_ATTRS_MAX = 128
_ACTOR_TYPES = frozenset(("agent", "human", "system"))


def _name(value: Any, limit: int, field: str, notes: dict[str, str]) -> str:
    """``value`` as a clean string of at most ``limit`` characters; what was lost goes to ``notes``."""
    if type(value) is str and len(value) <= limit and value.isascii():
        return value
    result, problem = text(value, limit)
    if problem:
        notes[UNCAPTURED + field] = problem
    return result


def _id(value: Any, field: str, notes: dict[str, str], limit: int = _ID_MAX) -> str | None:
    """An optional id: None stays None, anything else a non-empty clean string."""
    if value is None:
        return None
    return _name(value, limit, field, notes) or None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = datetime.resolution  # timedelta(microseconds=1)

#: What an explicit event time may be: epoch microseconds or a timezone-aware datetime.
EventTime = int | datetime


def _event_time(value: Any, field: str, notes: dict[str, str]) -> int | None:
    """An explicit event time (recorded history) as epoch microseconds, or None: not given, or not usable.

    A time the pipeline would refuse (naive datetime, not a number, outside 2001..2100) is not raised:
    the SDK's clock stands in and ``agentaudit.uncaptured.<field>`` says why, as for any uncapturable value.
    """
    if value is None:
        return None
    t: int | None
    problem: str | None
    try:
        if isinstance(value, datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                t, problem = None, "a naive datetime (no tzinfo); pass an aware one, e.g. tzinfo=timezone.utc"
            else:
                t, problem = (value - _EPOCH) // _MICROSECOND, None
        elif type(value) is bool:
            t, problem = None, "a bool is not a time; pass epoch microseconds or an aware datetime"
        else:
            t, problem = number(value, integer=True)
    except Exception as exc:  # noqa: BLE001 - e.g. a datetime subclass whose arithmetic raises
        t, problem = None, f"{type_name(value)} raised {type_name(exc)}"
    if problem is None and t is not None and not MIN_EVENT_TIME_US <= t < MAX_EVENT_TIME_US:
        problem = f"{t} is outside 2001..2100 (epoch microseconds)"
    if problem is not None:
        _log.warning("sdk.bad_time", field=field, problem=problem, action="ignored")
        notes[UNCAPTURED + field] = f"{field}: {problem}; the SDK's clock was used"
        return None
    return t


def _span_times(start: Any, end: Any, notes: dict[str, str]) -> tuple[int | None, int | None]:
    """Explicit start and end times; an end before the start is dropped (noted), as is an end alone."""
    start_at = _event_time(start, "start_time_us", notes)
    end_at = _event_time(end, "end_time_us", notes)
    if end_at is not None and start_at is None:
        if start is None:
            notes[UNCAPTURED + "end_time_us"] = "end_time_us: given without start_time_us; the SDK's clock was used"
        end_at = None
    elif end_at is not None and start_at is not None and end_at < start_at:
        _log.warning("sdk.bad_time", field="end_time_us", problem="before start_time_us", action="ignored")
        notes[UNCAPTURED + "end_time_us"] = (f"end_time_us: {end_at} is before start_time_us {start_at}; "
                                             "the start plus the measured duration was used")
        end_at = None
    return start_at, end_at


def _mapping(values: Any, notes: dict[str, str]) -> dict[Any, Any]:
    """A plain dict copy of ``values`` (a mapping the caller owns, never mutated)."""
    if values is None:
        return {}
    try:
        return dict(values)
    except Exception as exc:  # noqa: BLE001 - a mapping the caller passed may raise anything; noted as uncaptured
        notes[UNCAPTURED + "attributes"] = f"dict() of {type_name(values)} raised {type_name(exc)}"
        return {}


def _kind(kind: Any, attributes: dict[str, str] | None) -> tuple[str, dict[str, str] | None]:
    if type(kind) is not str:
        kind = text(kind, 64)[0]
    if kind in _KINDS:
        return kind, attributes
    attributes = dict(attributes or {})
    attributes["kind"] = kind[:64]
    return "other", attributes


def _attrs(values: Mapping[Any, Any] | None, notes: dict[str, str] | None = None) -> dict[str, str] | None:
    """Attributes as ``str -> str``: keys and values turned to clean, bounded text, at most 128 of them;
    what was lost is said in ``agentaudit.uncaptured.attributes``."""
    if not values:
        return dict(notes) if notes else None
    out: dict[str, str] = {}
    problems: list[str] = []
    for key, value in values.items():
        if (type(key) is str and type(value) is str and len(value) <= _ATTR_VALUE_MAX and len(key) <= _ATTR_KEY_MAX
                and key.isascii() and value.isascii()):
            out[key] = value
            continue
        key, key_problem = text(key, _ATTR_KEY_MAX)
        value, problem = text(value, _ATTR_VALUE_MAX)
        out[key] = value
        if key_problem or problem:
            problems.append(f"{key}: {key_problem or problem}")
    if len(out) > _ATTRS_MAX:
        problems.append(f"{len(out) - _ATTRS_MAX} of {len(out)} attributes left out")
        out = dict(list(out.items())[:_ATTRS_MAX])
    if problems:
        out[UNCAPTURED + "attributes"] = "; ".join(problems)[:_ATTR_VALUE_MAX]
    if notes:
        out.update(notes)
    return out


def _safe_attrs(values: Any, notes: dict[str, str]) -> dict[str, str] | None:
    """:func:`_attrs` of any value the agent passed as attributes; never raises."""
    try:
        return _attrs(values if type(values) is dict else _mapping(values, notes), notes)
    except Exception as exc:  # noqa: BLE001 - e.g. a mapping whose items() raises
        notes[UNCAPTURED + "attributes"] = f"{type_name(values)} raised {type_name(exc)}"
        return dict(notes)


def _links(values: Any, notes: dict[str, str]) -> list[str] | None:
    """Causal links as clean ids (an :class:`Action` gives its id)."""
    try:
        out = [x.action_id if isinstance(x, Action) else _id(x, "links", notes) for x in list(values)[:_ATTRS_MAX]]
    except Exception as exc:  # noqa: BLE001 - odd links are noted as uncaptured, never raised to the agent
        notes[UNCAPTURED + "links"] = f"{type_name(values)} raised {type_name(exc)}"
        return None
    return [x for x in out if x] or None


class Action:
    """One action: a start event when entered, an end event (status, latency, error) when left.

    Use it as a context manager (``with`` or ``async with``) or as a decorator, which records the
    call's arguments and return value as the input and output digests.
    """

    __slots__ = ("_client", "kind", "name", "agent", "_parent", "_input", "_attributes", "model", "_links",
                 "_run_id", "action_id", "trace_id", "parent_action_id", "depth", "_token", "_t0", "_start_us",
                 "_in_digest", "_out_digest", "_out_text", "input_tokens", "output_tokens", "cost_usd", "_status",
                 "_status_message", "_payload", "_done", "_frame_run", "_approval", "_start_at", "_end_at")

    def __init__(self, client: AuditClient, kind: str, name: str, agent: str | None, parent: Any,
                 input: Any, attributes: dict[str, str] | None, model: str | None, links: list[str] | None,
                 run_id: str | None, approval: Any = None, start_at: int | None = None,
                 end_at: int | None = None) -> None:
        self._client = client
        self._approval = approval
        self._start_at = start_at  # recorded history: explicit times instead of the clock
        self._end_at = end_at
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
        """Record tokens, cost and model; the end event carries them. Later calls overwrite.
        A value that is not a count (0..2**63-1) or a finite cost >= 0 is left out and noted."""
        for field, value, integer in (("input_tokens", input_tokens, True), ("output_tokens", output_tokens, True),
                                      ("cost_usd", cost_usd, False)):
            if value is not None:
                result, problem = number(value, integer=integer)
                if problem is None:
                    setattr(self, field, result)
                else:
                    _log.warning("sdk.bad_cost", field=field, action_name=self.name, problem=problem, action="ignored")
                    self._note(field, problem)
        if model is not None:
            notes: dict[str, str] = {}
            self.model = _name(model, _NAME_MAX, "model", notes)
            self._notes(notes)

    def add_cost(self, *, input_tokens: int = 0, output_tokens: int = 0, cost_usd: float = 0.0) -> None:
        """Add to the tokens and cost recorded so far (several model calls in one action)."""
        add_in, p_in = number(input_tokens, integer=True)
        add_out, p_out = number(output_tokens, integer=True)
        add_cost, p_cost = number(cost_usd, integer=False)
        self.set_cost(input_tokens=None if add_in is None else self.input_tokens + add_in,
                      output_tokens=None if add_out is None else self.output_tokens + add_out,
                      cost_usd=None if add_cost is None else self.cost_usd + add_cost)
        for field, problem in (("input_tokens", p_in), ("output_tokens", p_out), ("cost_usd", p_cost)):
            if problem:
                self._note(field, problem)

    def set_output(self, output: Any) -> None:
        """Record the action's result: digested now; kept as a redacted body only with ``capture_bodies``."""
        try:
            out, problem = json_text(output)
            client = self._client
            self._out_digest = client._digests.digest(out)
            self._payload += len(out)
            if problem:
                self._note("output", problem)
            if client._capture:
                self._out_text = out[:client._body_keep]
        except Exception as exc:  # noqa: BLE001 - an odd output must not break the agent
            self._note("output", f"capture raised {type_name(exc)}")

    def set_attribute(self, key: str, value: Any) -> None:
        """Attach a ``key=value`` attribute (a string) to the end event."""
        try:
            notes: dict[str, str] = {}
            attrs = _attrs({_name(key, _ATTR_KEY_MAX, "attribute_key", notes): value}, notes) or {}
            if self._attributes is None:
                self._attributes = {}
            if len(self._attributes) >= _ATTRS_MAX:
                self._note("attributes", f"more than {_ATTRS_MAX} attributes; later ones left out")
                return
            self._attributes.update(attrs)
        except Exception as exc:  # noqa: BLE001 - set_attribute must never break the agent; noted on the action
            self._note("attributes", f"set_attribute raised {type_name(exc)}")

    def set_status(self, status: str, message: str | None = None) -> None:
        """Override the end status (``ok``, ``error``, ``cancelled``, ``denied``, ``timeout``) without raising."""
        notes: dict[str, str] = {}
        status = _name(status, 32, "status", notes)
        if status not in _STATUSES:
            _log.warning("sdk.bad_status", status=repr(status), allowed=sorted(_STATUSES), action="ignored")
            self._note("status", f"{status!r} is not one of {sorted(_STATUSES)}")
            return
        self._status = status
        self._status_message = None if message is None else _name(message, _ERROR_MAX, "error_message", notes)
        self._notes(notes)

    def link(self, action_id: str | Action) -> None:
        """Add a causal link to another action (beyond the parent)."""
        notes: dict[str, str] = {}
        target = action_id.action_id if isinstance(action_id, Action) else _id(action_id, "links", notes)
        self._notes(notes)
        if target:
            if self._links is None:
                self._links = []
            self._links.append(target)

    def _note(self, field: str, problem: str) -> None:
        """Say on the event that ``field`` could not be (fully) captured, and why."""
        if self._attributes is None:
            self._attributes = {}
        self._attributes[UNCAPTURED + field] = problem[:_ATTR_VALUE_MAX]

    def _notes(self, notes: dict[str, str]) -> None:
        if notes:
            if self._attributes is None:
                self._attributes = {}
            self._attributes.update(notes)

    # -- start and end --------------------------------------------------------------------------

    # __enter__ and __exit__ do the start and the end themselves: one call less per action (the hot path)

    async def __aenter__(self) -> Action:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)

    def __enter__(self) -> Action:
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
            self._ask_gate()
        self._token = CURRENT.set(new_frame(aid, trace, depth, agent, run_id))
        self._start_us = start = _now_ns() // 1000 if self._start_at is None else self._start_at
        self._t0 = _perf_ns()
        extra: dict[str, Any] | None = None
        size = BASE_EVENT_BYTES
        try:
            self._in_digest = None
            if self._input is not None:
                extra, size = client._digest_input(self._input, "input")
                self._in_digest = extra["input_digest"]
                self._payload = extra["payload_bytes"]
                self._input = None
                if "_uncaptured" in extra:
                    self._note("input", extra.pop("_uncaptured"))
            if self._attributes or self._links or self.model:
                if extra is None:
                    extra = {}
                if self._attributes:
                    extra["attributes"] = dict(self._attributes)
                if self._links:
                    extra["links"] = list(self._links)
                if self.model:
                    extra["model"] = self.model
        except Exception as exc:  # noqa: BLE001 - the action runs and is recorded whatever its input
            self._input = None
            self._note("input", f"capture raised {type_name(exc)}")
            extra, size = {"attributes": dict(self._attributes or {})}, BASE_EVENT_BYTES
        client._queue.put(new_entry(agent, self.kind, "start", self.name, aid, parent_id, trace, depth, run_id, start,
                                     extra, size))
        return self

    def _ask_gate(self) -> None:
        """The gate's verdict; a gate that fails for any other reason refuses (it was asked to judge)."""
        client = self._client
        try:
            client._gate_for(self).before_action(self, self._input, self._approval)
        except ActionBlocked:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. arguments that cannot be hashed for an approval
            reason = (f"the SDK could not check this action ({type_name(exc)}: it cannot judge these arguments or "
                      "this approval); pass JSON arguments and an Approval")
            client.event("guardrail", "gate", agent=self.agent, parent=self.parent_action_id, status="denied",
                         attributes={"decision": "deny", "code": "gate_error", "reason": reason,
                                     "guarded_action_id": self.action_id, "guarded_kind": self.kind,
                                     "guarded_name": self.name})
            raise ActionBlocked(reason, code="gate_error", agent_id=self.agent or "", tool=self.name) from None
        if self._approval is not None and self._attributes and "args_hash" in self._attributes:
            # recorded keyed, as client.approval() records the grant's: the rules still match the two
            self._attributes["args_hash"] = client._digests.bind(self._attributes["args_hash"])

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._done:
            return
        self._done = True
        token = self._token
        if token is not None:
            try:
                CURRENT.reset(token)
            except ValueError:  # left in another context (e.g. a generator); put the parent back by hand
                CURRENT.set(None)
        try:
            self._end(exc)
        except Exception as error:  # noqa: BLE001 - the agent's own exception (or none) must go on unchanged
            _log.warning("sdk.action_end_failed", action_name=self.name, error=type_name(error))
            now = _now_ns() // 1000
            self._client._queue.put(new_entry(
                self.agent or "", self.kind, "end", self.name, self.action_id, self.parent_action_id, self.trace_id,
                self.depth, self._frame_run, now,
                {"status": "unset", "start_time_us": self._start_us, "end_time_us": now,
                 "attributes": {UNCAPTURED + "end": f"raised {type_name(error)}"}},
                BASE_EVENT_BYTES))

    def _end(self, exc: BaseException | None) -> None:
        latency = (_perf_ns() - self._t0) // 1000 if self._end_at is None else self._end_at - self._start_us
        client = self._client
        status = self._status
        extra: dict[str, Any] = {"latency_us": latency, "start_time_us": self._start_us,
                                 "end_time_us": self._start_us + latency}
        if exc is not None:
            if status is None:
                status = _status_for(exc)
            extra["error_type"] = type_name(exc)
            notes: dict[str, str] = {}
            extra["error_message"] = _name(exc, _ERROR_MAX, "error_message", notes)
            self._notes(notes)
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
        # the agent is known once the action started ("" only narrows the type: an action ends after it starts)
        client._queue.put(new_entry(self.agent or "", self.kind, "end", self.name, self.action_id,
                                     self.parent_action_id, self.trace_id, self.depth, self._frame_run,
                                     extra["end_time_us"], extra, size))

    # -- as a decorator -------------------------------------------------------------------------

    def _fresh(self, input: Any) -> Action:
        return Action(self._client, self.kind, self.name, self.agent, self._parent, input,
                      dict(self._attributes) if self._attributes else None, self.model,
                      list(self._links) if self._links else None, self._run_id, self._approval, self._start_at,
                      self._end_at)

    def __call__(self, fn: F) -> F:
        if not self.name:
            self.name = _name(getattr(fn, "__qualname__", "call"), _NAME_MAX, "name", {})
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                act = self._fresh({"args": list(args), "kwargs": kwargs} if args or kwargs else None)
                with act:
                    result = await fn(*args, **kwargs)
                    act.set_output(result)
                    return result
            return cast(F, run_async)  # functools.wraps keeps fn's signature, which F stands for

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            act = self._fresh({"args": list(args), "kwargs": kwargs} if args or kwargs else None)
            with act:
                result = fn(*args, **kwargs)
                act.set_output(result)
                return result
        return cast(F, run)


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
    :param redactor: applied to every free-text field of every event (name, error type and message, model,
        attribute keys and values) and to bodies (only with ``capture_bodies``) before they are recorded,
        default :func:`~agentaudit.producers.redaction.redact`; ``None`` records them unredacted.
    :param producer_config: librdkafka overrides for the SDK's producer.
    :param ensure_topic: create the topic if missing, default true.
    :param control: obey the control topic (kill, pause, tool blocks, approval requirements) for this
        client's agents: a blocked action raises :class:`ActionBlocked` before it starts; default
        ``AGENTAUDIT_CONTROL`` (false).
    :param guard_rules: rule files or directories judged inline before each action (single-event rules;
        enforce-mode matches raise :class:`ActionBlocked`); default ``AGENTAUDIT_GUARD_RULES`` (comma-separated
        paths; none). See the README's control-plane section.
    :param control_config: librdkafka overrides for the control listener's consumer.
    :param signing_key: a :class:`~agentaudit.schemas.SigningKey` (or the path of its PEM file) that signs a
        checkpoint over each stream's hash chain every ``checkpoint_events`` events or ``checkpoint_seconds``;
        default ``AGENTAUDIT_SIGNING_KEY_FILE`` (none: unsigned). See the README's signed streams section.
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
                 redactor: Redactor | object | None = _DEFAULT, producer_config: Mapping[str, Any] | None = None,
                 ensure_topic: bool = True, control: bool | None = None, guard_rules: str | list[str] | None = None,
                 control_config: Mapping[str, Any] | None = None, signing_key: SigningKey | str | Path | None = None,
                 **overrides: Any) -> None:
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
        spool_dir = Path(settings.spool_dir) if settings.spool_dir else default_spool_dir()
        self._capture = settings.capture_bodies
        # bodies travel to the worker cut to twice their cap: room to redact a secret across the cap
        self._body_keep = 2 * settings.body_max_bytes + 64
        chosen = redact if redactor is _DEFAULT else redactor
        if chosen is not None and not callable(chosen):
            raise SdkConfigError(f"redactor must be a callable str -> str or None, got {chosen!r}")
        self._redactor = cast("Redactor | None", chosen)  # callable, checked above; str -> str is the caller's word
        self._id_prefix = str(uuid.uuid4())[:24]
        self._ids = itertools.count()
        self._queue = EventQueue(settings.queue_max_events, settings.queue_max_bytes, policy=settings.full_policy,
                                 block_ms=settings.block_ms)
        self._spool = Spool(spool_dir,
                            max_bytes=settings.spool_max_bytes, segment_bytes=settings.spool_segment_bytes,
                            fsync=settings.spool_fsync)
        self._spool.open()
        try:
            self._digests = Digester.load(settings.tenant, secret=settings.digest_key.get_secret_value()
                                          if settings.digest_key is not None else None,
                                          key_file=settings.digest_key_file, spool_dir=spool_dir)
        except SdkConfigError:
            self._spool.close()
            raise
        try:
            key = _signing_key(signing_key, settings)
        except SdkConfigError:
            self._spool.close()
            raise
        self._worker = Worker(queue=self._queue, settings=settings, kafka=kafka, topic=self.topic, spool=self._spool,
                              instance_id=self.instance_id, redactor=self._redactor,
                              producer_config=dict(producer_config or {}), ensure_topic=ensure_topic,
                              signing_key=key)
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
               links: list[str] | None = None, run_id: str | None = None, approval: Any = None,
               start_time_us: EventTime | None = None, end_time_us: EventTime | None = None) -> Action:
        """An action of ``kind`` (``invoke_agent``, ``chat``, ``execute_tool``, ``plan``, ...) to use as
        ``with client.action(...) as act:`` or ``@client.action(...)``.

        :param name: tool, model or agent name.
        :param agent: acting agent, default the enclosing action's agent, else the client's.
        :param parent: parent action (id or :class:`Action`), default the enclosing action.
        :param input: tool arguments or prompt: recorded as a keyed digest (HMAC-SHA256 with the tenant's key;
            a body only with ``capture_bodies``).
        :param approval: an :class:`~agentaudit.control.approvals.Approval` of exactly these arguments
            (``input``); the action is refused (:class:`ActionBlocked`) if they differ or it expired.
        :param start_time_us: when the action started, for recorded history (backfill): epoch microseconds or
            an aware ``datetime``; default the clock when the ``with`` block is entered.
        :param end_time_us: when it ended (same forms, not before the start); default the start plus the time
            the ``with`` block took. A time that cannot be used is not raised: the clock stands in and
            ``agentaudit.uncaptured.start_time_us`` (or ``end_time_us``) says why.
        """
        start_at = end_at = None
        try:
            notes: dict[str, str] = {}
            if start_time_us is not None or end_time_us is not None:
                start_at, end_at = _span_times(start_time_us, end_time_us, notes)
            name = _name(name, _NAME_MAX, "name", notes)
            if agent is not None:
                agent = _id(agent, "agent", notes, _AGENT_MAX)
            if parent is not None and not isinstance(parent, Action):
                parent = _id(parent, "parent", notes)
            if model is not None:
                model = _name(model, _NAME_MAX, "model", notes) or None
            if run_id is not None:
                run_id = _id(run_id, "run_id", notes)
            link_ids = _links(links, notes) if links is not None else None
            attrs = _safe_attrs(attributes, notes) if attributes is not None or notes else None
            if type(kind) is not str or kind not in _KINDS:  # a known kind, the common case, costs no call
                kind, attrs = _kind(kind, attrs)
        except Exception as exc:  # noqa: BLE001 - the action still runs, recorded with what was capturable
            kind, name, agent, parent, model, link_ids, run_id = "other", "", None, None, None, None, None
            attrs = {UNCAPTURED + "action": f"raised {type_name(exc)}"}
        return Action(self, kind, name, agent, parent, input, attrs, model, link_ids, run_id, approval, start_at,
                      end_at)

    def _gate_for(self, action: Action) -> Any:
        if self._gate is not None:
            return self._gate
        from agentaudit.producers.gate import ActionGate, ClientGate

        return ClientGate(self, ActionGate())  # approval check only

    # -- point events -------------------------------------------------------------------------

    def event(self, kind: str, name: str = "", *, agent: str | None = None, parent: str | Action | None = None,
              input: Any = None, output: Any = None, attributes: Mapping[str, Any] | None = None,
              actor: tuple[str, str] | None = None, status: str = "unset", links: list[str] | None = None,
              time_us: EventTime | None = None) -> str:
        """A point event (``decision``, ``message``, ``approval``, ``handoff``, ``guardrail``, ``human_action``)
        linked to the enclosing action; returns its action id. ``time_us`` (epoch microseconds or an aware
        ``datetime``) records when it happened, for recorded history; default now. Never raises."""
        return self._event(kind, name, agent, parent, input, output, attributes, actor, status, links, {}, time_us)

    def _event(self, kind: Any, name: Any, agent: Any, parent: Any, input: Any, output: Any, attributes: Any,
               actor: Any, status: Any, links: Any, notes: dict[str, str], time_us: Any = None) -> str:
        try:
            # no attributes (None or {}, as most points pass) need no cleaning; _point adds the notes
            attrs = _safe_attrs(attributes, notes) if attributes is not None and (
                type(attributes) is not dict or attributes) else None
            if type(kind) is not str or kind not in _KINDS:  # a known kind, the common case, costs no call
                kind, attrs = _kind(kind, attrs)
            return self._point(kind, name, agent, parent, input, output, attrs, actor, status, links, None, notes,
                               time_us)
        except Exception as exc:  # noqa: BLE001 - telemetry must not break the agent
            return self._point_failed("event", exc)

    def _point_failed(self, what: str, exc: BaseException) -> str:
        """Record that a point event could not be captured (kind ``other``), rather than nothing."""
        _log.warning("sdk." + what + "_failed", error=type_name(exc))
        try:
            frame = CURRENT.get()
            aid = f"{self._id_prefix}{next(self._ids):012x}"
            trace, depth, parent_id = _place(aid, None, frame)
            agent = frame.agent if frame is not None else self._agent
            run_id = frame.run_id if frame is not None else self._run_id
            self._queue.put(new_entry(agent, "other", "point", "", aid, parent_id, trace, depth, run_id,
                                       _now_ns() // 1000,
                                       {"attributes": {UNCAPTURED + what: f"raised {type_name(exc)}"}},
                                       BASE_EVENT_BYTES))
            return aid
        except Exception:  # noqa: BLE001 - the last resort of the failure path: the agent gets an empty id, never an exception
            return ""

    def _point(self, kind: str, name: Any, agent: Any, parent: Any, input: Any, output: Any,
               attrs: dict[str, str] | None, actor: Any, status: Any, links: Any, fields: dict[str, Any] | None,
               notes: dict[str, str], time_us: Any = None) -> str:
        name = _name(name, _NAME_MAX, "name", notes)
        at = _event_time(time_us, "time_us", notes) if time_us is not None else None
        if agent is not None:
            agent = _id(agent, "agent", notes, _AGENT_MAX)
        if parent is not None and not isinstance(parent, Action):
            parent = _id(parent, "parent", notes)
        frame = CURRENT.get()
        aid = f"{self._id_prefix}{next(self._ids):012x}"
        trace, depth, parent_id = _place(aid, parent, frame)
        agent = agent or (frame.agent if frame is not None else self._agent)
        run_id = frame.run_id if frame is not None else self._run_id
        extra: dict[str, Any] | None = None
        size = BASE_EVENT_BYTES
        if input is not None:
            extra, size = self._digest_input(input, "input")
            if "_uncaptured" in extra:
                notes[UNCAPTURED + "input"] = extra.pop("_uncaptured")
        if output is not None:
            out, out_size = self._digest_input(output, "output")
            if "_uncaptured" in out:
                notes[UNCAPTURED + "output"] = out.pop("_uncaptured")
            if extra is None:
                extra = out
            else:
                extra["payload_bytes"] += out.pop("payload_bytes")
                bodies = out.pop("_bodies", None)
                extra.update(out)
                if bodies:
                    extra.setdefault("_bodies", []).extend(bodies)
            size += out_size - BASE_EVENT_BYTES
        link_ids = _links(links, notes) if links is not None else None
        if type(status) is not str:
            status = _name(status, 32, "status", notes)
        if actor is not None:
            actor = self._actor(actor, notes)
        if notes:
            attrs = {**(attrs or {}), **notes}
        if attrs or actor or link_ids or status != "unset" or fields:
            if extra is None:
                extra = {}
            if fields:
                extra.update(fields)
            if attrs:
                extra["attributes"] = attrs
            if actor:
                extra["actor"] = actor
            if link_ids:
                extra["links"] = link_ids
            if status != "unset":
                extra["status"] = status if status in _STATUSES else "unset"
        self._queue.put(new_entry(agent, kind, "point", name, aid, parent_id, trace, depth, run_id,
                                   _now_ns() // 1000 if at is None else at, extra, size))
        return aid

    @staticmethod
    def _actor(actor: Any, notes: dict[str, str]) -> dict[str, str] | None:
        try:
            kind, who = actor
        except Exception as exc:  # noqa: BLE001 - any odd actor value is noted as uncaptured, never raised to the agent
            notes[UNCAPTURED + "actor"] = f"not a (type, id) pair: {type_name(actor)} raised {type_name(exc)}"
            return None
        kind = _name(kind, 16, "actor", notes)
        if kind not in _ACTOR_TYPES:
            notes[UNCAPTURED + "actor"] = f"actor type {kind!r} is not one of {sorted(_ACTOR_TYPES)}"
            kind = "agent"
        return {"type": kind, "id": _name(who, _ID_MAX, "actor", notes)}

    def decision(self, name: str, *, input: Any = None, output: Any = None, reason: str | None = None,
                 agent: str | None = None, attributes: Mapping[str, Any] | None = None,
                 time_us: EventTime | None = None) -> str:
        """The agent chose something (a plan step, a route, a tool); ``reason`` becomes an attribute."""
        notes: dict[str, str] = {}
        attrs: dict[Any, Any] | None = None  # none, the common case, costs no copy
        if attributes is not None or reason is not None:
            attrs = _mapping(attributes, notes)
            if reason is not None:
                attrs["reason"] = reason
        return self._event("decision", name, agent, None, input, output, attrs, None, "unset", None, notes, time_us)

    def message(self, name: str = "", *, content: Any = None, to: str | None = None, role: str | None = None,
                agent: str | None = None, attributes: Mapping[str, Any] | None = None,
                time_us: EventTime | None = None) -> str:
        """A message sent or received (to a user, another agent, a channel); ``content`` is digested."""
        notes: dict[str, str] = {}
        attrs = _mapping(attributes, notes)
        if to is not None:
            attrs["to"] = to
        if role is not None:
            attrs["role"] = role
        if type(name) is str and not name:
            name = to if to is not None else ""
        return self._event("message", name, agent, None, content, None, attrs, None, "unset", None, notes, time_us)

    def approval(self, approver: str, *, name: str = "", input: Any = None, granted: bool = True,
                 grant: Any = None, agent: str | None = None, attributes: Mapping[str, Any] | None = None,
                 time_us: EventTime | None = None) -> str:
        """A named human approved (or refused, ``granted=False``) something the agent wants to do.

        :param grant: an :class:`~agentaudit.control.approvals.Approval`, whose attributes (args_hash,
            expiry) the event then carries so that the SDK and the rules can check it. Its ``args_hash``
            is recorded keyed (:meth:`Digester.bind`), as the approved action records its own.
        """
        notes: dict[str, str] = {}
        try:
            yes = bool(granted)
        except Exception as exc:  # noqa: BLE001 - a hostile __bool__ must not reach the agent; recorded as not granted
            notes[UNCAPTURED + "granted"] = f"bool() of {type_name(granted)} raised {type_name(exc)}"
            yes = False
        attrs: dict[Any, Any] = {"approver": approver, "granted": "true" if yes else "false"}
        if grant is not None:
            try:
                granted_attrs = dict(grant.attributes())
                if type(granted_attrs.get("args_hash")) is str:
                    granted_attrs["args_hash"] = self._digests.bind(granted_attrs["args_hash"])
                attrs.update(granted_attrs)
                if not (type(name) is str and name):
                    name = grant.tool
            except Exception as exc:  # noqa: BLE001 - an odd grant object is noted as uncaptured, never raised to the agent
                notes[UNCAPTURED + "grant"] = f"{type_name(grant)} raised {type_name(exc)}"
        attrs.update(_mapping(attributes, notes))
        return self._event("approval", name, agent, None, input, None, attrs, ("human", approver),
                           "ok" if yes else "denied", None, notes, time_us)

    def handoff(self, to_agent: str, *, input: Any = None, agent: str | None = None,
                attributes: Mapping[str, Any] | None = None, time_us: EventTime | None = None) -> str:
        """The current agent hands the work to ``to_agent``; the receiving agent's actions should pass
        ``parent=<returned id>`` (or run inside the same context) to stay in the trace."""
        notes: dict[str, str] = {}
        frame = CURRENT.get()
        attrs = {"to_agent": to_agent,
                 "from_agent": agent if agent is not None else (frame.agent if frame else self._agent)}
        attrs.update(_mapping(attributes, notes))
        return self._event("handoff", to_agent, agent, None, input, None, attrs, None, "unset", None, notes, time_us)

    def emit(self, event: Mapping[str, Any]) -> str:
        """Logging-style quick use: ``client.emit({"kind": "decision", "name": "route", "why": "cheap"})``.

        Known keys map onto fields (``kind``, ``name``, ``agent``, ``status``, ``input``, ``output``, ``model``,
        tokens, ``cost_usd``, ``parent``, ``time_us``, ...); every other key becomes an attribute. Never raises: a value that
        cannot be captured is left out and named in an ``agentaudit.uncaptured.<field>`` attribute.
        """
        notes: dict[str, str] = {}
        try:
            data = _mapping(event, notes)
            known: dict[str, Any] = {}
            attrs = _mapping(data.pop("attributes", None), notes) if "attributes" in data else {}
            for key, value in data.items():
                if type(key) is str and key in EMIT_FIELDS:
                    known[key] = value
                else:
                    attrs[key] = value
            get = known.get
            actor = None
            if get("actor_type") is not None or get("actor_id") is not None:
                actor = (get("actor_type") or "agent", get("actor_id") or "")
            fields: dict[str, Any] = {}
            for key in ("input_tokens", "output_tokens", "latency_us", "cost_usd"):
                if get(key) is not None:
                    value, problem = number(known[key], integer=key != "cost_usd")
                    if problem is None:
                        fields[key] = value
                    else:
                        notes[UNCAPTURED + key] = problem
            for key, limit in (("model", _NAME_MAX), ("error_type", _NAME_MAX), ("error_message", _ERROR_MAX)):
                if get(key) is not None:
                    fields[key] = _name(known[key], limit, key, notes)
            kind, attrs_s = _kind(get("kind", "other"), _safe_attrs(attrs, notes) if attrs else None)
            agent = get("agent") if get("agent") is not None else get("agent_id")
            parent = get("parent") if get("parent") is not None else get("parent_action_id")
            return self._point(kind, get("name", ""), agent, parent, get("input"), get("output"), attrs_s, actor,
                               get("status", "unset"), get("links"), fields, notes, get("time_us"))
        except Exception as exc:  # noqa: BLE001 - emit never raises into the agent; recorded as a failed point
            return self._point_failed("emit", exc)

    def record_action(self, kind: str, name: str, *, action_id: str, trace_id: str, start_time_us: EventTime,
                      end_time_us: EventTime, parent_action_id: str | None = None, depth: int = 0,
                      agent: str | None = None, status: str = "ok", error_type: str | None = None,
                      error_message: str | None = None, model: str | None = None, input_tokens: int = 0,
                      output_tokens: int = 0, cost_usd: float = 0.0, attributes: Mapping[str, Any] | None = None,
                      links: list[str] | None = None, input: Any = None, output: Any = None) -> None:
        """Record an action that already happened (start and end events), e.g. from another tracer.
        The ids are the caller's; the events join the agent's stream like any other. ``input`` and ``output``
        (prompt, completion, tool arguments and result) are recorded as :meth:`action` records them: keyed
        digests, bodies only with ``capture_bodies``. Never raises: what cannot be captured is left out and
        named in ``agentaudit.uncaptured.<field>`` attributes."""
        try:
            notes: dict[str, str] = {}
            name = _name(name, _NAME_MAX, "name", notes)
            action_id = _id(action_id, "action_id", notes) or f"{self._id_prefix}{next(self._ids):012x}"
            trace_id = _id(trace_id, "trace_id", notes) or action_id
            parent_action_id = _id(parent_action_id, "parent", notes)
            agent = _id(agent, "agent", notes, _AGENT_MAX) or self._agent
            depth_n, problem = number(depth, integer=True)
            if problem:
                notes[UNCAPTURED + "depth"] = problem
            now = _now_ns() // 1000
            start_at, end_at = _span_times(start_time_us, end_time_us, notes)
            start_us = now if start_at is None else start_at
            end_us = start_us if end_at is None else end_at
            counts = []
            for field, value, integer in (("input_tokens", input_tokens, True), ("output_tokens", output_tokens, True),
                                          ("cost_usd", cost_usd, False)):
                n, problem = number(value, integer=integer)
                if problem:
                    notes[UNCAPTURED + field] = problem
                counts.append(n or 0)
            link_ids = _links(links, notes) if links is not None else None
            status = _name(status, 32, "status", notes)
            model = _name(model, _NAME_MAX, "model", notes) or None if model is not None else None
            errors: dict[str, str] = {}
            if error_type is not None:
                errors["error_type"] = _name(error_type, _NAME_MAX, "error_type", notes)
            if error_message is not None:
                errors["error_message"] = _name(error_message, _ERROR_MAX, "error_message", notes)
            attrs = _safe_attrs(attributes, notes) if attributes is not None or notes else None
            kind, attrs = _kind(kind, attrs)
            common: dict[str, Any] = {}
            if attrs:
                common["attributes"] = attrs
            if link_ids:
                common["links"] = link_ids
            if model:
                common["model"] = model
            start = dict(common)
            bodies: list[tuple[str, str]] = []
            sizes = [BASE_EVENT_BYTES, BASE_EVENT_BYTES]
            payload = 0
            for field, value in (("input", input), ("output", output)):
                if value is None:
                    continue
                extra, size = self._digest_input(value, field)
                if "_uncaptured" in extra:
                    common.setdefault("attributes", {})[UNCAPTURED + field] = extra.pop("_uncaptured")
                payload += extra.pop("payload_bytes")
                bodies += extra.pop("_bodies", [])
                if field == "input":
                    start.update(extra)
                    if bodies:
                        start["_bodies"] = list(bodies)
                        sizes[0] = size
                common.update(extra)
                sizes[1] += size - BASE_EVENT_BYTES
            if payload:
                common["payload_bytes"] = payload
            if bodies:
                common["_bodies"] = bodies
            end = dict(common, status=status if status in _STATUSES else "unset",
                       latency_us=max(0, end_us - start_us), start_time_us=start_us,
                       end_time_us=end_us, input_tokens=counts[0], output_tokens=counts[1], cost_usd=counts[2],
                       **errors)
            put = self._queue.put
            put(new_entry(agent, kind, "start", name, action_id, parent_action_id, trace_id, depth_n or 0,
                           self._run_id, start_us, start or None, sizes[0]))
            put(new_entry(agent, kind, "end", name, action_id, parent_action_id, trace_id, depth_n or 0,
                           self._run_id, end_us, end, sizes[1]))
        except Exception as exc:  # noqa: BLE001 - record_action never raises into the agent; recorded as a failed point
            self._point_failed("record_action", exc)

    def _digest_input(self, value: Any, field: str) -> tuple[dict[str, Any], int]:
        """The keyed digest (and, with ``capture_bodies``, the body) of an input or output; never raises.
        What could not be captured is returned under ``_uncaptured``."""
        body, problem = json_text(value)
        extra: dict[str, Any] = {f"{field}_digest": self._digests.digest(body), "payload_bytes": len(body)}
        if problem:
            extra["_uncaptured"] = problem
        size = BASE_EVENT_BYTES
        if self._capture:
            body = body[:self._body_keep]  # the worker redacts, then caps at body_max_bytes
            extra["_bodies"] = [(f"{field}_body", body)]
            size += len(body)
        return extra, size

    def args_hash(self, args: Any) -> str:
        """The ``args_hash`` attribute this client records for an action with these JSON arguments (keyed
        with the tenant's key, as an approval of them records it): to bind recorded history to approvals.
        Never raises: arguments that are not JSON get the hash of their captured JSON text."""
        try:
            plain = args_hash(args)
        except Exception:  # noqa: BLE001 - not JSON (a NaN, an object): hash what the SDK would capture
            plain = args_hash(json_text(args)[0])
        return self._digests.bind(plain)

    def digest(self, value: Any) -> str:
        """The digest this client records for ``value`` as an input or output (keyed with the tenant's key):
        to find the events of a known input. Never raises."""
        return self._digests.digest(json_text(value)[0])

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
        except Exception:  # noqa: BLE001 - close must finish whatever the worker raised; logged with its traceback
            _log.exception("sdk.close_failed")
        global _default  # noqa: PLW0603 - the process-wide client of get_client(), cleared when it closes
        if _default is self:
            _default = None

    def has_room(self, events: int) -> bool:
        """Whether ``events`` more events fit now without an emit waiting or dropping: the in-memory queue has
        room and the spool could take every event not yet confirmed (should the broker leave). A receiver that can
        answer "try later"
        (the OTLP receiver's 503) asks before it accepts a batch, instead of letting the queue drop."""
        queue = self._queue
        if self._closed or queue.stalled:
            return False
        if len(queue) + events > queue.max_events or queue.bytes + events * BASE_EVENT_BYTES > queue.max_bytes:
            return False
        # in any mode: the broker may leave before these are confirmed, and then all of them go to the spool
        worker = self._worker
        unconfirmed = len(queue) + worker.unspooled() + events
        # a quarter over the mean seen so far (twice the base estimate before the first): sizes vary
        mean = worker.mean_event_bytes()
        return self._spool.room_for(unconfirmed * (max(BASE_EVENT_BYTES, mean) * 5 // 4 if mean
                                                   else 2 * BASE_EVENT_BYTES))

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


def _signing_key(given: SigningKey | str | Path | None, settings: SdkSettings) -> SigningKey | None:
    """The key that signs stream checkpoints: the argument, else ``AGENTAUDIT_SIGNING_KEY_FILE``, else none."""
    if isinstance(given, SigningKey):
        return given
    path = given if given is not None else settings.signing_key_file
    if path is None:
        return None
    try:
        return SigningKey.load(Path(path).expanduser())
    except KeysFileError as exc:
        raise SdkConfigError(f"signing key: {exc} (make one with `agentaudit keys new`)") from exc


def _close_at_exit(ref: weakref.ref[AuditClient]) -> None:
    client = ref()
    if client is not None:
        client.close(timeout=5.0)


_default: AuditClient | None = None
_default_lock = threading.Lock()


def get_client(**kwargs: Any) -> AuditClient:
    """The process-wide client, built on first call from ``AGENTAUDIT_*`` variables and ``kwargs``
    (the :class:`AuditClient` arguments). Later calls return it; passing ``kwargs`` then is an error."""
    global _default  # noqa: PLW0603 - the process-wide client of get_client()
    with _default_lock:
        if _default is None:
            _default = AuditClient(**kwargs)
        elif kwargs:
            raise SdkConfigError("get_client() already built the process-wide client; call it without arguments, "
                                 "or build a separate AuditClient(...)")
        return _default
