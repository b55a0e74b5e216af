"""The control plane as an agent process sees it: obey the control topic.

:class:`ControlListener` reads the control topic from the beginning in a background thread and
folds it (:class:`~agentaudit.schemas.ControlState`) into the current constraints of its
agents, so a restarted agent is paused again if it was paused. :meth:`ControlListener.check`
runs before each action and raises :class:`ActionBlocked` when a command forbids it.

>>> with ControlListener(settings, agents=["billing-bot"]) as control:
...     control.check("billing-bot", "execute_tool", "payments.refund")   # raises if blocked
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from agentaudit.control._blocked import ActionBlocked
from agentaudit.control.admission import ControlAdmission, Refusal, warn_unauthenticated
from agentaudit.control.approvals import Approval, args_hash
from agentaudit.control.authority import Authority
from agentaudit.control.topic import decode_records, ensure_control_topic, wall_clock_us
from agentaudit.exceptions import AgentAuditError
from agentaudit.infra.kafka import (
    OFFSET_BEGINNING,
    ConfigValue,
    KafkaAdmin,
    KafkaConsumer,
)
from agentaudit.logs import get_logger
from agentaudit.schemas import (
    ANY_AGENT,
    AvroCodec,
    ControlCommand,
    ControlState,
    ControlType,
    RuleMode,
)
from agentaudit.settings import KafkaSettings

__all__ = ["LISTENER_DEFAULTS", "ControlListener"]

_log = get_logger("agentaudit.control")

#: Low fetch wait: a command should reach agents in tens of milliseconds, not half a second.
LISTENER_DEFAULTS: Mapping[str, ConfigValue] = {"fetch.wait.max.ms": 20, "auto.offset.reset": "earliest"}

_CODES = {ControlType.KILL_AGENT: "killed", ControlType.PAUSE_AGENT: "paused", ControlType.BLOCK_TOOL: "tool_blocked"}


class ControlListener:
    """Folds the control topic in a background thread; :meth:`check` says whether an action may run.

    Reads every partition from the beginning with manual assignment under a unique group id
    (``auto.offset.reset=earliest``): the whole log is the state, and assignment skips the group
    join delay. Nothing is committed. The thread starts on :meth:`start` or on the first check.

    :param settings: broker and control topic (``AGENTAUDIT_TOPIC_CONTROL``).
    :param agents: fold only commands for these agent ids (and ``*``); default every agent.
    :param tenant: the tenant of this process's agents; commands of other tenants are ignored.
    :param config: librdkafka overrides for the consumer.
    :param subscribe: join a (unique) consumer group instead of assigning partitions; default False.
    :param ready_timeout: seconds the first :meth:`check` waits for the log to be read, default 5.
    :param fail_closed: block every action while the log has not been read, default False (run).
    :param settle_s: with nothing in the log, seconds after assignment until it counts as read, default 1.5.
    :param quiet_s: seconds without new commands after the backlog until it counts as read, default 0.3.
    :param authority: obey only commands it authorizes (signed by a registered key whose principal holds the
        grant; clears of earlier commands; no replays), from ``AGENTAUDIT_AUTHORITY_FILE`` at the entry point.
        Default None: every command is obeyed, and a warning says once that none is authenticated.
    """

    def __init__(self, settings: KafkaSettings, *, agents: Iterable[str] | None = None, tenant: str = "",
                 config: Mapping[str, ConfigValue] | None = None, subscribe: bool = False,
                 ready_timeout: float = 5.0, fail_closed: bool = False, poll_timeout: float = 0.1,
                 settle_s: float = 1.5, quiet_s: float = 0.3, authority: Authority | None = None) -> None:
        self.settings = settings
        self.topic = settings.topics.control
        self.tenant = tenant
        self.agents = None if agents is None else frozenset(agents)
        self.group_id = f"agentaudit-control-{uuid.uuid4().hex}"
        self._config = {**LISTENER_DEFAULTS, **(config or {})}
        self._subscribe = subscribe
        self._ready_timeout = ready_timeout
        self._fail_closed = fail_closed
        self._poll_timeout = poll_timeout
        self._settle_s = settle_s
        self._quiet_s = quiet_s
        self._codec = AvroCodec("control", schema_registry_url=settings.schema_registry_url, topic=self.topic)
        self._state = ControlState()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._seen: set[str] = set()
        if authority is None:
            warn_unauthenticated(f"control listener on topic {self.topic!r}")
        self._admission = ControlAdmission(authority)
        #: per command id: (issued_at_us, applied_at_us), to measure propagation.
        self.arrivals: dict[str, tuple[int, int]] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> ControlListener:
        """Start the background reader (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"agentaudit-control-{self.topic}", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop the reader and leave."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> ControlListener:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def error(self) -> BaseException | None:
        """Why the reader stopped, if it did (then no new command arrives; see ``fail_closed``)."""
        return self._error

    @property
    def ready(self) -> bool:
        """True once the log up to now has been read."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        self.start()
        return self._ready.wait(self._ready_timeout if timeout is None else timeout)

    def _run(self) -> None:
        consumer = KafkaConsumer(self.settings, self.group_id, self._config)
        try:
            if self._subscribe:
                consumer.subscribe([self.topic])
            else:
                admin = KafkaAdmin(self.settings)
                ensure_control_topic(self.settings, admin)  # an agent may start before any consumer created it
                partitions = admin.partitions_for(self.topic)
                consumer.assign([(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            # Tansu's high watermark is wrong, so "caught up with the log" is judged by quiet: the first
            # fetch after assignment takes ~0.5 s, then the backlog streams in; ready after it goes quiet.
            assigned_at: float | None = None
            last: float | None = None
            while not self._stop.is_set():
                # wait for one message (returns as soon as it arrives), then drain what else is there
                batch = consumer.consume_batch(1, timeout=self._poll_timeout)
                if batch:
                    batch += consumer.consume_batch(500, timeout=0)
                now = time.monotonic()
                if batch:
                    self._fold(decode_records(self._codec, batch))
                    last = now
                if self._ready.is_set():
                    continue
                if assigned_at is None and (not self._subscribe or consumer.assignment()):
                    assigned_at = now
                if assigned_at is not None and (
                        (last is not None and now - last >= self._quiet_s) or now - assigned_at >= self._settle_s):
                    self._ready.set()
        except AgentAuditError as exc:
            self._error = exc
            _log.error("control.listener_failed", topic=self.topic, error=exc)
        finally:
            self._ready.set()  # never leave a caller waiting on a dead reader
            try:
                consumer.close()
            except AgentAuditError as exc:
                _log.warning("control.close_failed", error=exc)

    def _fold(self, records: list[tuple[Any, ControlCommand]]) -> None:
        now = wall_clock_us()
        with self._changed:
            for message, record in records:
                # Every record passes admission (a clear's target may be another agent's command it holds for).
                for command in self._admission.admit(record, message):
                    if not self._wanted(command):
                        continue
                    self._state.apply(command)
                    self.arrivals.setdefault(command.command_id, (command.issued_at_us, now))
                    self._seen.add(command.command_id)
            self._changed.notify_all()

    @property
    def refusals(self) -> list[Refusal]:
        """Records refused so far (logged as ``authority.refused`` with topic, partition and offset)."""
        with self._lock:
            return list(self._admission.refusals)

    def _wanted(self, command: ControlCommand) -> bool:
        if self.tenant and command.tenant and command.tenant != self.tenant:
            return False
        if self.agents is None or command.type is ControlType.PROMOTE_RULE:
            return True
        return command.agent_id in self.agents or command.agent_id == ANY_AGENT

    # -- queries ------------------------------------------------------------------------------

    def wait_for(self, command_id: str, timeout: float = 10.0) -> bool:
        """Block until ``command_id`` has been folded in (tests, measurements)."""
        self.start()
        deadline = time.monotonic() + timeout
        with self._changed:
            while command_id not in self._seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def active(self, now_us: int | None = None) -> list[ControlCommand]:
        with self._lock:
            return self._state.active(wall_clock_us() if now_us is None else now_us)

    def rule_mode(self, rule_id: str) -> RuleMode | None:
        """The mode a ``promote_rule`` command set for ``rule_id``, or None (the rule file's own mode)."""
        modes = self._state.rule_modes
        return modes.get(rule_id) if modes else None

    def check(self, agent_id: str, kind: str, name: str, *, tenant: str | None = None, args: Any = None,
              approval: Approval | None = None, now_us: int | None = None) -> None:
        """Raise :class:`ActionBlocked` if a command in force forbids ``agent_id`` running action ``name``.

        :param kind: the action kind (``execute_tool``, ``chat``, ...); kills and pauses stop every kind.
        :param args: the action's arguments, checked against ``approval`` when a command requires one.
        :param approval: an approval for this exact call, see :mod:`agentaudit.control.approvals`.
        """
        if not self._ready.is_set() or self._error is not None:  # noqa: SIM102 - the fail-closed check kept in two steps: the cheap test, then the wait
            if (not self.wait_ready() or self._error is not None) and self._fail_closed:
                raise ActionBlocked(f"the control topic {self.topic!r} cannot be read ({self._error or 'not yet'}) "
                                    "and the client fails closed; check the broker", code="control_unavailable",
                                    agent_id=agent_id, tool=name)
        state = self._state
        if not state._by_agent:  # the common case: nothing in force, no lock taken
            return
        now = wall_clock_us() if now_us is None else now_us
        ten = self.tenant if tenant is None else tenant
        with self._lock:
            command = state.blocking(ten, agent_id, name, now)
            needs = None if command is not None else state.approval_required(ten, agent_id, name, now)
        if command is not None:
            what = {ControlType.KILL_AGENT: "the agent was killed", ControlType.PAUSE_AGENT: "the agent is paused",
                    ControlType.BLOCK_TOOL: f"tool {name!r} is blocked"}[command.type]
            raise ActionBlocked(f"{what} by {command.issuer.type.value} {command.issuer.id}: {command.reason}",
                                incident_id=command.incident_id, command_id=command.command_id,
                                code=_CODES[command.type], rule_id=command.attributes.get("rule_id"),
                                agent_id=agent_id, tool=name)
        if needs is not None:
            if approval is None:
                raise ActionBlocked(f"{name!r} needs an approval bound to its arguments: {needs.reason}",
                                    incident_id=needs.incident_id, command_id=needs.command_id,
                                    code="approval_required", rule_id=needs.attributes.get("rule_id"),
                                    agent_id=agent_id, tool=name)
            approval.verify(agent_id=agent_id, tool=name, digest=args_hash(args), now_us=now)
