"""Kill and clear from the dashboard: control commands on Kafka under the signed-in actor's name.

The control topic is the state (:class:`~agentaudit.schemas.ControlState` folds it); the
dashboard reads it with :func:`~agentaudit.control.topic.read_control_state` and writes only
by publishing commands through :class:`~agentaudit.control.issuer.ControlIssuer`, as
``agentaudit control kill/clear`` does. Nothing here touches ClickHouse.

>>> with ControlDesk(KafkaSettings()) as desk:
...     kill = desk.kill("billing-bot", actor="alice", reason="runaway refunds")
...     desk.clear(kill, actor="alice", note="root cause fixed")
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from agentaudit.control import ControlIssuer, ensure_control_topic, read_control_state
from agentaudit.control.authority import Authority
from agentaudit.dashboard.exceptions import AuthError, PublishError
from agentaudit.exceptions import AgentAuditError
from agentaudit.schemas import ControlCommand, ControlState, SigningKey
from agentaudit.settings import KafkaSettings

__all__ = ["ControlDesk"]


class ControlDesk:
    """The dashboard's control-plane reads and writes; every write names the signed-in actor.

    :param settings: broker and control topic (``AGENTAUDIT_BOOTSTRAP_SERVERS``, ``AGENTAUDIT_TOPIC_CONTROL``).
    :param read_timeout: seconds a read of the whole control topic may take at most, default 10.
    :param idle: seconds without new messages after which the read counts as complete, default 1.
    :param key: the dashboard's service key (``AGENTAUDIT_SERVICE_KEY_FILE``): commands are signed with it on
        behalf of the signed-in person they name. Default None: unsigned (refused where an authority is set).
    :param authority: show only commands it authorizes (``AGENTAUDIT_AUTHORITY_FILE``); default None, all.
    """

    def __init__(self, settings: KafkaSettings, *, read_timeout: float = 10.0, idle: float = 1.0,
                 key: SigningKey | None = None, authority: Authority | None = None) -> None:
        self.settings = settings
        self.key = key
        self.authority = authority
        self._read_timeout = read_timeout
        self._idle = idle
        self._issuer: ControlIssuer | None = None  # created on the first write: no network I/O here
        self._topic_ready = False

    @property
    def topic(self) -> str:
        """The control topic commands go to."""
        return self.settings.topics.control

    def _ensure_topic(self) -> None:
        if not self._topic_ready:  # infinite retention: a kill must never age out of the log
            ensure_control_topic(self.settings)
            self._topic_ready = True

    def state(self) -> ControlState:
        """The current control state, folded from the whole control topic."""
        self._ensure_topic()
        return read_control_state(self.settings, timeout=self._read_timeout, idle=self._idle,
                                  authority=self.authority)

    def kill(self, agent_id: str, *, actor: str, reason: str, tenant: str = "") -> ControlCommand:
        """The kill switch for ``agent_id`` (``*``: every agent of ``tenant``), issued by ``actor``.

        :raises AuthError: nobody is signed in.
        :raises PublishError: no agent id or reason, or the broker did not acknowledge the command.
        """
        agent_id, reason = agent_id.strip(), reason.strip()
        self._check_actor(actor, "kill an agent")
        if not agent_id:
            raise PublishError("a kill needs an agent id (or * for every agent)")
        if not reason:
            raise PublishError(f"a kill of {agent_id!r} needs a note saying why: operators and the audit trail read it")
        return self._publish(lambda issuer: issuer.kill(agent_id, actor=actor, reason=reason, tenant=tenant),
                             f"kill of agent {agent_id!r}")

    def clear(self, target: ControlCommand, *, actor: str, note: str = "") -> ControlCommand:
        """Lift ``target``; the clear is a command naming ``actor`` and the note.

        :raises AuthError: nobody is signed in.
        :raises PublishError: the broker did not acknowledge the clear.
        """
        self._check_actor(actor, "clear a command")
        return self._publish(lambda issuer: issuer.clear(target, actor=actor, note=note.strip()),
                             f"clear of {target.type.value} {target.command_id}")

    @staticmethod
    def _check_actor(actor: str, what: str) -> None:
        if not actor:
            raise AuthError(f"sign in before you {what}: control commands carry the actor's name")

    def _publish(self, send: Callable[[ControlIssuer], ControlCommand], what: str) -> ControlCommand:
        try:
            self._ensure_topic()
            if self._issuer is None:
                self._issuer = ControlIssuer(self.settings, key=self.key)
            return send(self._issuer)
        except AgentAuditError as exc:
            raise PublishError(f"publishing the {what} to topic {self.topic!r} failed: {exc}; check the broker "
                               f"({self.settings.bootstrap_servers})", code=getattr(exc, "code", None)) from exc

    def close(self) -> None:
        """Flush and release the producer, if one was made."""
        if self._issuer is not None:
            self._issuer.close()
            self._issuer = None

    def __enter__(self) -> ControlDesk:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
