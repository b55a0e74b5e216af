"""The rule test harness: runs fixture event streams through rules and checks the incidents (Falco-style).

A fixture file (YAML) holds one or more fixtures::

    fixtures:
      - name: a forbidden tool fires once per agent and hour
        rules: [forbidden-tool]            # only these rules' incidents are compared (default: those expected)
        events:
          - {t: 0, kind: execute_tool, name: shell.exec, phase: start}
          - {t: 5, kind: execute_tool, name: shell.exec, phase: start, repeat: 3, every: 1s}
        expect:
          - {rule: forbidden-tool, key: agent-1, count: 4}

Events need only the fields that matter: the rest get defaults (tenant ``acme``, agent ``agent-1``,
run ``run-1``, trace ``trace-1``). ``t`` is seconds (or a duration like ``5m``) after a fixed
base time. Each producer stream is numbered and hash-linked with the real ``StreamChain``;
``drop: true`` seals an event and then loses it (a gap), ``tamper: {field: value}`` changes it
after sealing (a hash-chain break). ``events_file: x.jsonl`` reads full records, one per line.

Signed streams: ``keys: [{id: bot-1, agents: [agent-1], tenant: acme, revoked_at: 60}]`` registers
fixture keys (each derived from its id, so fixtures are reproducible; ``revoked_at`` in seconds like
``t``) and makes the evaluator require signatures; ``sign: bot-1`` makes an event a checkpoint signed
by that key (a key id not under ``keys`` signs as an unregistered key).
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agentaudit.rules._compile import RuleSet
from agentaudit.rules._spec import parse_duration
from agentaudit.rules._yaml import YamlError, load_yaml, read_yaml_text
from agentaudit.rules.evaluator import DEFAULT_PACK, RuleEvaluator, load_rule_set
from agentaudit.rules.exceptions import RuleError
from agentaudit.schemas import AvroCodec, Incident, KeyRing, SigningKey, StreamChain, body_hash, frame_body
from agentaudit.schemas.checkpoints import checkpoint_attributes

__all__ = ["BASE_TIME_US", "Fixture", "FixtureResult", "build_events", "fixture_key", "fixture_keyring", "load_fixtures",
           "run_fixture", "run_fixtures"]

BASE_TIME_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
_NS = uuid.UUID("6f1c3a52-6b0e-4c49-9a35-3f9e7c1d2b10")
_SHORTHAND = {"t", "actor_type", "actor_id", "repeat", "every", "drop", "tamper", "start", "sign"}


@dataclass
class Fixture:
    name: str
    file: str
    line: int
    events: list[dict[str, Any]]
    expect: list[dict[str, Any]]
    rules: list[str]
    keys: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FixtureResult:
    fixture: Fixture
    problems: list[str] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _time(value: Any, where: str) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value * 1_000_000)
    us = parse_duration(value)
    if us is None:
        raise RuleError(f"bad time {value!r} in {where}; use seconds or a duration like 5m")
    return us


def fixture_key(key_id: str) -> SigningKey:
    """The fixture key named ``key_id``: derived from the id, never a secret."""
    seed = hashlib.sha256(b"agentaudit-fixture-key/" + key_id.encode()).digest()
    return SigningKey(key_id, Ed25519PrivateKey.from_private_bytes(seed))


def fixture_keyring(keys: Sequence[dict[str, Any]], name: str) -> KeyRing:
    """The key ring a fixture's ``keys`` register."""
    entries = []
    for item in keys:
        entry = {"id": item["id"], "public_key": fixture_key(item["id"]).public_key,
                 "principal": item.get("principal", f"agent:{item['id']}"), "tenant": item.get("tenant", "acme"),
                 "agents": item.get("agents", ["*"])}
        if "revoked_at" in item:
            entry["revoked_at"] = _utc(BASE_TIME_US + _time(item["revoked_at"], name))
        entries.append(entry)
    return KeyRing.from_document({"keys": entries}, source=f"fixture {name!r}")


