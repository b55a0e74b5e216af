#!/usr/bin/env bash
# One node of the cluster started by .ci/kafka/start.sh, for fault tests:
#   broker.sh kill N    SIGKILL node N (no clean shutdown), wait until it is gone
#   broker.sh start N   start node N again with its config and data; returns once it logs "started"
#   broker.sh pid N     its pid (exit 1 when it is not running)
#   broker.sh count     how many nodes the cluster has
# AGENTAUDIT_KAFKA_STATE must match the one start.sh used.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${AGENTAUDIT_KAFKA_STATE:-$repo/.ci/cache/kafka-run}"
# shellcheck source=_node.sh
source "$here/_node.sh"

usage() { echo "usage: broker.sh kill|start|pid N | count" >&2; exit 2; }
[[ -f "$state/brokers" ]] || { echo "kafka: no cluster in $state (start.sh first)" >&2; exit 1; }
action="${1:-}"
if [[ "$action" == count ]]; then cat "$state/brokers"; exit 0; fi
node="${2:-}"
[[ "$node" =~ ^[0-9]+$ && -d "$state/node$node" ]] || usage

case "$action" in
  kill)
    if node_running "$node"; then
      pid="$(cat "$state/node$node/broker.pid")"
      kill -KILL "$pid"
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
      echo "kafka: node $node (pid $pid) killed" >&2
    fi
    ;;
  start)
    node_running "$node" && { echo "kafka: node $node is running" >&2; exit 0; }
    before="$(node_starts "$node")"
    node_launch "$node"
    node_wait "$node" $((before + 1))
    echo "kafka: node $node started again (pid $(cat "$state/node$node/broker.pid"))" >&2
    ;;
  pid)
    node_running "$node" || exit 1
    cat "$state/node$node/broker.pid"
    ;;
  *) usage ;;
esac
