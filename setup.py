"""Maps the top-level folders onto the `agentaudit` import namespace.

The tree tells the story (schemas/, producers/, consumers/, dashboard/, infra/),
while users import `agentaudit.schemas`, `agentaudit.producers`, and so on.
"""

import os

from setuptools import setup

PACKAGE_DIRS = {
    "agentaudit": "agentaudit",
    "agentaudit.schemas": "schemas",
    "agentaudit.producers": "producers",
    "agentaudit.consumers": "consumers",
    "agentaudit.dashboard": "dashboard",
    "agentaudit.infra": "infra",
}
DATA_SUFFIXES = (".avsc", ".sql", ".yaml", ".yml", ".toml", ".json", ".jsonl", ".png", ".css", ".sh", ".xml")
#: Files without a suffix that ship too: the compose file builds its image from infra/Dockerfile.
DATA_NAMES = ("Dockerfile",)


def _is_data(name: str) -> bool:
    return name.endswith(DATA_SUFFIXES) or name in DATA_NAMES


def _discover() -> tuple[list[str], dict[str, list[str]]]:
    packages: list[str] = []
    package_data: dict[str, list[str]] = {}
    for package, folder in PACKAGE_DIRS.items():
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
            if "__init__.py" not in files:
                continue
            relative = os.path.relpath(root, folder)
            name = package if relative == "." else f"{package}.{relative.replace(os.sep, '.')}"
            packages.append(name)
            data = [f for f in files if _is_data(f)]
            for sub in dirs:
                sub_root = os.path.join(root, sub)
                if not os.path.exists(os.path.join(sub_root, "__init__.py")):
                    for r, _, fs in os.walk(sub_root):
                        data += [os.path.relpath(os.path.join(r, f), root) for f in fs if _is_data(f)]
            if data:
                package_data[name] = data
    return packages, package_data


packages, package_data = _discover()
setup(packages=packages, package_dir=PACKAGE_DIRS, package_data=package_data)
