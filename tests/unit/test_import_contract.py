"""The import-linter contract in pyproject.toml (``[tool.importlinter]``) holds, and can fail.

``lint-imports`` builds the import graph with grimp, lazy imports inside functions included, and
follows indirect chains: producers and consumers never import each other; the rule engine, the
control plane and ``schemas`` import none of their users. See docs/architecture.md.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"


def _lint(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT_IMPORTS, "--config", str(config), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_the_contract_is_kept():
    result = _lint(ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "5 kept" in result.stdout, result.stdout


def test_the_graph_sees_every_room():
    # agentaudit.<folder> is found through the symlinks agentaudit/<folder> -> ../<folder>; without them
    # grimp would see only agentaudit/ itself and every contract about producers/consumers would pass vacuously.
    graph = grimp.build_graph("agentaudit", cache_dir=None)
    for room in ("schemas", "producers", "consumers", "dashboard", "infra", "rules", "control", "cli"):
        assert f"agentaudit.{room}" in graph.modules
    assert graph.chain_exists("agentaudit.producers.gate", "agentaudit.control", as_packages=True)
    assert graph.chain_exists("agentaudit.consumers.sink", "agentaudit.schemas.codec", as_packages=True)


def test_a_contract_over_a_real_edge_breaks(tmp_path):
    # the SDK does use the control plane: a contract forbidding that must be reported broken, with the chain
    config = tmp_path / "contract.toml"
    config.write_text('[tool.importlinter]\nroot_package = "agentaudit"\n\n'
                      '[[tool.importlinter.contracts]]\nname = "probe"\ntype = "forbidden"\n'
                      'source_modules = ["agentaudit.producers"]\nforbidden_modules = ["agentaudit.control"]\n')
    result = _lint(config)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "probe BROKEN" in result.stdout and "agentaudit.producers." in result.stdout
