#!/usr/bin/env bash
# Stop every node started by .ci/kafka/start.sh: SIGTERM, then SIGKILL after 30 s; remove the run dir.
# Safe to call when nothing runs. AGENTAUDIT_KAFKA_STATE must match the one start.sh used.
# AGENTAUDIT_KAFKA_KEEP=1 keeps the run dir (logs) for inspection.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${AGENTAUDIT_KAFKA_STATE:-$repo/.ci/cache/kafka-run}"

pids=()
for file in "$state"/node*/broker.pid "$state/broker.pid"; do
  [[ -f "$file" ]] || continue
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    echo "kafka: stopping pid $pid" >&2
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid")
  fi
  rm -f "$file"
done
for pid in "${pids[@]}"; do
  for _ in $(seq 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "kafka: pid $pid ignored SIGTERM for 30s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
done
if [[ "${AGENTAUDIT_KAFKA_KEEP:-0}" != 1 ]]; then
  rm -rf "$state"
fi
