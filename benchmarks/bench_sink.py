"""Sink throughput: events/s from a pre-loaded embedded tansu topic into a real ``agentaudit store``.

Each run pre-loads N action events of a seeded simulated fleet (keyed by stream id, 3 partitions,
event time moving forward as in production), then times the sink
draining them in batches: decode + dead letters + Arrow + tokened insert + rules + incidents +
commit. The baseline, measured in the same run on the same topic, is a raw loop that only
consumes and decodes (``consume_batch`` + ``decode_batch``): the sink cannot beat it, and the
ratio says what storing and judging cost. N is a multiple of the batch size so that no timed
batch waits out the batch timeout. ``python -m benchmarks sink`` (``AGENTAUDIT_BENCH_SINK_EVENTS``
sets N, default 100000).

Store-side digests (issue 12) are measured the same way: the rule pack's sink with digests off,
then on (leaf per row, signed digest per partition range, into ``action_digests`` and the digest
topic), back to back on the same topic; the goal is a ratio on/off of at least 0.8.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.infra.kafka import KafkaConsumer
from agentaudit.rules.builtin import BuiltinEvaluator
from agentaudit.rules.engine import BaseEvaluator
from agentaudit.schemas import AvroCodec
from agentaudit.settings import KafkaSettings, StoreSettings
from benchmarks._stack import FAST_GROUP, embedded_stack, produce, simulated

BATCH_SIZE = 10_000
DIGEST_ROUNDS = 2


def _drain(kafka: KafkaSettings, store: StoreSettings, evaluator: BaseEvaluator, group: str, total: int,
           *, digests: bool = False, key: Path | None = None) -> float:
    settings = SinkSettings(group=group, batch_size=BATCH_SIZE, batch_timeout_ms=1000,
                            session_timeout_ms=6000, heartbeat_interval_ms=1000, digests=digests,
                            **({"digest_key": key} if key is not None else {}))
    with Sink(kafka, store, settings, evaluator) as sink:
        consumed = 0
        while consumed == 0:  # group join and first fetch are not throughput
            consumed = sink.run_once().consumed
        started = time.perf_counter()
        timed = 0
        while consumed < total:
            result = sink.run_once()
            consumed += result.consumed
            timed += result.consumed
        return timed / (time.perf_counter() - started)


def _consume_decode(kafka: KafkaSettings, group: str, total: int) -> float:
    """The raw loop: consume a batch and decode it, nothing else (first batch untimed, as in :func:`_drain`)."""
    codec = AvroCodec("action")
    with KafkaConsumer(kafka, group, FAST_GROUP) as consumer:
        consumer.subscribe([kafka.topics.actions])
        consumed = 0
        while consumed == 0:
            batch = consumer.consume_batch(BATCH_SIZE, timeout=1.0)
            codec.decode_batch([m.value() for m in batch])
            consumed = len(batch)
        started = time.perf_counter()
        timed = 0
        while consumed < total:
            batch = consumer.consume_batch(BATCH_SIZE, timeout=1.0)
            codec.decode_batch([m.value() for m in batch])
            consumed += len(batch)
            timed += len(batch)
        return timed / (time.perf_counter() - started)


def _digest_alone(events: list[bytes], codec: AvroCodec, decode_rate: float) -> dict:
    """What digests add per event, without broker or store: leaf, root, signature, Arrow block and JSON."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agentaudit.consumers.digests import DigestChain, DigestSigner, digests_table

    records, _, _ = codec.decode_batch(events)
    for offset, record in enumerate(records):
        record.update(event_hash="0" * 64, _partition=offset % 3, _offset=offset)
    chain = DigestChain(DigestSigner(Ed25519PrivateKey.generate()), "agentaudit.actions")
    digests_table(chain.build(records[:10]))  # first use loads pyarrow's time zone data: not per batch
    started = time.perf_counter()
    for first in range(0, len(records), BATCH_SIZE):
        built = chain.build(records[first:first + BATCH_SIZE])
        digests_table(built)
        for digest in built:
            digest.to_json()
    rate = len(records) / (time.perf_counter() - started)
    return {"name": f"digests alone events/s (leaf+root+sign+Arrow+JSON, batch {BATCH_SIZE})", "value": rate,
            "unit": "events/s", "baseline": decode_rate, "baseline_name": "Avro decode alone (no broker)",
            "ratio": rate / decode_rate, "goal": None}


