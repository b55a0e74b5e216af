"""What several command modules share: exits on refusal, signals, the service and operator keys."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:  # imported inside the functions at run time: the CLI starts fast
    from agentaudit.control.authority import Authority
    from agentaudit.schemas.signing import KeyRing, SigningKey
    from agentaudit.settings import KafkaSettings

T = TypeVar("T")


def stream_keys() -> KeyRing | None:
    """The producer keys signed streams are verified with (AGENTAUDIT_KEYS_FILE), or None."""
    from agentaudit.consumers.settings import StreamKeysSettings
    from agentaudit.exceptions import AgentAuditError

    try:
        return StreamKeysSettings().load_keyring()
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def service_authority() -> tuple[Authority | None, SigningKey | None]:
    """The authority file and service key of a consumer process (AGENTAUDIT_AUTHORITY_FILE, _SERVICE_KEY_FILE)."""
    from agentaudit.control.settings import AuthoritySettings
    from agentaudit.exceptions import AgentAuditError

    settings = AuthoritySettings()
    try:
        return settings.load_authority(), settings.service_key()
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc




def control_settings() -> KafkaSettings:
    from agentaudit.control import ensure_control_topic
    from agentaudit.settings import KafkaSettings

    kafka = KafkaSettings()
    ensure_control_topic(kafka)
    return kafka


def fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1) from exc


def operator(actor: str | None = None) -> tuple[Authority | None, SigningKey | None]:
    """The authority (AGENTAUDIT_AUTHORITY_FILE) and operator key (AGENTAUDIT_OPERATOR_KEY_FILE) of a CLI call.

    With ``actor``, refuses early when the authority would refuse the command: no key, or a key that is not
    the actor's (readers would ignore the command and raise an integrity incident).
    """
    from agentaudit.control.admission import warn_unauthenticated
    from agentaudit.control.settings import AuthoritySettings
    from agentaudit.exceptions import AgentAuditError

    settings = AuthoritySettings()
    try:
        authority, key = settings.load_authority(), settings.operator_key()
    except AgentAuditError as exc:
        fail(exc)
    if authority is None:
        warn_unauthenticated("agentaudit control")
    if actor is not None and authority is not None:
        entry = authority.keys.get(key.key_id) if key is not None else None
        issuer = f"human:{actor}"
        if entry is None:
            typer.echo(f"error: commands must be signed: set AGENTAUDIT_OPERATOR_KEY_FILE to your operator key, "
                       f"registered in {authority.source}" + (f" (key {key.key_id!r} is not)" if key else ""), err=True)
            raise typer.Exit(1)
        if entry.principal != issuer and not any(g.matches(entry.principal) and g.speaks_for(issuer)
                                                 for g in authority.grants):
            typer.echo(f"error: key {key.key_id!r} belongs to {entry.principal}, not {issuer}; "  # type: ignore[union-attr]  # entry set: key too
                       f"pass --actor {entry.principal.split(':', 1)[1]}", err=True)
            raise typer.Exit(1)
    return authority, key




def refusal_exits(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a file operation of a CLI command; a refusal (any agentaudit error) prints ``error: ...`` and exits 1."""
    from agentaudit.exceptions import AgentAuditError

    try:
        return fn(*args, **kwargs)
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def stop_on_signals() -> threading.Event:
    """An event that SIGINT or SIGTERM sets: every long-running command stops the same, clean way."""
    import signal

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop
