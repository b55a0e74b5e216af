#!/usr/bin/env bash
# Start Apache Kafka in KRaft mode on 127.0.0.1: one node, or a cluster of N combined broker+controller
# nodes (AGENTAUDIT_KAFKA_BROKERS=N; N controller voters, so 3 survive the loss of one).
#
# Prints ONLY the PLAINTEXT bootstrap address(es) on stdout (progress goes to stderr), so:
#   export AGENTAUDIT_TEST_BOOTSTRAP="$(bash .ci/kafka/start.sh)"
#   .venv/bin/pytest -m broker
#   bash .ci/kafka/stop.sh
#
# On a cluster every address is comma-separated (all nodes), and the broker defaults are the production
# ones: default.replication.factor=min(3,N), min.insync.replicas=2 (N>=3), internal topics RF min(3,N).
# Per node: $state/node<i>/{server.properties,data,logs,broker.pid}; broker.sh kills/restarts one node.
#
# Two client listeners per node, both on loopback:
#   PLAINTEXT       unauthenticated; User:ANONYMOUS is a super user, so the broker tier and hand runs
#                   work as before. A CI convenience only: compose has no such listener.
#   SASL_PLAINTEXT  SCRAM-SHA-512 (users created at format time with --add-scram) and PLAIN (static JAAS),
#                   with the KRaft StandardAuthorizer: only `admin` is a super user, every other user
#                   gets what ACLs grant (allow.everyone.if.no.acl.found=false).
#   SASL_SSL        the same over TLS, with a throwaway CA ($state/tls/ca.pem) and a certificate for the IP
#                   127.0.0.1; only when $PYTHON can import `cryptography`.
# Users: admin agent sink rules dashboard operator, each with a random password per start. Their
# names, passwords and the SASL address are in $state/sasl.json (mode 0600); the address also in
# $state/sasl_bootstrap. The tests apply agentaudit's ACLs (infra/kafka/acls.py) themselves as admin.
#
# Environment (all optional):
#   AGENTAUDIT_KAFKA_VERSION  Kafka version from Maven Central (default 4.4.0)
#   AGENTAUDIT_KAFKA_CACHE    where jar sets are kept (default ~/.cache/agentaudit)
#   AGENTAUDIT_KAFKA_STATE    run dir: config, data, logs, pids (default .ci/cache/kafka-run)
#   AGENTAUDIT_KAFKA_BROKERS  number of nodes (default 1)
#   AGENTAUDIT_KAFKA_HEAP     JVM max heap per node (default 512m)
#   PYTHON                    interpreter used for the readiness probe (default python3);
#                             with confluent_kafka importable it also checks a metadata request
# If a cluster started by this script is still running, its address is printed again.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
version="${AGENTAUDIT_KAFKA_VERSION:-4.4.0}"
cache_root="${AGENTAUDIT_KAFKA_CACHE:-$HOME/.cache/agentaudit}"
jars="$cache_root/kafka-$version"
state="${AGENTAUDIT_KAFKA_STATE:-$repo/.ci/cache/kafka-run}"
heap="${AGENTAUDIT_KAFKA_HEAP:-512m}"
nodes="${AGENTAUDIT_KAFKA_BROKERS:-1}"
[[ "$nodes" =~ ^[1-9][0-9]?$ ]] || { echo "kafka: AGENTAUDIT_KAFKA_BROKERS must be 1..99, not $nodes" >&2; exit 1; }
python="${PYTHON:-python3}"
java="${JAVA_HOME:+$JAVA_HOME/bin/}java"