def _utc(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC).isoformat()


def build_events(raw_events: Sequence[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Complete, seal and hash fixture events into records as the sink hands them to an evaluator."""
    codec = AvroCodec("action")
    chains: dict[str, StreamChain] = {}
    records: list[dict[str, Any]] = []
    index = 0
    for raw in raw_events:
        repeat = int(raw.get("repeat", 1))
        every = _time(raw.get("every", 1), name) if repeat > 1 else 0
        for n in range(repeat):
            index += 1
            t = BASE_TIME_US + _time(raw.get("t", 0), name) + n * every
            rec = _complete(raw, t, f"{name}/{index}")
            if "{n}" in json.dumps(raw):
                rec = json.loads(json.dumps(rec).replace("{n}", str(n)))
            tamper = raw.get("tamper")
            if "seq" in raw:
                data = codec.encode(rec)
            else:
                chain = chains.setdefault(rec["stream_id"], StreamChain(rec["stream_id"]))
                if raw.get("sign"):
                    rec["attributes"] = {**rec["attributes"], **checkpoint_attributes(
                        fixture_key(str(raw["sign"])), tenant=rec["tenant"], agent=rec["agent_id"],
                        stream_id=rec["stream_id"], seq=chain.seq, prev_hash=chain.prev_hash)}
                data = chain.seal(rec, codec)
            if tamper:
                rec.update(tamper)
                data = codec.encode(rec)
            rec["event_hash"] = body_hash(frame_body(data))
            rec["_partition"] = 0
            rec["_offset"] = len(records)
            if not raw.get("drop"):
                records.append(rec)
    return records


def _complete(raw: dict[str, Any], t: int, seed: str) -> dict[str, Any]:
    agent = raw.get("agent_id", "agent-1")
    tenant = raw.get("tenant", "acme")
    phase = raw.get("phase", "point")
    latency = raw.get("latency_us")
    start = t - latency if phase == "end" and latency else (BASE_TIME_US + _time(raw["start"], seed) if "start" in raw else t)
    rec: dict[str, Any] = {
        "event_id": str(uuid.uuid5(_NS, seed)), "tenant": tenant, "agent_id": agent, "agent_version": "",
        "run_id": "run-1", "trace_id": "trace-1", "action_id": str(uuid.uuid5(_NS, seed + "/action")),
        "parent_action_id": None, "links": [], "depth": 0, "stream_id": f"{tenant}/{agent}", "seq": 0,
        "prev_hash": "", "kind": "other", "name": "", "phase": phase, "status": "unset", "error_type": None,
        "error_message": None, "actor": {"type": raw.get("actor_type", "agent"), "id": raw.get("actor_id", agent)},
        "model": None, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "latency_us": None,
        "start_time_us": start, "end_time_us": t if phase == "end" else None, "event_time_us": t,
        "input_digest": None, "output_digest": None, "input_body": None, "output_body": None, "payload_bytes": 0,
        "attributes": {}, "environment": "",
    }
    rec.update({key: value for key, value in raw.items() if key not in _SHORTHAND})
    rec["cost_usd"] = float(rec["cost_usd"])
    return rec


def load_fixtures(directory: str | Path) -> list[Fixture]:
    """Every fixture in the *.yaml/*.yml files of ``directory`` (JSONL streams via ``events_file``)."""
    root = Path(directory)
    fixtures: list[Fixture] = []
    files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml")) if root.is_dir() else [root]
    for path in files:
        try:
            doc = load_yaml(read_yaml_text(path))
        except YamlError as exc:
            raise RuleError(f"fixture file: {exc}", file=str(path), line=exc.line) from exc
        for entry in (doc or {}).get("fixtures", []):
            events = list(entry.get("events") or [])
            if "events_file" in entry:
                lines = (path.parent / entry["events_file"]).read_text(encoding="utf-8").splitlines()
                events += [json.loads(line) for line in lines if line.strip()]
            expect = list(entry.get("expect") or [])
            rules = list(entry.get("rules") or sorted({e["rule"] for e in expect}))
            if not rules:
                raise RuleError("a fixture names the rules it tests (rules: [...]) or expects incidents",
                                file=str(path), line=entry.line)
            fixtures.append(Fixture(str(entry.get("name", f"fixture at line {entry.line}")), str(path), entry.line,
                                    events, expect, rules, list(entry.get("keys") or [])))
    return fixtures


def run_fixture(rule_set: RuleSet, fixture: Fixture, *, batch_size: int | None = None,
                shuffle_seed: int | None = None) -> FixtureResult:
    """Run one fixture; ``shuffle_seed`` interleaves streams at random (each stream keeps its order)."""
    result = FixtureResult(fixture)
    known = {rule.id for rule in rule_set.rules}
    for rule_id in fixture.rules:
        if rule_id not in known:
            result.problems.append(f"rule {rule_id!r} is not in the rule set")
    try:
        records = build_events(fixture.events, fixture.name)
    except Exception as exc:  # noqa: BLE001 - a broken fixture is a failed fixture, reported as such
        result.problems.append(f"cannot build events: {exc}")
        return result
    if shuffle_seed is not None:
        records = interleave(records, random.Random(shuffle_seed))
    evaluator = RuleEvaluator(rule_set, keyring=fixture_keyring(fixture.keys, fixture.name) if fixture.keys else None)
    incidents = replay(evaluator, records, batch_size=batch_size)
    result.incidents = [i for i in incidents if i.rule_id in fixture.rules]
    unmatched = list(result.incidents)
    for expected in fixture.expect:
        match = next((i for i in unmatched if _matches(i, expected)), None)
        if match is None:
            got = [(i.rule_id, i.key, i.count) for i in result.incidents if i.rule_id == expected.get("rule")]
            result.problems.append(f"expected incident {dict(expected)} not found; got {got}")
        else:
            unmatched.remove(match)
    for incident in unmatched:
        result.problems.append(f"unexpected incident {incident.rule_id} key={incident.key!r} count={incident.count}: "
                               f"{incident.summary}")
    return result


def replay(evaluator: RuleEvaluator, records: Sequence[dict[str, Any]], *, batch_size: int | None = None) -> list[Incident]:
    """Feed records in batches, close everything, and return the final version of each incident, sorted by id."""
    final: dict[str, Incident] = {}
    size = batch_size or max(len(records), 1)
    for start in range(0, len(records), size):
        for incident in evaluator.evaluate(records[start:start + size]):
            final[incident.incident_id] = incident
    for incident in evaluator.flush():
        final[incident.incident_id] = incident
    return [final[k] for k in sorted(final)]


def interleave(records: Sequence[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """A random merge of the per-stream sequences: what a consumer may see from several partitions."""
    streams: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        streams.setdefault(record["stream_id"], []).append(record)
    queues = [list(reversed(s)) for s in streams.values()]
    out: list[dict[str, Any]] = []
    while queues:
        queue = rng.choice(queues)
        out.append(queue.pop())
        if not queue:
            queues.remove(queue)
    return out


def _matches(incident: Incident, expected: dict[str, Any]) -> bool:
    if incident.rule_id != expected.get("rule"):
        return False
    if "key" in expected and incident.key != str(expected["key"]):
        return False
    return "count" not in expected or incident.count == int(expected["count"])


def run_fixtures(rule_paths: str | Sequence[str] | None = None, fixture_dir: str | Path | None = None,
                 **kwargs: Any) -> list[FixtureResult]:
    """Run every fixture in ``fixture_dir`` (default: the pack's) against the rules (default: the pack)."""
    rule_set = load_rule_set(rule_paths)
    directory = Path(fixture_dir) if fixture_dir else DEFAULT_PACK / "fixtures"
    return [run_fixture(rule_set, fixture, **kwargs) for fixture in load_fixtures(directory)]
