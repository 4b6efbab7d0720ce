#!/usr/bin/env bash
# A 3-broker Apache Kafka cluster in KRaft mode on loopback, from the jars that
# deploy/local/install.sh resolved from Maven Central. No Docker needed.
#
# Every node is broker and controller (a 3-voter quorum survives the loss of one node).
# Topics default to replication factor 3 with min.insync.replicas 2, so a producer with
# acks=all keeps writing, and loses nothing, while any one broker is down.
#
#   deploy/local/kafka-cluster.sh start [BASE]        # nodes 1..3; default BASE 9192
#   deploy/local/kafka-cluster.sh stop [BASE]         # all nodes
#   deploy/local/kafka-cluster.sh kill-node BASE N [SIGNAL]   # one node (default KILL)
#   deploy/local/kafka-cluster.sh start-node BASE N   # (re)start one node, wait for its port
#   deploy/local/kafka-cluster.sh bootstrap [BASE]    # prints host:port,host:port,host:port
#
# Node N listens on BASE+2(N-1) (clients) and BASE+2(N-1)+1 (controller); its data is
# under .local/kafka-cluster-BASE/node-N. `start` prints the bootstrap list.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cmd="${1:-start}"
base="${2:-${WORLDFEED_KAFKA_CLUSTER_PORT:-9192}}"
libs="$root/.local/kafka/libs"
home="$root/.local/kafka-cluster-$base"
nodes=(1 2 3)

port_of() { echo $((base + 2 * ($1 - 1))); }
cport_of() { echo $((base + 2 * ($1 - 1) + 1)); }
pidfile_of() { echo "$home/node-$1/broker.pid"; }

bootstrap() {
  local out=""
  for n in "${nodes[@]}"; do out="$out${out:+,}127.0.0.1:$(port_of "$n")"; done
  echo "$out"
}

voters() {
  local out=""
  for n in "${nodes[@]}"; do out="$out${out:+,}$n@127.0.0.1:$(cport_of "$n")"; done
  echo "$out"
}

running() {
  local pidfile
  pidfile="$(pidfile_of "$1")"
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

configure() {
  local n="$1" data="$home/node-$1"
  mkdir -p "$data"
  cat > "$data/server.properties" <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(voters)
listeners=PLAINTEXT://127.0.0.1:$(port_of "$n"),CONTROLLER://127.0.0.1:$(cport_of "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(port_of "$n")
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data/logs
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
unclean.leader.election.enable=false
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=168
PROPS
  if [ ! -f "$data/logs/meta.properties" ]; then
    java -cp "$libs/*" -Dlog4j2.configurationFile="$root/deploy/kafka/log4j2.yaml" \
      kafka.tools.StorageTool format -t "wf-local-cluster-$base" \
      -c "$data/server.properties" >"$data/format.log" 2>&1 || { cat "$data/format.log" >&2; exit 1; }
  fi
}

launch() {
  local n="$1" data="$home/node-$1"
  if running "$n"; then return 0; fi
  configure "$n"
  nohup java -Xms128m -Xmx512m -cp "$libs/*" -Dlog4j2.configurationFile="$root/deploy/kafka/log4j2.yaml" \
    kafka.Kafka "$data/server.properties" >>"$data/broker.log" 2>&1 &
  echo $! > "$(pidfile_of "$n")"
}

wait_port() {
  local n="$1" port
  port="$(port_of "$n")"
  for _ in $(seq 1 240); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then return 0; fi
    running "$n" || { echo "kafka node $n exited:" >&2; tail -30 "$home/node-$n/broker.log" >&2; return 1; }
    sleep 0.5
  done
  echo "kafka node $n did not open port $port in 120 s" >&2; tail -30 "$home/node-$n/broker.log" >&2
  return 1
}

stop_node() {
  local n="$1" sig="${2:-TERM}" pidfile pid
  pidfile="$(pidfile_of "$n")"
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  kill -s "$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

case "$cmd" in
  start)
    [ -d "$libs" ] || { echo "kafka jars missing: run deploy/local/install.sh" >&2; exit 1; }
    for n in "${nodes[@]}"; do launch "$n"; done
    for n in "${nodes[@]}"; do wait_port "$n" || { "$0" stop "$base"; exit 1; }; done
    echo "kafka cluster ready: $(bootstrap) (data under $home)"
    ;;
  stop)
    for n in "${nodes[@]}"; do stop_node "$n" TERM & done
    wait
    ;;
  kill-node)
    n="${3:?usage: $0 kill-node BASE N [SIGNAL]}"
    stop_node "$n" "${4:-KILL}"
    ;;
  start-node)
    n="${3:?usage: $0 start-node BASE N}"
    launch "$n"
    wait_port "$n"
    echo "kafka node $n ready on 127.0.0.1:$(port_of "$n")"
    ;;
  bootstrap) bootstrap ;;
  *) echo "usage: $0 start|stop|kill-node|start-node|bootstrap [BASE] [N]" >&2; exit 2 ;;
esac
