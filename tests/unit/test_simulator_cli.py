"""``agentaudit simulate --out``: the same seed writes the same file, and bad options are refused."""

from __future__ import annotations

import hashlib

from typer.testing import CliRunner

from agentaudit.cli import app
from agentaudit.producers.simulator import read_log

runner = CliRunner()


def test_simulate_to_a_file_is_reproducible_and_summarised(tmp_path):
    args = ["simulate", "--seed", "42", "--traces", "60", "--fault", "loop=1", "--tenant", "acme"]
    first = runner.invoke(app, [*args, "--out", str(tmp_path / "a.aasim")])
    second = runner.invoke(app, [*args, "--out", str(tmp_path / "b.aasim")])
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    data = (tmp_path / "a.aasim").read_bytes()
    assert data == (tmp_path / "b.aasim").read_bytes()
    assert "traces: 60" in first.output and "loop=60" in first.output
    assert hashlib.sha256(data).hexdigest() in first.output
    keys = {key for key, _ in read_log(tmp_path / "a.aasim")}
    assert keys and all(key.startswith(b"sim-42/") for key in keys)


def test_simulate_to_a_file_defaults_to_ten_thousand_events(tmp_path):
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "log"), "--agents", "3"])
    assert result.exit_code == 0, result.output
    assert sum(1 for _ in read_log(tmp_path / "log")) == 10_000


def test_bad_fault_options_are_refused(tmp_path):
    for bad in ("loop", "loop=lots", "meteor=0.1", "loop=2"):
        result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "x"), "--fault", bad])
        assert result.exit_code == 2, (bad, result.output)
    assert not (tmp_path / "x").exists()
