"""Read the action topic back and verify every producer stream's hash chain.

    python -m agentaudit.producers.examples.verify --bootstrap 127.0.0.1:9092 [--topic agentaudit.actions]

Each event carries ``stream_id``, ``seq`` and ``prev_hash`` (the SHA-256 of the previous event's Avro
body). Walking a stream in ``seq`` order, a flipped byte breaks the next ``prev_hash``, a dropped
event leaves a seq gap, and a reordered pair breaks both; :func:`agentaudit.schemas.verify_streams`
reports each as a :class:`~agentaudit.schemas.ChainViolation`.

With ``--keys-file`` (the producer keys, ``AGENTAUDIT_KEYS_FILE``) it also verifies each stream's signed
checkpoints and reports rows no valid checkpoint covers (:func:`agentaudit.schemas.checkpoints.verify_signed_records`).
"""

from __future__ import annotations

import argparse
import sys

from agentaudit.infra.kafka import read_all
from agentaudit.schemas import AvroCodec, body_hash, frame_body, verify_streams
from agentaudit.settings import KafkaSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="verify the hash chains of an action topic")
    parser.add_argument("--bootstrap", default=None)
    parser.add_argument("--topic", default=None)
    parser.add_argument("--keys-file", default=None, help="also verify signed checkpoints with these producer keys")
    args = parser.parse_args(argv)
    settings = KafkaSettings(bootstrap_servers=args.bootstrap) if args.bootstrap else KafkaSettings()
    topic = args.topic or settings.topics.actions
    codec = AvroCodec("action")
    events = []
    for message in read_all(settings, topic, timeout=60, idle=2.0):
        value = message.value()
        if value is None:  # a tombstone is no event
            continue
        events.append((codec.decode(value), body_hash(frame_body(value))))
    violations = verify_streams(events)
    streams = {record["stream_id"] for record, _ in events}
    print(f"{len(events)} events in {len(streams)} streams; {len(violations)} violation(s)")
    for violation in violations:
        print(f"  {violation}")
    failed = bool(violations)
    if args.keys_file:
        from agentaudit.schemas import KeyRing
        from agentaudit.schemas.checkpoints import verify_signed_records

        records = []
        for record, digest in events:
            record["event_hash"] = digest
            records.append(record)
        report = verify_signed_records(records, KeyRing.load(args.keys_file))
        print(f"signatures: {report.verified} events verified by a signed checkpoint, {report.tails} final "
              f"checkpoint events, {report.unverified} not verified")
        for finding in report.findings:
            if finding.kind not in ("gap", "reorder", "duplicate", "hash_mismatch", "bad_start"):  # printed above
                print(f"  {finding}")
        failed = failed or not report.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
