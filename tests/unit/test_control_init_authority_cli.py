"""``agentaudit control init-authority``: the production way to make what ``up`` provisions (compose mounts it)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from agentaudit.cli import app
from agentaudit.control.authority import Authority


def test_init_authority_writes_loadable_files_with_private_modes_and_keeps_them(tmp_path: Path):
    target = tmp_path / "secrets"
    made = CliRunner().invoke(app, ["control", "init-authority", "--dir", str(target), "--operator", "alice"])
    assert made.exit_code == 0, made.output
    authority = Authority.load(target / "authority.yaml")
    assert "operator-alice" in authority.keys and "agentaudit-service" in authority.keys
    for path in (target / "authority.yaml", target / "keys" / "operator-alice.key",
                 target / "keys" / "agentaudit-service.key"):
        assert path.stat().st_mode & 0o777 == 0o600, path
    before = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}
    again = CliRunner().invoke(app, ["control", "init-authority", "--dir", str(target), "--operator", "alice"])
    assert again.exit_code == 0 and "kept" in again.output
    assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == before
