"""Every ```python block of README.md runs as written, against a real broker and store.

The blocks run in README order, each in its own interpreter (the venv's), as a reader would paste
them, with ``AGENTAUDIT_*`` pointing at the test stack: the session's broker with fresh topics and
a fresh, migrated database on the session's ``agentaudit store``. A block preceded by
``<!-- not-run: reason -->`` is skipped with that reason (keep such blocks few). Besides exiting 0,
what a block shows must be observable: every tool, model or agent name it records
(``name="..."``) is on the actions topic as an event written by that block; the chain check counts
every event on the topic and finds no violation; the ClickHouse query returns the store's incidents.
``OPENAI_BASE_URL`` points the framework integration blocks at a fake OpenAI-compatible endpoint
(tests/fixtures/fake_openai.py); tests/integration/test_framework_readme.py checks what those blocks record.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentaudit.consumers.migrate import migrate
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.kafka import KafkaAdmin, read_all
from agentaudit.schemas import AvroCodec
from agentaudit.settings import KafkaSettings, StoreSettings, TopicNames
from tests.child_env import child_env
from tests.fixtures.fake_openai import FakeOpenAI
from tests.fixtures.store import StoreProcess

pytestmark = [pytest.mark.integration, pytest.mark.broker]

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"(?:<!--\s*not-run:\s*(?P<reason>.*?)\s*-->\s*\n)?^```python\n(?P<code>.*?)^```", re.DOTALL | re.MULTILINE)
_NAMES = re.compile(r"""\bname=["']([^"']+)["']|["']name["']:\s*["']([^"']+)["']""")
PROBE_RULE = "readme.probe"


@dataclass
class Block:
    index: int
    line: int
    code: str
    skip: str | None


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    names: list[str]  # event names this block added to the actions topic
    topic_events: int  # events on the actions topic after this block


def _blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    return [Block(i, text.count("\n", 0, m.start("code")) + 1, m.group("code"), m.group("reason"))
            for i, m in enumerate(_BLOCK.finditer(text))]


BLOCKS = _blocks()


def _events(kafka: KafkaSettings, topic: str) -> dict[str, str]:
    """Event id -> name of every event on ``topic``; a first fetch on tansu can take seconds, hence the idle."""
    codec = AvroCodec("action")
    records = (codec.decode(m.value()) for m in read_all(kafka, topic, timeout=60, idle=5.0))
    return {r["event_id"]: r["name"] for r in records}


@pytest.fixture(scope="module")
def readme_runs(kafka_settings: KafkaSettings, kafka_admin: KafkaAdmin, store_server: StoreProcess,
                tmp_path_factory: pytest.TempPathFactory) -> dict[int, Run]:
    """Run the blocks in README order against one fresh stack; their results by block index."""
    prefix = f"readme-{uuid.uuid4().hex[:12]}"
    topics = TopicNames(**{name: f"{prefix}.{name}" for name in TopicNames.model_fields})
    kafka_admin.ensure_topics(topics.model_dump().values(), partitions=3)
    database = f"readme_{uuid.uuid4().hex[:12]}"
    with connect(store_server.url) as admin:
        admin.command(f"CREATE DATABASE {database}")
    store = StoreSettings(clickhouse_url=store_server.url, database=database)
    migrate(store)
    with connect(store) as client:  # one incident for the README's query to find
        client.command("INSERT INTO incidents (incident_id, tenant, rule_id, count, window_start, window_end, "
                       f"first_seen, last_seen) VALUES ('probe', 'acme', '{PROBE_RULE}', 1, now64(6), now64(6), "
                       "now64(6), now64(6))")  # recent: the table's TTL drops rows of 1970
    work = tmp_path_factory.mktemp("readme")
    env = child_env()
    env.update({f"AGENTAUDIT_TOPIC_{name.upper()}": value for name, value in topics.model_dump().items()})
    env.update(AGENTAUDIT_BOOTSTRAP_SERVERS=kafka_settings.bootstrap_servers, AGENTAUDIT_CLICKHOUSE_URL=store_server.url,
               AGENTAUDIT_DATABASE=database, AGENTAUDIT_SPOOL_DIR=str(work / "spool"), HOME=str(work))
    model = FakeOpenAI().start()  # the framework integration blocks' model
    env.update(OPENAI_BASE_URL=model.base_url, OPENAI_API_KEY="sk-fake")
    runs: dict[int, Run] = {}
    seen: dict[str, str] = {}
    try:
        for block in BLOCKS:
            if block.skip:
                continue
            script = work / f"block{block.index}.py"
            script.write_text(block.code, encoding="utf-8")
            done = subprocess.run([sys.executable, str(script)], cwd=work, env=env, capture_output=True, text=True,
                                  timeout=180, check=False)
            events = _events(kafka_settings, topics.actions)
            added = [name for event_id, name in events.items() if event_id not in seen]
            runs[block.index] = Run(done.returncode, done.stdout, done.stderr, added, len(events))
            seen = events
    finally:
        model.stop()
    return runs


def test_the_readme_has_python_examples_and_few_exceptions() -> None:
    assert len(BLOCKS) >= 5
    skipped = [b for b in BLOCKS if b.skip]
    assert len(skipped) <= 1, [(b.line, b.skip) for b in skipped]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{b.line}" for b in BLOCKS])
def test_the_readme_block_runs_as_written(block: Block, readme_runs: dict[int, Run]) -> None:
    if block.skip:
        pytest.skip(f"README.md:{block.line} is marked not-run: {block.skip}")
    run = readme_runs[block.index]
    assert run.returncode == 0, f"README.md:{block.line} exited {run.returncode}:\n{run.stderr[-3000:]}"
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    recorded = {a or b for a, b in _NAMES.findall(block.code)}
    if "AuditClient(" in block.code:
        assert recorded, "a block that records events names what it records"
        missing = recorded - set(run.names)
        assert not missing, f"README.md:{block.line}: no event named {sorted(missing)} reached the topic; got {run.names}"
    if "verify_streams" in block.code:
        assert run.topic_events > 0
        assert f"{run.topic_events} events checked, 0 violations" in run.stdout, run.stdout
    if "clickhouse_connect" in block.code:
        assert PROBE_RULE in run.stdout, run.stdout