log() { echo "kafka: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# shellcheck source=_node.sh
source "$here/_node.sh"
if [[ -f "$state/bootstrap" ]] && node_running 1; then
  log "already running (node 1 pid $(cat "$state/node1/broker.pid")); stop it with: bash .ci/kafka/stop.sh"
  cat "$state/bootstrap"
  exit 0
fi

# 1. Jars: resolved once per version with Maven (downloads cached in ~/.m2 as well).
if [[ ! -f "$jars/.complete" ]]; then
  command -v mvn >/dev/null || die "mvn not found; install Maven 3.8+ (apt-get install maven)"
  log "fetching Apache Kafka $version and its runtime dependencies into $jars"
  t0=$SECONDS
  rm -rf "$jars.partial"
  mvn -B -q -Dstyle.color=never -f "$here/pom.xml" -Dkafka.version="$version" \
    dependency:copy-dependencies -DoutputDirectory="$jars.partial" >&2 \
    || die "mvn could not resolve org.apache.kafka:kafka_2.13:$version (see the Maven output above)"
  touch "$jars.partial/.complete"
  rm -rf "$jars" && mv "$jars.partial" "$jars"
  log "fetched $(ls "$jars"/*.jar | wc -l) jars in $((SECONDS - t0))s"
fi

# 2. Fresh run dir (private: it holds passwords), three free loopback ports (bind port 0, read what
#    the OS gave) and a random password per SASL user.
rm -rf "$state"
mkdir -p "$state/logs"
chmod 700 "$state"
echo "$jars" >"$state/jars"
echo "$heap" >"$state/heap"
users=(admin agent sink rules dashboard operator)
ports=($("$python" - "$((4 * nodes))" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
PY
))
# node i (1-based): PLAINTEXT, CONTROLLER, SASL_PLAINTEXT, SASL_SSL ports at 4(i-1) .. 4(i-1)+3
port() { echo "${ports[$((4 * ($1 - 1) + $2))]}"; }
joined() { local kind="$1" out="" i; for ((i = 1; i <= nodes; i++)); do out+="${out:+,}127.0.0.1:$(port "$i" "$kind")"; done; echo "$out"; }
bootstrap="$(joined 0)"
sasl_bootstrap="$(joined 2)"
voters=""
for ((i = 1; i <= nodes; i++)); do voters+="${voters:+,}$i@127.0.0.1:$(port "$i" 1)"; done
declare -A password
for user in "${users[@]}"; do
  password[$user]="$("$python" -c 'import secrets; print(secrets.token_urlsafe(24))')"
done
plain_users=""
scram_args=()
for user in "${users[@]}"; do
  plain_users+=" user_$user=\"${password[$user]}\""
  scram_args+=(--add-scram "SCRAM-SHA-512=[name=$user,password=${password[$user]}]")
done

# TLS for a SASL_SSL listener: a throwaway CA and a broker certificate for the IP 127.0.0.1, made with the
# `cryptography` package when $python has it (without it there is no SASL_SSL listener and its tests skip).
tls_bootstrap=""
tls_properties=""
if "$python" -c 'import cryptography' 2>/dev/null; then
  mkdir -p "$state/tls"
  (umask 077; "$python" - "$state/tls" <<'PY'
import datetime, ipaddress, sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

out = Path(sys.argv[1])
now = datetime.datetime.now(datetime.timezone.utc)


def certificate(subject, issuer, public_key, signing_key, *extensions):
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2)))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, hashes.SHA256())


ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agentaudit CI CA")])
ca_key = ec.generate_private_key(ec.SECP256R1())
ca = certificate(ca_name, ca_name, ca_key.public_key(), ca_key, (x509.BasicConstraints(ca=True, path_length=0), True))
key = ec.generate_private_key(ec.SECP256R1())
broker = certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), ca_name, key.public_key(),
                     ca_key, (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False),
                     (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False))
pem = serialization.Encoding.PEM
(out / "ca.pem").write_bytes(ca.public_bytes(pem))
(out / "broker.pem").write_bytes(
    key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    + broker.public_bytes(pem) + ca.public_bytes(pem))
PY
  ) || die "could not create the TLS certificates in $state/tls"
  tls_bootstrap="$(joined 3)"
  tls_properties="listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$state/tls/broker.pem"
fi