def run() -> list[dict]:
    total = int(os.environ.get("AGENTAUDIT_BENCH_SINK_EVENTS", "100000"))
    total = max(BATCH_SIZE * 2, total - total % BATCH_SIZE)
    # The fleet the rule pack is written for (model and tool calls, loops, approvals, failures), keyed by
    # stream id as the SDK does; synthetic streams far apart in event time would make every batch
    # reopen closed windows, which production traffic does not do.
    messages = simulated(total)
    events = [data for _, data in messages]
    codec = AvroCodec("action")
    started = time.perf_counter()
    codec.decode_batch(events)
    decode_rate = len(events) / (time.perf_counter() - started)

    rows: list[dict] = [_digest_alone(events, codec, decode_rate)]
    with embedded_stack(partitions=3) as stack:
        kafka, store = stack.kafka, stack.store
        produce(kafka, messages)
        evaluators: list[tuple[str, BaseEvaluator]] = [
            ("built-in rules", BuiltinEvaluator(forbidden_tools=["shell.exec"], cost_threshold_usd=1.0))]
        try:
            from agentaudit.rules import load_evaluator

            evaluators.append(("rule pack", load_evaluator()))
        except ImportError:
            pass
        raw_rate = _consume_decode(kafka, "bench-raw", len(events))
        rows.append({"name": f"raw consume+decode events/s (batch {BATCH_SIZE})", "value": raw_rate,
                     "unit": "events/s", "baseline": decode_rate, "baseline_name": "Avro decode alone (no broker)",
                     "ratio": raw_rate / decode_rate, "goal": None})
        for label, evaluator in evaluators:
            rate = _drain(kafka, store, evaluator, f"bench-{label.replace(' ', '-')}", len(events))
            rows.append({"name": f"sink events/s ({label}, batch {BATCH_SIZE})", "value": rate,
                         "unit": "events/s", "baseline": raw_rate, "baseline_name": "raw consume+decode, same run",
                         "ratio": rate / raw_rate, "goal": ">= 50000 per process, ratio >= 0.5"})
        # Digests off then on, each with a fresh rule pack, back to back (same topic, same store).
        from agentaudit.rules import load_evaluator

        # Alternated twice and the best of each kept: on a shared machine, other load only slows a run down.
        offs, ons = [], []
        with tempfile.TemporaryDirectory() as keys:
            for round_ in range(DIGEST_ROUNDS):
                offs.append(_drain(kafka, store, load_evaluator(), f"bench-digests-off-{round_}", len(events)))
                ons.append(_drain(kafka, store, load_evaluator(), f"bench-digests-on-{round_}", len(events),
                                  digests=True, key=Path(keys) / "sink-digest.key"))
        off, on = max(offs), max(ons)
        rows.append({"name": f"sink events/s (rule pack, digests on, batch {BATCH_SIZE}, best of {DIGEST_ROUNDS})",
                     "value": on, "unit": "events/s", "baseline": off,
                     "baseline_name": "same sink, digests off, same run", "ratio": on / off, "goal": "ratio >= 0.8"})
    return rows


if __name__ == "__main__":
    for row in run():
        ratio = f" ratio {row['ratio']:.2f}" if row["ratio"] is not None else ""
        print(f"{row['name']}: {row['value']:,.0f} {row['unit']} (baseline {row['baseline_name']}: "
              f"{row['baseline']:,.0f}){ratio}")
