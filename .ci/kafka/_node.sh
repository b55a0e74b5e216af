# Shared by start.sh and broker.sh (sourced, not run): launch one node of the cluster in $state and wait for it.
# Needs: $state, $here; reads $state/jars (the jar dir) and $state/heap written by start.sh.

node_jvm() {
  local node="$1"
  jvm=(-Xms128m "-Xmx$(cat "$state/heap")" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
       "-Dlog4j2.configurationFile=$here/log4j2.xml" "-Dkafka.logs.dir=$state/node$node/logs")
}

# How many times node $1 has logged "Kafka Server started" (its server.log survives a restart).
node_starts() {
  local count
  count="$(grep -c "Kafka Server started" "$state/node$1/logs/server.log" 2>/dev/null)" || true
  echo "${count:-0}"
}

# Start node $1 detached from our stdout (so "$(start.sh)" returns); writes $state/node$1/broker.pid.
node_launch() {
  local node="$1" java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
  node_jvm "$node"
  "$java" "${jvm[@]}" -cp "$(cat "$state/jars")/*" kafka.Kafka "$state/node$node/server.properties" \
    </dev/null >>"$state/node$node/logs/broker.out" 2>&1 &
  echo "$!" >"$state/node$node/broker.pid"
}

# Wait until node $1 logs its start number $2 ("Kafka Server started" for the $2-th time); 1 = still running.
node_wait() {
  local node="$1" want="$2" pid deadline=$((SECONDS + ${AGENTAUDIT_KAFKA_START_TIMEOUT:-120}))
  pid="$(cat "$state/node$node/broker.pid")"
  while (($(node_starts "$node") < want)); do
    kill -0 "$pid" 2>/dev/null || { echo "kafka: node $node (pid $pid) exited during start-up" >&2; return 1; }
    ((SECONDS < deadline)) || { echo "kafka: node $node did not start in time" >&2; return 1; }
    sleep 0.5
  done
}

node_running() {
  [[ -f "$state/node$1/broker.pid" ]] && kill -0 "$(cat "$state/node$1/broker.pid")" 2>/dev/null
}