pairs=()
for user in "${users[@]}"; do pairs+=("$user" "${password[$user]}"); done
(umask 077; "$python" -c '
import json, sys
users = dict(zip(sys.argv[4::2], sys.argv[5::2]))
out = {"bootstrap": sys.argv[1], "security_protocol": "SASL_PLAINTEXT", "mechanisms": ["SCRAM-SHA-512", "PLAIN"],
       "users": users}
if sys.argv[2]:
    out["tls"] = {"bootstrap": sys.argv[2], "security_protocol": "SASL_SSL", "ca_location": sys.argv[3]}
json.dump(out, sys.stdout, indent=2)
' "$sasl_bootstrap" "$tls_bootstrap" "$state/tls/ca.pem" "${pairs[@]}" >"$state/sasl.json")
echo "$sasl_bootstrap" >"$state/sasl_bootstrap"

rf=$((nodes < 3 ? nodes : 3))
isr=$((nodes >= 3 ? 2 : 1))
for ((i = 1; i <= nodes; i++)); do
  mkdir -p "$state/node$i/data" "$state/node$i/logs"
  pt="127.0.0.1:$(port "$i" 0)" ctl="127.0.0.1:$(port "$i" 1)" sasl="127.0.0.1:$(port "$i" 2)"
  tls="${tls_bootstrap:+127.0.0.1:$(port "$i" 3)}"
  (umask 077; cat > "$state/node$i/server.properties" <<PROPS
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://$pt,SASL_PLAINTEXT://$sasl${tls:+,SASL_SSL://$tls},CONTROLLER://$ctl
advertised.listeners=PLAINTEXT://$pt,SASL_PLAINTEXT://$sasl${tls:+,SASL_SSL://$tls},CONTROLLER://$ctl
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
listener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
# ANONYMOUS: the PLAINTEXT and CONTROLLER listeners (loopback, CI only); admin: the SASL super user.
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
$tls_properties
log.dirs=$state/node$i/data
num.partitions=3
auto.create.topics.enable=true
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
# A dead node loses its partition leaderships after 4 s instead of 9 s (CI fault tests).
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
message.max.bytes=10485760
replica.fetch.max.bytes=10485760
socket.request.max.bytes=104857600
log.retention.hours=1
PROPS
  )
done

node_jvm 1
cp="$jars/*"

# 3. Format every node's log dir for the same cluster id: a static quorum of all nodes as voters
#    (one node: a standalone quorum of one). SCRAM users go into each node's bootstrap metadata.
cluster_id="$("$java" "${jvm[@]}" -cp "$cp" kafka.tools.StorageTool random-uuid 2>>"$state/logs/storage-tool.err")" \
  || die "StorageTool random-uuid failed; see $state/logs/storage-tool.err"
for ((i = 1; i <= nodes; i++)); do
  "$java" "${jvm[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$cluster_id" \
    -c "$state/node$i/server.properties" "${scram_args[@]}" >"$state/node$i/logs/format.out" 2>&1 \
    || { cat "$state/node$i/logs/format.out" >&2; die "StorageTool format failed for node $i"; }
done

# 4. Start every node and wait for all of them (a controller quorum forms only once a majority is up).
t0=$SECONDS
for ((i = 1; i <= nodes; i++)); do node_launch "$i"; done
echo "$bootstrap" >"$state/bootstrap"
echo "$nodes" >"$state/brokers"
log "starting Kafka $version: $nodes node(s) on $bootstrap, SASL on $sasl_bootstrap${tls_bootstrap:+, SASL_SSL on $tls_bootstrap} (controllers $voters, logs $state/node*/logs)"

fail() {
  log "ERROR: $*"
  tail -n 40 "$state"/node*/logs/server.log "$state"/node*/logs/broker.out >&2 2>/dev/null || true
  bash "$here/stop.sh" >&2 || true
  exit 1
}

for ((i = 1; i <= nodes; i++)); do node_wait "$i" 1 || fail "node $i did not start"; done

# The port answers and, where confluent_kafka is installed, a metadata request names our broker.
# Then the SASL listener authenticates admin with SCRAM-SHA-512.
"$python" - "$bootstrap" "$sasl_bootstrap" "$state/sasl.json" "$nodes" <<'PY' || fail "broker at $bootstrap / $sasl_bootstrap does not answer"
import json, socket, sys, time
for address in sys.argv[1].split(",") + sys.argv[2].split(","):
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
try:
    from confluent_kafka.admin import AdminClient
except ImportError:
    sys.exit(0)
want = set(range(1, int(sys.argv[4]) + 1))
deadline = time.monotonic() + 60
while set(AdminClient({"bootstrap.servers": sys.argv[1]}).list_topics(timeout=20).brokers) != want:
    if time.monotonic() > deadline:
        sys.exit(f"metadata does not name every broker {sorted(want)}")
    time.sleep(0.5)
admin = {"bootstrap.servers": sys.argv[2], "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
         "sasl.username": "admin", "sasl.password": json.load(open(sys.argv[3]))["users"]["admin"]}
if set(AdminClient(admin).list_topics(timeout=20).brokers) != want:
    sys.exit("the SASL listener did not answer a SCRAM-SHA-512 metadata request as admin")
PY
log "ready in $((SECONDS - t0))s"
echo "$bootstrap"
