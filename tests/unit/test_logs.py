"""Logging: an event with real fields, as readable text or one JSON object per line (structlog)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from agentaudit.logs import configure_logging, get_logger


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_event_its_fields_and_library_records(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging(logging.INFO, "json", stream=out)
    log = get_logger("agentaudit.test")
    log.info("sink.assigned", partitions=[0, 1], group="g")
    log.debug("sink.hidden", x=1)  # below the level: not formatted, not written
    logging.getLogger("librdkafka").warning("broker %s down", "b1")
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        log.exception("sink.failed", batch=7)
    first, library, failed = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["event"] == "sink.assigned" and first["partitions"] == [0, 1] and first["group"] == "g"
    assert first["level"] == "info" and first["logger"] == "agentaudit.test" and first["timestamp"].endswith("Z")
    assert library["event"] == "broker b1 down" and library["level"] == "warning" and library["logger"] == "librdkafka"
    assert failed["batch"] == 7 and "ZeroDivisionError: boom" in failed["exception"]


def test_text_lines_stay_readable_with_the_fields_as_key_value(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging(logging.INFO, "text", stream=out)
    get_logger("agentaudit.test").warning("sdk.spooling", reason="broker down", spool="spool/slot-0")
    line = out.getvalue().strip()
    assert line.endswith("WARNING agentaudit.test sdk.spooling reason=broker down spool=spool/slot-0")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_a_second_configuration_replaces_the_handler(restore_root: None) -> None:
    configure_logging(logging.INFO, "json", stream=io.StringIO())
    configure_logging(logging.WARNING, "json", stream=io.StringIO())
    assert len(logging.getLogger().handlers) == 1 and logging.getLogger().level == logging.WARNING


def test_lines_follow_standard_error_when_a_host_swaps_and_closes_it(restore_root: None, monkeypatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A CLI command run in-process (a test runner's invocation) sets logging up while standard error is the
    runner's buffer, which is closed afterwards; later lines must go to standard error as it is then, not
    raise "I/O operation on closed file" into whatever is printing."""
    borrowed = io.StringIO()
    monkeypatch.setattr("sys.stderr", borrowed)
    configure_logging(logging.INFO, "text")
    get_logger("agentaudit.test").info("during.invocation", n=1)
    monkeypatch.undo()
    borrowed.close()
    get_logger("agentaudit.test").warning("after.invocation", n=2)
    err = capsys.readouterr().err
    assert "after.invocation n=2" in err
    assert "Logging error" not in err
