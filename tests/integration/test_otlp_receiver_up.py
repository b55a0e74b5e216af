"""``agentaudit up`` runs the OTLP receiver: the stack's own ``otlp`` component (the real ``agentaudit otlp``
process, on the stack's port, spooling under home) takes a stock exporter's request and stops on SIGTERM with
the events saved; ``--no-otlp`` leaves it out."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from agentaudit.infra.stack import Stack, StackSettings
from tests.sdk_support import spooled
from tests.security.test_otlp_receiver_hostile import PB, _spans
from tests.up_ports import up_port_settings

pytestmark = [pytest.mark.integration]


def _stack(tmp_path: Path, **settings: object) -> Stack:
    (tmp_path / "home").mkdir(exist_ok=True)
    # the broker is not started: the receiver spools, which is all this test reads back
    return Stack(StackSettings(home=tmp_path / "home", simulate_rate=0, **{**up_port_settings(), **settings}))


def test_up_starts_the_receiver_which_takes_a_request_and_stops_cleanly(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AGENTAUDIT_OTLP_TOKENS", "AGENTAUDIT_OTLP_TOKENS_FILE", "AGENTAUDIT_OTLP_SPOOL_DIR"):
        monkeypatch.delenv(name, raising=False)
    stack = _stack(tmp_path)
    otlp = {c.name.split(" ")[0]: c for c in stack._components()}["OTLP"]
    assert otlp.url == stack.urls["otlp"] == f"http://127.0.0.1:{stack.ports['otlp']}/v1/traces"
    otlp.start()
    try:
        answer = httpx.post(otlp.url, content=_spans(3), headers=PB, timeout=30)
        assert answer.status_code == 200, answer.text
        assert otlp.alive()
    finally:
        otlp.stop()
    assert not otlp.alive()
    log = otlp.log.read_text()
    assert "dev mode" in log and "Traceback" not in log, log
    # stopped cleanly: the six events (three spans, start and end) are saved in home's spool, tenant 'default'
    records = [r for r, _ in spooled(next((stack.home / "otlp-spool").glob("otlp-default-*")))]
    assert len(records) == 6 and {r["tenant"] for r in records} == {"default"}


def test_no_otlp_leaves_the_receiver_out(tmp_path: Path) -> None:
    names = [c.name for c in _stack(tmp_path, otlp=False)._components()]
    assert not any(name.startswith("OTLP") for name in names) and any(n.startswith("consumer") for n in names)
