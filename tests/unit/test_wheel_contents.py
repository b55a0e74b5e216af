"""The built wheel is the whole product: one import path per module, and every file the compose file names.

The wheel is built from a copy of this checkout's tracked files (``pip wheel --no-deps --no-build-isolation``,
the venv's setuptools, offline, a few seconds) into a temporary directory and listed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.unit.test_compose_files import _compose, _host_files

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("schemas", "producers", "consumers", "dashboard", "infra")


def _tracked_copy(into: Path) -> Path:
    """The checkout's tracked files (symlinks kept) as a clean source tree: setuptools writes build/ and
    *.egg-info where it builds, so a build in the checkout could ship stale files left in its build/ and
    would collide with a second build running at once (parallel test workers)."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        source, target = ROOT / name, into / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet committed
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    return into


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> list[str]:
    out = tmp_path_factory.mktemp("wheel")
    source = _tracked_copy(tmp_path_factory.mktemp("source"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                            str(out), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = out.glob("agentaudit-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def _in_wheel(repo_path: Path) -> str:
    """``infra/Dockerfile`` -> ``agentaudit/infra/Dockerfile`` (setup.py maps each folder under agentaudit/)."""
    return f"agentaudit/{repo_path.as_posix()}"


@pytest.mark.parametrize("compose_file", ["docker-compose.yml", "docker-compose.cluster.yml"])
def test_the_wheel_holds_every_file_the_compose_file_references(wheel_names, compose_file):
    # infra/secrets/* are made by the operator before the first `up` (README "Production") and never ship
    compose = yaml.safe_load((ROOT / "infra" / compose_file).read_text())
    referenced = {path for path in _host_files(compose) if path.parts[:2] != ("infra", "secrets")}
    assert referenced, compose_file
    missing = sorted(_in_wheel(path) for path in referenced if _in_wheel(path) not in wheel_names)
    assert not missing, f"{compose_file} references files the wheel lacks: {missing}"
    assert f"agentaudit/infra/{compose_file}" in wheel_names


def test_the_main_compose_file_builds_from_shipped_files():
    referenced = _host_files(_compose())
    assert Path("infra/Dockerfile") in referenced and Path("infra/compose/clickhouse-users.sh") in referenced


def test_every_module_ships_once_under_agentaudit(wheel_names):
    modules = [name for name in wheel_names if name.endswith(".py")]
    assert len(modules) == len(set(modules))
    top = {name.split("/", 1)[0] for name in wheel_names if not name.startswith("agentaudit-")}
    assert top == {"agentaudit"}, top
    for folder in FOLDERS:
        tracked = subprocess.run(["git", "ls-files", "--", f"{folder}/*.py"], cwd=ROOT, capture_output=True,
                                 text=True, check=True).stdout.split()
        assert tracked, folder
        lacking = sorted({f"agentaudit/{p}" for p in tracked} - set(modules))
        assert not lacking, f"committed modules the wheel lacks (a folder without __init__.py?): {lacking}"
    assert any(name.startswith("agentaudit/rules/pack/") and name.endswith(".yaml") for name in wheel_names)


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_folder_imports_only_as_agentaudit_package(folder):
    # from the repository root `schemas` is on sys.path too; importing it would load each module twice
    # (two AvroCodec classes), so the folder refuses any name but agentaudit.<folder>
    probe = (f"import importlib\n"
             f"try:\n    importlib.import_module({folder!r})\nexcept ImportError as exc:\n    print('refused', exc)\n"
             f"else:\n    print('imported')\n"
             f"import agentaudit.{folder} as m\nprint(m.__name__)\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("refused import agentaudit."), lines
    assert lines[-1] == f"agentaudit.{folder}"


def test_one_class_per_name_from_the_repository_root():
    probe = ("import sys\nimport agentaudit.schemas.codec as codec\n"
             "print(sorted(m for m in sys.modules\n"
             "             if m.split('.')[0] in {'schemas','producers','consumers','dashboard','infra'}))\n"
             "print(codec.AvroCodec.__module__)\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "agentaudit.schemas.codec"]
