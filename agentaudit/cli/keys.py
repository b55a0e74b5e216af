"""`agentaudit keys ...`: producer signing keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from agentaudit.cli._app import app
from agentaudit.cli._common import refusal_exits

if TYPE_CHECKING:
    from agentaudit.schemas import SigningKey

keys_app = typer.Typer(help="Producer signing keys: make a key, register its public half in the keys file "
                       "(AGENTAUDIT_KEYS_FILE) for a tenant and agents, rotate and revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
_KEYS_FILE = typer.Option(..., "--keys-file", envvar="AGENTAUDIT_KEYS_FILE",
                          help="The keys file consumers verify with (AGENTAUDIT_KEYS_FILE); created when absent.")
_KEY_DIR_HELP = "Where the private key is written (mode 0600), as <dir>/<id>.key."


def _new_private_key(key_id: str, key_dir: str) -> SigningKey:
    from pathlib import Path

    from agentaudit.schemas import SigningKey

    path = Path(key_dir).expanduser() / f"{key_id}.key"
    if path.exists():
        typer.echo(f"error: {path} exists; pick another key id (a key file is never overwritten)", err=True)
        raise typer.Exit(1)
    key = refusal_exits(SigningKey.generate, key_id)
    refusal_exits(key.save, path)
    typer.echo(f"private key: {path} (mode 0600; give it to the producer as AGENTAUDIT_SIGNING_KEY_FILE)")
    return key


@keys_app.command("new")
def keys_new(
    key_id: str = typer.Argument(..., help="Key id, also the private key's file stem (e.g. acme-support-2026-12)."),
    key_dir: str = typer.Option("~/.agentaudit/keys", "--dir", help=_KEY_DIR_HELP),
    keys_file: str = typer.Option(None, "--keys-file", envvar="AGENTAUDIT_KEYS_FILE",
                                  help="Also register the public key in this keys file (needs --principal)."),
    principal: str = typer.Option(None, help="Who the key belongs to: agent:<id>, human:<id> or service:<id>."),
    tenant: str = typer.Option("*", help="The tenant it may sign for ('*': every tenant)."),
    agent: list[str] = typer.Option(None, "--agent", help="Agent id or glob whose streams it signs (repeatable; "
                                    "default every agent)."),
) -> None:
    """Make an Ed25519 signing key; print its public key, and register it when --keys-file is given."""
    if keys_file and not principal:
        typer.echo("error: registering a key needs --principal (e.g. agent:support-bot)", err=True)
        raise typer.Exit(2)
    key = _new_private_key(key_id, key_dir)
    typer.echo(f"public key: {key.public_key}")
    if keys_file:
        from agentaudit.schemas.keys_file import add_key

        refusal_exits(add_key, keys_file, key_id=key_id, public_key=key.public_key, principal=principal,
                   tenant=tenant, agents=agent or None)
        typer.echo(f"registered {key_id} in {keys_file} for tenant {tenant!r}, agents {agent or ['*']}")


@keys_app.command("add")
def keys_add(
    key_id: str = typer.Argument(..., help="Key id, as the producer's signatures carry it."),
    public_key: str = typer.Option(..., "--public-key", help="Base64 of the raw 32-byte Ed25519 public key "
                                   "(what `keys new` prints)."),
    principal: str = typer.Option(..., help="agent:<id>, human:<id> or service:<id>."),
    tenant: str = typer.Option("*", help="The tenant it may sign for ('*': every tenant)."),
    agent: list[str] = typer.Option(None, "--agent", help="Agent id or glob (repeatable; default every agent)."),
    not_before: str = typer.Option(None, "--not-before", help="ISO-8601 time it starts to be valid."),
    keys_file: str = _KEYS_FILE,
) -> None:
    """Register a public key someone else made."""
    from agentaudit.schemas.keys_file import add_key

    refusal_exits(add_key, keys_file, key_id=key_id, public_key=public_key, principal=principal, tenant=tenant,
               agents=agent or None, not_before=not_before)
    typer.echo(f"registered {key_id} in {keys_file}")


@keys_app.command("rotate")
def keys_rotate(
    old_id: str = typer.Argument(..., help="The key being replaced."),
    new_id: str = typer.Argument(..., help="Id of the new key (made here)."),
    key_dir: str = typer.Option("~/.agentaudit/keys", "--dir", help=_KEY_DIR_HELP),
    at: str = typer.Option(None, "--at", help="ISO-8601 moment of the switch (default now): the old key is revoked "
                           "and the new one valid from then."),
    keys_file: str = _KEYS_FILE,
) -> None:
    """Make a new key for what the old one covers and revoke the old one at the same moment.

    Checkpoints the old key signed before the moment still verify; after it they raise integrity.unauthorized-key.
    Point the producer at the new key file (AGENTAUDIT_SIGNING_KEY_FILE) and restart it.
    """
    from agentaudit.schemas.keys_file import read_keys, rotate_key

    ring = refusal_exits(read_keys, keys_file)
    if old_id not in ring:
        typer.echo(f"error: no key {old_id!r} in {keys_file}; `agentaudit keys list` shows the ids", err=True)
        raise typer.Exit(1)
    key = _new_private_key(new_id, key_dir)
    refusal_exits(rotate_key, keys_file, old_id, key, at=at)
    typer.echo(f"rotated {old_id} -> {new_id} in {keys_file}; public key: {key.public_key}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(..., help="The key to revoke."),
    at: str = typer.Option(None, "--at", help="ISO-8601 time (default now); earlier signatures still verify."),
    keys_file: str = _KEYS_FILE,
) -> None:
    """Revoke a key: signatures at or after the time no longer verify (a stolen key: revoke, then rotate)."""
    from agentaudit.schemas.keys_file import revoke_key

    refusal_exits(revoke_key, keys_file, key_id, at=at)
    typer.echo(f"revoked {key_id} in {keys_file}")


@keys_app.command("list")
def keys_list(keys_file: str = _KEYS_FILE) -> None:
    """The registered keys: id, principal, tenant, agents, valid from, revoked at."""
    from agentaudit.schemas.keys_file import read_keys

    for entry in refusal_exits(read_keys, keys_file).to_document()["keys"]:
        typer.echo(f"{entry['id']}\t{entry['principal']}\t{entry['tenant']}\t{','.join(entry['agents'])}\t"
                   f"{entry.get('not_before', '-')}\t{entry.get('revoked_at', '-')}")
