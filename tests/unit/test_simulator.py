"""The fleet simulator: determinism, valid hash chains, causal consistency and the injected failure modes."""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from typing import Any

import pytest
from pydantic import ValidationError

from agentaudit.exceptions import ConfigError
from agentaudit.producers.simulator import (
    DEFAULT_FAULT_RATES,
    FAULT_ATTRIBUTE,
    FAULT_KINDS,
    SimConfig,
    Simulator,
    SimulatorError,
    canonical_digest,
    read_log,
    sessions_for_rate,
)
from agentaudit.producers.simulator._fleet import CONSEQUENTIAL_TOOLS, EGRESS_TOOLS, FORBIDDEN_TOOLS
from agentaudit.schemas import ActionEvent, AvroCodec, body_hash, frame_body, verify_streams

ALL_FAULTS = dict.fromkeys(FAULT_KINDS, 1.0)


def run(**fields: Any) -> tuple[Simulator, list[tuple[bytes, bytes, dict[str, Any]]]]:
    sim = Simulator(SimConfig(**fields))
    return sim, list(sim.events())


def by_trace(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        traces[record["trace_id"]].append(record)
    return traces


def _pack_incidents(records: list[dict[str, Any]], rule_id: str) -> list:
    """Incidents of one rule of the default pack over ``records``, judged as the sink would hand them over."""
    from agentaudit.rules import RuleEvaluator, load_rule_set
    from agentaudit.rules.harness import replay

    codec = AvroCodec("action")
    fed = [{**r, "event_hash": body_hash(frame_body(codec.encode(r))), "_partition": 0, "_offset": i}
           for i, r in enumerate(records)]
    return [i for i in replay(RuleEvaluator(load_rule_set(None)), fed, batch_size=2_000) if i.rule_id == rule_id]


def sha256_file(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def fleet_run():
    """A fleet with four times the default fault rates."""
    return run(seed=21, traces=400, fault_rate=4)


@pytest.fixture(scope="module")
def all_faults():
    """Every failure mode in every trace."""
    return run(seed=8, traces=30, fault_rates=ALL_FAULTS)


class TestDeterminism:
    def test_same_seed_gives_byte_identical_logs(self, tmp_path):
        first, second = tmp_path / "a.aasim", tmp_path / "b.aasim"
        Simulator(SimConfig(seed=11, traces=150, fault_rate=3)).write_log(first)
        Simulator(SimConfig(seed=11, traces=150, fault_rate=3)).write_log(second)
        assert first.stat().st_size > 100_000
        assert sha256_file(first) == sha256_file(second)

    def test_a_simulator_rerun_repeats_itself(self, tmp_path):
        sim = Simulator(SimConfig(seed=5, events=2_000))
        sim.write_log(tmp_path / "a")
        sim.write_log(tmp_path / "b")
        assert sha256_file(tmp_path / "a") == sha256_file(tmp_path / "b")

    def test_different_seeds_differ(self, tmp_path):
        Simulator(SimConfig(seed=1, traces=50)).write_log(tmp_path / "a")
        Simulator(SimConfig(seed=2, traces=50)).write_log(tmp_path / "b")
        assert sha256_file(tmp_path / "a") != sha256_file(tmp_path / "b")
        keys = {k for k, _ in read_log(tmp_path / "a")}
        assert all(k.startswith(b"sim-1/") for k in keys)

    def test_an_event_limit_is_a_prefix_of_a_longer_run(self):
        _, short = run(seed=4, events=700)
        _, long = run(seed=4, events=1_400)
        assert len(short) == 700 and len(long) == 1_400
        assert [v for _, v, _ in short] == [v for _, v, _ in long[:700]]

    def test_wall_clock_keeps_seeded_ids_and_starts_at_now(self):
        now = 1_900_000_000_000_000
        _, virtual = run(seed=9, events=600)
        wall_sim = Simulator(SimConfig(seed=9, events=600, clock="wall"), now_us=lambda: now)
        wall = list(wall_sim.events())
        assert [r["event_id"] for *_, r in wall] == [r["event_id"] for *_, r in virtual]
        assert min(r["event_time_us"] for *_, r in wall) >= now
        assert min(r["event_time_us"] for *_, r in virtual) < now

    def test_duration_bounds_event_time(self):
        sim, events = run(seed=3, duration_s=120)
        start = int(sim.config.start.timestamp() * 1_000_000)
        assert events
        assert max(r["event_time_us"] for *_, r in events) <= start + 120_000_000


class TestLogFormat:
    def test_log_round_trips_keys_and_values(self, tmp_path):
        sim, events = run(seed=6, events=800)
        stats = sim.write_log(tmp_path / "log")
        assert stats.events == 800
        assert list(read_log(tmp_path / "log")) == [(k, v) for k, v, _ in events]

    def test_a_log_needs_a_stop_condition(self, tmp_path):
        with pytest.raises(ConfigError, match="stop condition"):
            Simulator(SimConfig()).write_log(tmp_path / "endless")

    def test_truncated_and_foreign_files_are_refused(self, tmp_path):
        Simulator(SimConfig(seed=1, events=10)).write_log(tmp_path / "log")
        data = (tmp_path / "log").read_bytes()
        (tmp_path / "cut").write_bytes(data[:-7])
        with pytest.raises(SimulatorError, match="truncated"):
            list(read_log(tmp_path / "cut"))
        (tmp_path / "other").write_bytes(b"PK\x03\x04" + data[4:])
        with pytest.raises(SimulatorError, match="not a simulator log"):
            list(read_log(tmp_path / "other"))


class TestEvents:
    def test_every_value_decodes_to_the_yielded_record_and_validates(self, fleet_run):
        sim, events = fleet_run
        codec = AvroCodec("action")
        records, _, failures = codec.decode_batch([v for _, v, _ in events])
        assert not failures
        assert records == [r for *_, r in events]
        assert all(k == r["stream_id"].encode() for k, _, r in events)
        assert {r["stream_id"] for r in records} == {sim.stream_id(a) for a in sim.fleet}
        for record in records[:500]:
            ActionEvent.from_avro(record)

    def test_streams_form_valid_hash_chains(self, fleet_run):
        _, events = fleet_run
        pairs = [(r, body_hash(frame_body(v))) for _, v, r in events]
        assert verify_streams(pairs) == []
        tampered = list(pairs)
        del tampered[len(tampered) // 2]
        assert verify_streams(tampered)

    def test_emission_follows_event_time(self, fleet_run):
        _, events = fleet_run
        times = [r["event_time_us"] for *_, r in events]
        assert times == sorted(times)

    def test_causality_is_consistent(self, fleet_run):
        _, events = fleet_run
        hung = 0
        for trace_id, records in by_trace([r for *_, r in events]).items():
            seen: dict[str, dict[str, Any]] = {}
            open_starts: dict[str, dict[str, Any]] = {}
            roots = [r for r in records if r["parent_action_id"] is None]
            assert {r["action_id"] for r in roots} == {trace_id}
            assert all(r["depth"] == 0 and r["kind"] == "invoke_agent" for r in roots)
            assert len({r["tenant"] for r in records}) == 1 and len({r["run_id"] for r in records}) == 1
            for r in records:
                parent = r["parent_action_id"]
                if parent is not None:
                    assert parent in seen, f"parent {parent} of {r['action_id']} not emitted before it"
                    assert r["depth"] == seen[parent]["depth"] + 1
                for link in r["links"]:
                    assert link in seen
                if r["phase"] == "start":
                    assert r["action_id"] not in seen
                    open_starts[r["action_id"]] = r
                elif r["phase"] == "end":
                    start = open_starts.pop(r["action_id"])
                    assert r["event_id"] != start["event_id"]
                    assert r["start_time_us"] == start["start_time_us"]
                    assert r["latency_us"] == r["end_time_us"] - r["start_time_us"] >= 0
                    assert (r["kind"], r["name"], r["depth"]) == (start["kind"], start["name"], start["depth"])
                else:
                    assert r["end_time_us"] == r["start_time_us"]
                seen.setdefault(r["action_id"], r)
            for start in open_starts.values():
                assert start["attributes"].get(FAULT_ATTRIBUTE) == "hung", f"unended {start['kind']} {start['name']}"
                hung += 1
        assert hung > 0

    def test_tool_inputs_are_digests_of_canonical_arguments(self, fleet_run):
        _, events = fleet_run
        tools = [r for *_, r in events if r["kind"] == "execute_tool" and r["phase"] == "start"]
        assert tools and all(len(r["input_digest"]) == 64 for r in tools)
        assert canonical_digest({"b": 1, "a": "é"}) == hashlib.sha256('{"a":"é","b":1}'.encode()).hexdigest()

    def test_model_calls_carry_tokens_and_priced_cost(self, fleet_run):
        _, events = fleet_run
        ends = [r for *_, r in events if r["kind"] == "chat" and r["phase"] == "end"]
        assert ends
        for r in ends:
            assert r["model"] and r["input_tokens"] > 0 and r["output_tokens"] > 0
            assert 0 < r["cost_usd"] < 10

    def test_consequential_tools_follow_a_named_human_approval_of_the_same_arguments(self, fleet_run):
        _, events = fleet_run
        records = [r for *_, r in events]
        approvals = {r["action_id"]: r for r in records if r["kind"] == "approval"}
        calls = [r for r in records if r["kind"] == "execute_tool" and r["phase"] == "start"
                 and r["name"] in CONSEQUENTIAL_TOOLS and FAULT_ATTRIBUTE not in r["attributes"]]
        assert len(calls) > 10
        for call in calls:
            (link,) = call["links"]
            approval = approvals[link]
            assert approval["actor"]["type"] == "human" and approval["actor"]["id"]
            assert approval["parent_action_id"] == call["parent_action_id"]
            assert approval["attributes"]["approval.args_hash"] == call["input_digest"]
            assert approval["event_time_us"] < call["event_time_us"]
            for name in ("args_hash", "approval_id"):  # the SDK's binding, which the rule pack checks
                assert approval["attributes"][name] == call["attributes"][name]
            assert call["attributes"]["args_hash"] == call["input_digest"]
            assert int(approval["attributes"]["expires_at_us"]) > call["event_time_us"]

    def test_the_pack_finds_approved_calls_bound_and_unapproved_faults_unbound(self, all_faults):
        rule_id = "security.unapproved-consequential-action"
        normal = [r for *_, r in run(seed=17, traces=150, fault_rate=0)[1]]
        assert sum(1 for r in normal if r["kind"] == "approval") > 10
        assert _pack_incidents(normal, rule_id) == []
        faulty = _pack_incidents([r for *_, r in all_faults[1]], rule_id)
        assert sum(i.count for i in faulty) >= 30

    def test_handoffs_hand_work_to_another_agent(self, fleet_run):
        _, events = fleet_run
        records = [r for *_, r in events]
        children = defaultdict(list)
        for r in records:
            children[r["parent_action_id"]].append(r)
        handoffs = [r for r in records if r["kind"] == "handoff"]
        assert handoffs
        for handoff in handoffs:
            (invocation,) = [c for c in children[handoff["action_id"]] if c["phase"] == "start"]
            assert invocation["kind"] == "invoke_agent"
            assert invocation["agent_id"] == handoff["name"] == handoff["attributes"]["handoff.to"]


class TestFaults:
    def test_every_mode_is_present_in_every_trace_at_rate_one(self, all_faults):
        sim, events = all_faults
        assert sim.stats.traces == 30
        assert sim.stats.faults == dict.fromkeys(FAULT_KINDS, 30)
        tags = defaultdict(set)
        for *_, r in events:
            if FAULT_ATTRIBUTE in r["attributes"]:
                tags[r["trace_id"]].add(r["attributes"][FAULT_ATTRIBUTE])
        assert len(tags) == 30 and all(kinds == set(FAULT_KINDS) for kinds in tags.values())

    def test_each_mode_looks_like_what_it_is(self, all_faults):
        _, events = all_faults
        for records in by_trace([r for *_, r in events]).values():
            faulty = defaultdict(list)
            for r in records:
                if FAULT_ATTRIBUTE in r["attributes"]:
                    faulty[r["attributes"][FAULT_ATTRIBUTE]].append(r)
            loop_calls = Counter((r["name"], r["input_digest"]) for r in faulty["loop"] if r["phase"] == "start")
            assert max(loop_calls.values()) >= 8
            budget = [r for r in faulty["budget"] if r["phase"] == "end"]
            assert sum(r["cost_usd"] for r in budget) > 5 and all(r["input_tokens"] >= 200_000 for r in budget)
            assert all(r["name"] in FORBIDDEN_TOOLS for r in faulty["forbidden"])
            unapproved = [r for r in faulty["unapproved"] if r["phase"] == "start"]
            assert unapproved and all(r["name"] in CONSEQUENTIAL_TOOLS and not r["links"] for r in unapproved)
            assert max(r["latency_us"] or 0 for r in faulty["latency"]) >= 30_000_000
            errors = [r for r in faulty["error_burst"] if r["status"] == "error"]
            assert len(errors) >= 10 and errors[-1]["event_time_us"] - errors[0]["event_time_us"] < 60_000_000
            assert max(r["depth"] for r in faulty["deep"]) >= 12
            fan = Counter(r["parent_action_id"] for r in faulty["fanout"] if r["phase"] == "start")
            assert max(fan.values()) >= 25
            hung = list(faulty["hung"])
            assert len(hung) == 1 and hung[0]["phase"] == "start"

    def test_rates_are_honoured_roughly(self):
        sim, _ = run(seed=13, traces=3_000, fault_rate=4)
        for kind, count in sim.stats.faults.items():
            p = min(1.0, DEFAULT_FAULT_RATES[kind] * 4)
            expected = 3_000 * p
            assert abs(count - expected) <= 4 * math.sqrt(3_000 * p * (1 - p)) + 1, (kind, count, expected)

    def test_per_mode_rate_overrides_and_zero_multiplier(self):
        sim, _ = run(seed=13, traces=400, fault_rates={"loop": 0.5}, fault_rate=1)
        assert 150 <= sim.stats.faults["loop"] <= 250
        assert sim.stats.faults["deep"] < 20

    def test_normal_traffic_stays_clear_of_the_failure_patterns(self):
        _, events = run(seed=17, traces=800, fault_rate=0)
        records = [r for *_, r in events]
        assert not any(FAULT_ATTRIBUTE in r["attributes"] for r in records)
        assert max(r["depth"] for r in records) <= 6
        assert not any(r["name"] in FORBIDDEN_TOOLS for r in records)
        for records_of_trace in by_trace(records).values():
            repeats = Counter((r["name"], r["input_digest"]) for r in records_of_trace
                              if r["kind"] == "execute_tool" and r["phase"] == "start")
            assert max(repeats.values(), default=0) < 4
            fan = Counter(r["parent_action_id"] for r in records_of_trace if r["phase"] in ("start", "point"))
            assert max(fan.values()) < 20
            assert sum(r["cost_usd"] for r in records_of_trace) < 2
            tools = [r["name"] for r in records_of_trace if r["kind"] == "execute_tool" and r["phase"] == "start"]
            if "secrets.read" in tools:
                assert not EGRESS_TOOLS & set(tools[tools.index("secrets.read"):]), "secret then egress"
            root_end = [r for r in records_of_trace if r["depth"] == 0 and r["phase"] == "end"]
            assert len(root_end) == 1
        assert sum(1 for r in records if r["name"] == "secrets.read") > 5


class TestConfig:
    def test_unknown_modes_and_bad_rates_are_refused(self):
        with pytest.raises(ValidationError, match="unknown failure mode"):
            SimConfig(fault_rates={"meteor": 0.1})
        with pytest.raises(ValidationError, match="probabilities"):
            SimConfig(fault_rates={"loop": 1.5})

    def test_fleet_spans_teams_and_tenants(self):
        sim = Simulator(SimConfig(agents=12, tenants=("acme", "globex", "initech")))
        assert len({a.agent_id for a in sim.fleet}) == 12
        assert {a.team for a in sim.fleet} == {"payments", "support", "research", "infra", "growth"}
        assert {a.tenant for a in sim.fleet} == {"acme", "globex", "initech"}

    def test_sessions_for_rate_scales_with_the_rate(self):
        config = SimConfig(seed=2)
        low, high = sessions_for_rate(config, 10), sessions_for_rate(config, 2_000)
        assert low >= 1 and high > low * 10


def test_public_api_is_complete():
    import types

    import agentaudit.producers.simulator as package

    exported = set(package.__all__)
    assert all(hasattr(package, name) for name in exported)
    public = {name for name, value in vars(package).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert public - exported == set()
