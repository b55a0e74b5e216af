"""``infra/docker-compose.yml`` mounts what its services read, and every host file it names can be had.

There is no Docker on the build machines, so the compose file is never run here. This test loads it
(pyyaml, merge keys resolved) and checks, without Docker:

- every host file it mounts or builds from is in the repository, or is made by the commands of the README's
  ``<!-- compose-secrets -->`` block: the block's ``agentaudit`` lines are run, in a scratch directory, and
  must make exactly those files, loadable, private ones mode 0600;
- the services that read the authority file, the producer keys file, the service key and the dashboard
  users file get the variable and a mount at the path the variable names.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agentaudit.cli import app
from agentaudit.control.authority import Authority
from agentaudit.control.provision import SERVICE_KEY_ID
from agentaudit.dashboard.credentials import read_users
from agentaudit.schemas import KeyRing, SigningKey

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE = INFRA / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _host_files(compose: dict[str, Any]) -> set[Path]:
    """Every host path the compose file reads, repository-relative: bind mounts, configs, secrets, build."""
    found: set[Path] = set()
    for kind in ("configs", "secrets"):
        for item in (compose.get(kind) or {}).values():
            if "file" in item:
                found.add((INFRA / item["file"]).resolve().relative_to(ROOT))
    for service in compose["services"].values():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith(("./", "../", "/")):
                found.add((INFRA / source).resolve().relative_to(ROOT))
        build = service.get("build")
        if build:
            context = (INFRA / build["context"]).resolve()
            found.add((context / build.get("dockerfile", "Dockerfile")).relative_to(ROOT))
    return found


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- compose-secrets -->\n```bash\n(.*?)```", text, re.DOTALL)
    assert match, "README's Production section has no <!-- compose-secrets --> block"
    lines = match.group(1).replace("\\\n", " ").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _mounts(service: dict[str, Any], kind: str, base: str) -> set[str]:
    """Container paths of a service's configs (absolute targets) or secrets (under /run/secrets)."""
    out = set()
    for item in service.get(kind) or []:
        target = item if isinstance(item, str) else item.get("target", item["source"])
        out.add(target if target.startswith("/") else f"{base}/{target}")
    return out


def test_every_host_file_is_in_the_repository_or_made_by_the_documented_commands(tmp_path, monkeypatch):
    referenced = _host_files(_compose())
    missing = {path for path in referenced if not (ROOT / path).is_file()}
    assert {p for p in referenced if (ROOT / p).is_file()} >= {Path("infra/Dockerfile"),
                                                                Path("infra/compose/clickhouse-users.sh")}
    assert missing == {Path("infra/secrets/authority.yaml"), Path("infra/secrets/producer-keys.yaml"),
                       Path("infra/secrets/keys/agentaudit-service.key"), Path("infra/secrets/dashboard-users")}
    assert all(path.parts[:2] == ("infra", "secrets") for path in missing)
    assert "infra/secrets/" in (ROOT / ".gitignore").read_text().splitlines()  # never committed

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    others = []
    for line in _readme_commands():
        argv = shlex.split(line)
        if argv[0] != "agentaudit":
            others.append(argv)
            continue
        result = CliRunner().invoke(app, argv[1:])
        assert result.exit_code == 0, f"{line}: {result.output}"
    for path in missing:
        assert (tmp_path / path).is_file(), f"{path} is mounted by compose but no documented command makes it"
    # the rest of the block only changes owners and modes of those files
    assert {argv[0] for argv in others} <= {"sudo", "chmod"}
    for argv in others:
        assert all((tmp_path / arg).is_file() for arg in argv if arg.startswith("infra/"))

    secrets = tmp_path / "infra" / "secrets"
    authority = Authority.load(secrets / "authority.yaml")
    service_key = SigningKey.load(secrets / "keys" / "agentaudit-service.key")
    assert service_key.key_id == SERVICE_KEY_ID and SERVICE_KEY_ID in authority.keys
    assert len(KeyRing.load(secrets / "producer-keys.yaml")) == 1
    assert set(read_users(secrets / "dashboard-users")) == {"alice"}
    for private in (secrets / "keys" / "agentaudit-service.key", secrets / "dashboard-users"):
        assert private.stat().st_mode & 0o777 == 0o600, private


@pytest.mark.parametrize(("service", "variables"), [
    ("consumer", {"AGENTAUDIT_AUTHORITY_FILE": "authority", "AGENTAUDIT_KEYS_FILE": "producer-keys"}),
    ("rules", {"AGENTAUDIT_AUTHORITY_FILE": "authority", "AGENTAUDIT_KEYS_FILE": "producer-keys",
               "AGENTAUDIT_SERVICE_KEY_FILE": "service-key"}),
    ("dashboard", {"AGENTAUDIT_AUTHORITY_FILE": "authority", "AGENTAUDIT_SERVICE_KEY_FILE": "service-key",
                   "AGENTAUDIT_DASHBOARD_USERS_FILE": "dashboard-users"}),
])
def test_each_service_gets_the_variable_and_a_mount_of_the_file_it_names(service, variables):
    compose = _compose()
    spec = compose["services"][service]
    env = spec["environment"]
    for variable, source in variables.items():
        kind = "secrets" if source in compose["secrets"] else "configs"
        items = [i for i in spec.get(kind) or [] if i["source"] == source]
        assert items, f"{service} reads {variable} but does not mount {source}"
        paths = _mounts({kind: items}, kind, "/run/secrets")
        assert env.get(variable) in paths, (service, variable, env.get(variable), paths)
    if "AGENTAUDIT_SERVICE_KEY_FILE" in variables:  # the key id is the file's stem: it must stay the registered one
        assert Path(env["AGENTAUDIT_SERVICE_KEY_FILE"]).stem == SERVICE_KEY_ID
