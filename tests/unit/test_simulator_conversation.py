"""``agentaudit simulate --mode conversation``: a deterministic log of conversation runs, judged as stored, and
signed streams that verify with the same checker as ``agentaudit verify --signatures``."""

from __future__ import annotations

from collections import Counter

from typer.testing import CliRunner

from agentaudit.cli import app
from agentaudit.producers.simulator import read_log
from agentaudit.producers.simulator.conversation import EXPECTED_RULES, ConversationSource, conversation_runs
from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.rules.harness import replay
from agentaudit.schemas import AvroCodec, KeyRing, SigningKey, body_hash, frame_body
from agentaudit.schemas.checkpoints import CHECKPOINT_NAME, SIG_ATTRIBUTE, verify_signed_records


def _decoded(pairs) -> list[dict]:
    codec = AvroCodec("action")
    out = []
    for _key, value in pairs:
        record = codec.decode(value)
        record["event_hash"] = body_hash(frame_body(value))
        out.append(record)
    return out


def test_the_cli_writes_the_same_log_twice_and_its_breaches_are_found(tmp_path) -> None:
    runner = CliRunner()
    args = ["simulate", "--mode", "conversation", "--traces", "300", "--breach-rate", "0.25", "--seed", "3"]
    first = runner.invoke(app, [*args, "--out", str(tmp_path / "a.aasim")])
    runner.invoke(app, [*args, "--out", str(tmp_path / "b.aasim")])
    assert first.exit_code == 0, first.output
    assert "runs: 300" in first.output and "breaches injected (runs): cost_spike=" in first.output
    assert (tmp_path / "a.aasim").read_bytes() == (tmp_path / "b.aasim").read_bytes()
    records = _decoded(read_log(tmp_path / "a.aasim"))
    corpus = conversation_runs(300, seed=3, breach_rate=0.25)
    assert [r["event_id"] for r in records] == [r["event_id"] for r in corpus.records]
    incidents = replay(RuleEvaluator(load_rule_set(None)), records, batch_size=500)
    for breach in corpus.breaches:
        assert any(i.rule_id == EXPECTED_RULES[breach.kind][0] and breach.event_id in i.event_ids
                   for i in incidents), breach
    nonce = runner.invoke(app, [*args, "--run-nonce", "x1", "--out", str(tmp_path / "c.aasim")])
    assert nonce.exit_code == 0, nonce.output
    other = _decoded(read_log(tmp_path / "c.aasim"))
    assert not {r["event_id"] for r in other} & {r["event_id"] for r in records}
    assert {r["stream_id"].split("/")[0] for r in other} == {"conv-3-x1"}


def test_the_cli_refuses_an_unknown_mode(tmp_path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--mode", "chat", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "expected fleet or conversation" in result.output


def test_signed_conversations_verify_on_every_stream() -> None:
    key = SigningKey.generate("simulator")
    source = ConversationSource(200, seed=1, breach_rate=0.1, signing_key=key, checkpoint_events=100)
    events = list(source.events())
    records = _decoded((k, v) for k, v, _ in events)
    ring = KeyRing.from_document({"keys": [{"id": key.key_id, "public_key": key.public_key,
                                            "principal": "service:simulator", "agents": ["support-*"]}]})
    report = verify_signed_records(records, ring)
    assert report.findings == []
    assert report.streams == 4 and report.tails == 4
    assert report.verified == len(records) - 4  # all but each stream's final checkpoint event
    # the desk is idle between turns: quiet streams get checkpoint events, as the SDK's worker sends them
    assert sum(r["name"] == CHECKPOINT_NAME for r in records) > 4
    assert source.stats.checkpoints == sum(SIG_ATTRIBUTE in r["attributes"] for r in records)
    assert source.stats.traces == 200 and sum(source.breaches.values()) > 10
    # signing adds attributes, not incidents: the pack judges the signed corpus as the unsigned one
    unsigned = conversation_runs(200, seed=1, breach_rate=0.1)
    def found(recs):
        return Counter(i.rule_id for i in replay(RuleEvaluator(load_rule_set(None)), recs, batch_size=1000))
    assert found(records) == found(unsigned.records)


def test_a_signed_clean_corpus_raises_nothing_when_signatures_are_required() -> None:
    """Checkpoint point events (idle streams, tails) are judged too: they once raised KeyError in the signature
    rules (a rule_error incident per rule and hour) instead of closing the stream's uncovered stretch."""
    key = SigningKey.generate("simulator")
    ring = KeyRing.from_document({"keys": [{"id": key.key_id, "public_key": key.public_key,
                                            "principal": "service:simulator", "agents": ["support-*"]}]})
    corpus = conversation_runs(300, seed=8, signing_key=key, checkpoint_seconds=5)
    assert sum(r["name"] == CHECKPOINT_NAME for r in corpus.records) > 50
    assert replay(RuleEvaluator(load_rule_set(None), keyring=ring), corpus.records, batch_size=700) == []
    # and a stream signed by an unregistered key is still caught
    other = conversation_runs(30, seed=8, signing_key=SigningKey.generate("stranger"))
    found = {i.rule_id for i in replay(RuleEvaluator(load_rule_set(None), keyring=ring), other.records)}
    assert "integrity.bad-signature" in found


def test_up_runs_an_endless_conversation_simulator_when_asked(tmp_path) -> None:
    from agentaudit.infra.stack import Stack, StackSettings

    def simulator_argv(**settings) -> list[str]:
        home = tmp_path / str(len(list(tmp_path.iterdir())))
        home.mkdir()
        stack = Stack(StackSettings(home=home, simulate_rate=50, **settings))
        (component,) = [c for c in stack._components() if c.name.startswith("simulator")]
        return component.stop.__self__.argv

    argv = simulator_argv(simulate_mode="conversation", simulate_breach_rate=0.2)
    assert argv[argv.index("--mode") + 1] == "conversation" and argv[argv.index("--breach-rate") + 1] == "0.2"
    assert "--traces" not in argv and "--agents" not in argv
    assert "--mode" not in simulator_argv()
    source = ConversationSource(None, breach_rate=0.5)
    first = [record for _, (_, _, record) in zip(range(3_000), source.events(), strict=False)]
    assert source.stats.traces > 20 and source.breaches  # runs keep coming while read
    assert first[-1]["event_time_us"] >= first[0]["event_time_us"]
