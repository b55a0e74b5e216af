"""The README's framework snippets (the ```python blocks after ``<!-- framework-snippet: NAME -->``) run as
written, each in its own interpreter with ``AGENTAUDIT_*`` pointing at the real broker (a fresh topic) and
``OPENAI_BASE_URL`` at the fake OpenAI endpoint; the actions they record are read back and checked: kinds,
names, the causal tree, and the tokens the endpoint reported. A snippet that only wires (the OTel one) is
followed by the call an application would make."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agentaudit.settings import KafkaSettings
from tests.child_env import child_env
from tests.fixtures.fake_openai import FakeOpenAI
from tests.framework_support import Stored, assert_one_tree, read_actions

pytestmark = [pytest.mark.integration, pytest.mark.broker]

README = Path(__file__).resolve().parents[2] / "README.md"
_SNIPPET = re.compile(r"<!--\s*framework-snippet:\s*(?P<name>[\w-]+)\s*-->\s*\n```python\n(?P<code>.*?)^```",
                      re.DOTALL | re.MULTILINE)
SNIPPETS = {m.group("name"): m.group("code") for m in _SNIPPET.finditer(README.read_text(encoding="utf-8"))}
# what the application does after the wiring, for snippets that only wire
DRIVERS = {"otel-openai": 'from openai import OpenAI\n'
                         'OpenAI().chat.completions.create(model="gpt-4o-mini", '
                         'messages=[{"role": "user", "content": "Where is order 42?"}])\n'}


def test_each_framework_has_a_snippet_of_at_most_five_lines() -> None:
    assert set(SNIPPETS) == {"openai-agents", "langchain", "otel-openai"}
    assert all(len(code.strip().splitlines()) <= 5 for code in SNIPPETS.values()), SNIPPETS


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_the_framework_snippet_runs_and_records_the_run(
        name: str, fake_openai: FakeOpenAI, kafka_settings: KafkaSettings, topic_factory: Callable[..., str],
        tmp_path: Path) -> None:
    topic = topic_factory(partitions=1)
    script = tmp_path / "snippet.py"
    script.write_text(SNIPPETS[name] + DRIVERS.get(name, ""), encoding="utf-8")
    env = child_env("OPENAI_")
    env.update(AGENTAUDIT_BOOTSTRAP_SERVERS=kafka_settings.bootstrap_servers, AGENTAUDIT_TOPIC_ACTIONS=topic,
               AGENTAUDIT_SPOOL_DIR=str(tmp_path / "spool"), OPENAI_BASE_URL=fake_openai.base_url,
               OPENAI_API_KEY="sk-fake", HOME=str(tmp_path))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    actions = read_actions(kafka_settings, topic)
    root = assert_one_tree(actions)
    chats = [a for a in actions if a["kind"] == "chat"]
    served = fake_openai.served
    assert len(chats) == len(served) >= 1
    assert [(c["input_tokens"], c["output_tokens"]) for c in chats] == [
        (s.reply.input_tokens, s.reply.output_tokens) for s in served]
    assert all(c["model"] == c["name"] == "gpt-4o-mini" and c["input_tokens"] > 0 for c in chats)
    EXPECT[name](root, actions)


def _openai_agents(root: Stored, actions: list[Stored]) -> None:
    (agent,) = [a for a in actions if a["kind"] == "invoke_agent"]
    assert (agent["name"], agent["agent_id"], agent["parent_action_id"]) == ("support", "support", root["action_id"])
    assert all(a["agent_id"] == "support" for a in actions if a is not root)


def _langchain(root: Stored, actions: list[Stored]) -> None:
    assert (root["kind"], root["name"]) == ("invoke_agent", "support")
    by_id = {a["action_id"]: a for a in actions}
    assert all(by_id[c["parent_action_id"]]["name"] == "model" for c in actions if c["kind"] == "chat")


def _otel_openai(root: Stored, actions: list[Stored]) -> None:
    assert [(a["kind"], a["attributes"]["otel.span_name"]) for a in actions] == [("chat", "chat gpt-4o-mini")]


EXPECT = {"openai-agents": _openai_agents, "langchain": _langchain, "otel-openai": _otel_openai}
