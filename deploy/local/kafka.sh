#!/usr/bin/env bash
# Start / stop a single-node Apache Kafka broker in KRaft mode from the jars that
# deploy/local/install.sh resolved from Maven Central. No Docker needed.
#   deploy/local/kafka.sh start [PORT]   # default 9092; data under .local/kafka-data-PORT
#   deploy/local/kafka.sh stop [PORT]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cmd="${1:-start}"
port="${2:-${WORLDFEED_KAFKA_PORT:-9092}}"
cport=$((port + 1))
libs="$root/.local/kafka/libs"
data="$root/.local/kafka-data-$port"
pidfile="$data/broker.pid"
log="$data/broker.log"

case "$cmd" in
  start)
    [ -d "$libs" ] || { echo "kafka jars missing: run deploy/local/install.sh" >&2; exit 1; }
    mkdir -p "$data"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "kafka already running on localhost:$port (pid $(cat "$pidfile"))"; exit 0
    fi
    cat > "$data/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data/logs
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=168
PROPS
    if [ ! -f "$data/logs/meta.properties" ]; then
      java -cp "$libs/*" -Dlog4j2.configurationFile="$root/deploy/kafka/log4j2.yaml" \
        kafka.tools.StorageTool format -t "$(cat "$data/cluster-id" 2>/dev/null || echo wf-local-cluster-0001)" \
        -c "$data/server.properties" >"$data/format.log" 2>&1 || { cat "$data/format.log" >&2; exit 1; }
    fi
    nohup java -Xms256m -Xmx1g -cp "$libs/*" -Dlog4j2.configurationFile="$root/deploy/kafka/log4j2.yaml" \
      kafka.Kafka "$data/server.properties" >"$log" 2>&1 &
    echo $! > "$pidfile"
    for _ in $(seq 1 120); do
      if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
        echo "kafka ready on 127.0.0.1:$port (pid $(cat "$pidfile"), log $log)"; exit 0
      fi
      kill -0 "$(cat "$pidfile")" 2>/dev/null || { echo "kafka exited:" >&2; tail -30 "$log" >&2; exit 1; }
      sleep 0.5
    done
    echo "kafka did not open port $port in 60 s" >&2; tail -30 "$log" >&2; exit 1
    ;;
  stop)
    if [ -f "$pidfile" ]; then
      pid="$(cat "$pidfile")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$pidfile"
    fi
    ;;
  *) echo "usage: $0 start|stop [PORT]" >&2; exit 2 ;;
esac
