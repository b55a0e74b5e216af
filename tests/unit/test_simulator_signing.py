"""The simulator signs its streams with the SDK's checkpoint schedule (producers/_checkpoints.py).

Every event of a signed run is covered by a valid checkpoint (or is a stream's final checkpoint event),
checked with the same verifier ``agentaudit verify --signatures`` uses; an idle stream is signed within
``checkpoint_seconds`` of event time; an unsigned run is byte-identical to before (no checkpoint events).
"""

from __future__ import annotations

import bisect
import itertools

from agentaudit.producers.simulator import AGENT_PATTERNS, SimConfig, Simulator
from agentaudit.schemas import AvroCodec, KeyRing, SigningKey, body_hash, frame_body
from agentaudit.schemas.checkpoints import CHECKPOINT_NAME, SIG_ATTRIBUTE, verify_signed_records

TEAM_GLOBS = list(AGENT_PATTERNS)


def _ring(key: SigningKey, agents: list[str] = TEAM_GLOBS) -> KeyRing:
    return KeyRing.from_document({"keys": [{"id": key.key_id, "public_key": key.public_key,
                                            "principal": "service:simulator", "agents": agents}]})


def _decoded(events) -> list[dict]:
    codec = AvroCodec("action")
    out = []
    for _key, value, _record in events:
        record = codec.decode(value)
        record["event_hash"] = body_hash(frame_body(value))
        out.append(record)
    return out


def test_a_signed_run_is_covered_by_valid_checkpoints_on_every_stream():
    key = SigningKey.generate("simulator")
    sim = Simulator(SimConfig(seed=7, traces=400), signing_key=key, checkpoint_events=200, checkpoint_seconds=10)
    records = _decoded(itertools.chain(sim.events(), sim.tail_events()))
    report = verify_signed_records(records, _ring(key))
    assert report.findings == []
    assert report.streams == 12 and report.tails == 12  # each stream ends in one checkpoint event
    assert report.verified == len(records) - 12 > 10_000
    assert sim.stats.checkpoints == sum(1 for r in records if SIG_ATTRIBUTE in r["attributes"])
    # no stretch of a stream is longer than the schedule allows: 200 events, or signed at the fleet's first
    # event at least 10 s (+ the 0.1 s scan) of event time after the stretch began
    fleet_times = sorted(r["event_time_us"] for r in records)
    for stream in {r["stream_id"] for r in records}:
        rows = [r for r in records if r["stream_id"] == stream]
        signed = [i for i, r in enumerate(rows) if SIG_ATTRIBUTE in r["attributes"]]
        assert max(b - a for a, b in itertools.pairwise([0, *signed])) <= 200
        for previous, i in itertools.pairwise([None, *signed]):
            start = 0 if previous is None else previous + (rows[previous]["name"] == CHECKPOINT_NAME)
            began, signed_at = rows[start]["event_time_us"], rows[i]["event_time_us"]
            due = began + 10_000_000 + 100_000
            assert signed_at <= due or fleet_times[bisect.bisect_left(fleet_times, due)] >= signed_at

def test_an_idle_stream_gets_a_checkpoint_event_within_checkpoint_seconds_of_event_time():
    key = SigningKey.generate("simulator")
    # long think times: streams sit idle between traces, so only checkpoint events can sign their tails
    sim = Simulator(SimConfig(seed=3, traces=60, think_time_s=60), signing_key=key, checkpoint_seconds=5)
    records = _decoded(sim.events())
    points = [r for r in records if r["name"] == CHECKPOINT_NAME]
    assert points and all(r["kind"] == "other" and r["phase"] == "point" for r in points)
    report = verify_signed_records(records, _ring(key))
    # before close (tail_events) only streams active in the run's last 5 s of event time are uncovered
    assert set(report.counts()) == {"unverified"}
    last = records[-1]["event_time_us"]
    for finding in report.findings:
        tail = [r for r in records if r["stream_id"] == finding.stream_id and r["seq"] >= finding.seq]
        assert last - tail[0]["event_time_us"] <= 5_000_000 + 100_000


def test_a_key_not_registered_for_the_fleet_verifies_nothing():
    key = SigningKey.generate("simulator")
    sim = Simulator(SimConfig(seed=7, traces=50), signing_key=key)
    records = _decoded(itertools.chain(sim.events(), sim.tail_events()))
    report = verify_signed_records(records, _ring(key, agents=["billing-*"]))
    assert report.verified == 0 and "not_authorized" in report.counts()


def test_an_unsigned_run_has_no_checkpoints_and_the_same_bytes():
    plain = [v for _, v, _ in Simulator(SimConfig(seed=7, traces=100)).events()]
    again = Simulator(SimConfig(seed=7, traces=100))
    assert [v for _, v, _ in again.events()] == plain
    assert list(again.tail_events()) == [] and again.stats.checkpoints == 0
