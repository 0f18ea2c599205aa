#!/usr/bin/env bash
# A real single-node Apache Kafka 4.x broker (KRaft, combined broker+controller,
# loopback only) for integration tests, run from the Apache Kafka jars on Maven
# Central with Java 17+ from Debian. Nothing here needs an Apache download
# mirror or Docker.
#
# Usage: see usage() below, or `tools/kafka.sh help`.
#
# Environment:
#   KAFKA_VERSION        Kafka release to use (default below)
#   KAFKA_CACHE          cache root (default: <repo>/third_party, git-ignored)
#   KAFKA_START_TIMEOUT  seconds to wait for the broker to be ready (default 60)
#   KAFKA_HEAP_OPTS      broker heap (default -Xmx512m -Xms128m)
#   KAFKA_DIR            state dir for `stop` and `resume` when --dir is not given
#   KAFKA_BOOTSTRAP      bootstrap for `topics` when --bootstrap is not given
set -euo pipefail

KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${KAFKA_CACHE:-$ROOT/third_party}/kafka-$KAFKA_VERSION
LIBS=$CACHE/libs
START_TIMEOUT=${KAFKA_START_TIMEOUT:-60}
HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx512m -Xms128m}
JAVA=

usage() {
  cat <<EOF
Usage: tools/kafka.sh COMMAND [OPTIONS]

Runs a real single-node Apache Kafka $KAFKA_VERSION broker (KRaft, broker+controller
in one JVM, 127.0.0.1 only) from the jars on Maven Central, for tests.

Commands:
  fetch                  Download kafka_2.13, kafka-tools and their runtime
                         dependencies into $LIBS
                         (idempotent; a second run does nothing).
  start [--dir DIR] [--prop KEY=VALUE]...
                         Fetch if needed, pick two free loopback ports, write a
                         KRaft server.properties, format the storage, start the
                         broker in the background and wait until it answers a
                         metadata request (at most \$KAFKA_START_TIMEOUT=$START_TIMEOUT s).
                         DIR defaults to a new temporary dir. Prints on stdout:
                           KAFKA_DIR=<state dir>
                           KAFKA_BOOTSTRAP=127.0.0.1:<port>
                         (so: eval "\$(tools/kafka.sh start)"), and writes
                         <DIR>/bootstrap (host:port), <DIR>/pid, <DIR>/env.
                         Broker log: <DIR>/logs/server.log.
  stop [--dir DIR] [--keep]
                         SIGTERM the broker of DIR (default \$KAFKA_DIR), wait up
                         to 30 s, then SIGKILL; remove DIR unless --keep.
  resume [--dir DIR]     Start again the broker of DIR (default \$KAFKA_DIR) that
                         was stopped with stop --keep: the same server.properties,
                         ports and data (no format), waiting and printing as
                         start does (stdout, <DIR>/bootstrap, <DIR>/pid,
                         <DIR>/env). Fails when DIR holds no stopped broker, its
                         broker is running, or another process took its ports.
  topics [--bootstrap HOST:PORT] create NAME PARTITIONS [KEY=VALUE]...
  topics [--bootstrap HOST:PORT] list | describe [NAME] | delete NAME
                         Manage topics with the jars' TopicCommand
                         (bootstrap defaults to \$KAFKA_BOOTSTRAP).
  run CLASS [ARGS]...    Run any class from the cached jars, e.g.
                           run org.apache.kafka.tools.ConsoleProducer --bootstrap-server B --topic T
                           run org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server B --topic T --from-beginning --max-messages 3
  help                   This text.

Needs Java >= 17 (installs openjdk-17-jre-headless with apt-get if missing) and,
for fetch only, Maven (installs the Debian package maven if missing).
EOF
}

log() { echo "kafka.sh: $*" >&2; }
die() { echo "kafka.sh: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- installs --

apt_install() {
  local pkg=$1 sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "need root or sudo to apt-get install $pkg"
    sudo=sudo
  fi
  # Refresh the package lists only when apt does not know the package yet.
  if ! apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    log "apt-get update"
    $sudo apt-get update -qq >&2
  fi
  apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [0-9]' \
    || die "apt has no candidate for $pkg"
  log "apt-get install $pkg"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >&2
}

java_major() { # JAVA_BINARY -> major version (8 for 1.8), empty if unusable
  "$1" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}' \
    | awk -F'[.+-]' '{ if ($1 == "1") print $2; else print $1 }'
}

ensure_java() {
  [[ -n $JAVA ]] && return 0
  local c m arch
  arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
  for pass in 1 2; do
    for c in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} "$(command -v java || true)" \
             /usr/lib/jvm/java-17-openjdk-"$arch"/bin/java /usr/lib/jvm/java-*-openjdk-*/bin/java; do
      [[ -n $c && -x $c ]] || continue
      m=$(java_major "$c" || true)
      if [[ $m =~ ^[0-9]+$ ]] && (( m >= 17 )); then
        JAVA=$c
        export JAVA_HOME
        JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$c")")")
        return 0
      fi
    done
    [[ $pass == 1 ]] && apt_install openjdk-17-jre-headless
  done
  die "no Java >= 17 found even after installing openjdk-17-jre-headless"
}

ensure_maven() {
  command -v mvn >/dev/null && return 0
  apt_install maven
  command -v mvn >/dev/null || die "mvn still missing after apt-get install maven"
}

# ------------------------------------------------------------------- fetch --

# The artifacts the broker and the test tools need. kafka_2.13 (kafka.Kafka,
# kafka.tools.StorageTool) already depends on every server module (kafka-server,
# -metadata, -raft, -storage, -group/-transaction/-share-coordinator, ...).
# kafka-tools adds TopicCommand and the console producer/consumer; its Kafka
# Connect runtime (Jetty, Jersey: about 11 MB) is not needed and left out.
# Kafka logs through slf4j but its poms bring no slf4j binding (and 4.0.x no
# log4j2 at all): pom_xml LOG4J_VERSION SLF4J_MAJOR adds log4j2 and the
# binding that fits Kafka's slf4j-api (see cmd_fetch).
pom_xml() {
  local log4j=${1:-} slf4j_major=${2:-1} binding=log4j-slf4j-impl
  [[ $slf4j_major == 1 ]] || binding="log4j-slf4j2-impl"
  cat <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.shortfall</groupId>
  <artifactId>kafka-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
      <exclusions>
        <exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion>
      </exclusions>
    </dependency>
EOF
  if [[ -n $log4j ]]; then
    cat <<EOF
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>$log4j</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>$binding</artifactId>
      <version>$log4j</version>
    </dependency>
EOF
  fi
  cat <<EOF
  </dependencies>
</project>
EOF
}

fetched() { [[ -f $CACHE/.complete && -d $LIBS ]] && [[ "$(cat "$CACHE/request.pom" 2>/dev/null)" == "$(pom_xml)" ]]; }

mvn_copy_deps() { # DIR: resolve DIR/pom.xml's runtime dependencies into DIR/libs
  (cd "$1" && mvn -B -q "$DEP_PLUGIN:copy-dependencies" -DincludeScope=runtime \
      -DoutputDirectory="$1/libs" >>"$1/mvn.log" 2>&1) && return 0
  tail -n 40 "$1/mvn.log" >&2
  die "Maven could not resolve the Kafka $KAFKA_VERSION jars (log: above)"
}

jar_version() { # DIR ARTIFACT -> version of DIR/ARTIFACT-<version>.jar, or empty
  local f
  for f in "$1/$2"-[0-9]*.jar; do
    [[ -f $f ]] || continue
    f=${f##*/"$2"-}; echo "${f%.jar}"; return 0
  done
}

FETCH_TMP=
cmd_fetch() {
  [[ $# -eq 0 ]] || die "fetch takes no arguments"
  if fetched; then
    log "Kafka $KAFKA_VERSION jars already in $LIBS"
    return 0
  fi
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9   # a parallel fetch waits for this one
  if fetched; then exec 9>&-; return 0; fi
  ensure_java
  ensure_maven
  FETCH_TMP=$(mktemp -d "$CACHE/.fetch.XXXXXX")
  trap 'rm -rf "$FETCH_TMP"' EXIT
  local tmp=$FETCH_TMP log4j slf4j
  log "downloading Kafka $KAFKA_VERSION and its dependencies from Maven Central ..."
  # Pass 1: Kafka alone, to learn which slf4j and log4j2 it was built with.
  mkdir -p "$tmp/p1"
  pom_xml >"$tmp/p1/pom.xml"
  mvn_copy_deps "$tmp/p1"
  [[ -f $tmp/p1/libs/kafka_2.13-$KAFKA_VERSION.jar ]] || die "kafka_2.13 jar missing after Maven ran"
  slf4j=$(jar_version "$tmp/p1/libs" slf4j-api)
  log4j=$(jar_version "$tmp/p1/libs" log4j-core)
  [[ -n $log4j ]] || log4j=$(jar_version "$tmp/p1/libs" log4j-api)
  # Kafka 4.0.x depends on no log4j2 artifact at all; its distribution ships 2.24.3.
  [[ -n $log4j ]] || log4j=${LOG4J_VERSION:-2.24.3}
  # Pass 2: the same plus log4j-core and the slf4j binding, resolved together.
  mkdir -p "$tmp/p2"
  pom_xml "$log4j" "${slf4j%%.*}" >"$tmp/p2/pom.xml"
  mvn_copy_deps "$tmp/p2"
  rm -rf "$LIBS" "$CACHE/.complete"
  mv "$tmp/p2/libs" "$LIBS"
  mv "$tmp/p2/pom.xml" "$CACHE/pom.xml"
  pom_xml >"$CACHE/request.pom"
  touch "$CACHE/.complete"
  rm -rf "$tmp"
  trap - EXIT
  exec 9>&-
  log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars, $(du -sh "$LIBS" | cut -f1) into $LIBS (slf4j $slf4j, log4j $log4j)"
}

# ---------------------------------------------------------------- helpers --

free_ports() { # N -> N distinct free loopback TCP ports, space-separated
  local n=$1
  if command -v python3 >/dev/null; then
    python3 - "$n" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)          # keep all open so the ports differ
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
  else
    local ports=() p
    while (( ${#ports[@]} < n )); do
      p=$(( 20000 + RANDOM % 30000 ))
      [[ " ${ports[*]} " == *" $p "* ]] && continue
      (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue   # in use
      ports+=("$p")
    done
    echo "${ports[*]}"
  fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

tools_log4j() { # a log4j2 config for the CLI tools: warnings to stderr
  local f=$CACHE/tools-log4j2.properties
  if [[ ! -f $f ]]; then
    cat >"$f.$$" <<'EOF'
status = error
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = err
EOF
    mv "$f.$$" "$f"
  fi
  echo "$f"
}

run_class() { # CLASS ARGS... with the cached jars and a small client JVM
  ensure_java
  "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$(tools_log4j)" -cp "$LIBS/*" "$@"
}

is_our_broker() { # PID DIR: is PID alive and the kafka.Kafka of DIR?
  local pid=$1 dir=$2
  [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' </proc/"$pid"/cmdline | grep -qF "kafka.Kafka $dir/server.properties"
}

# ------------------------------------------------------------------- start --

write_config() { # DIR BROKER_PORT CONTROLLER_PORT EXTRA_PROPS...
  local dir=$1 p1=$2 p2=$3; shift 3
  cat >"$dir/server.properties" <<EOF
# Written by tools/kafka.sh: single-node KRaft test broker on loopback.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$p2
listeners=PLAINTEXT://127.0.0.1:$p1,CONTROLLER://127.0.0.1:$p2
advertised.listeners=PLAINTEXT://127.0.0.1:$p1,CONTROLLER://127.0.0.1:$p2
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=8
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  local kv
  for kv in "$@"; do echo "$kv" >>"$dir/server.properties"; done
  # shutdownHook = disable: log4j2 would otherwise stop logging while Kafka's
  # own shutdown hook is still writing its last lines.
  cat >"$dir/log4j2.properties" <<EOF
status = error
shutdownHook = disable
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
}

cluster_id() {
  if command -v python3 >/dev/null; then
    python3 -c 'import base64,uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))'
  else
    run_class kafka.tools.StorageTool random-uuid
  fi
}

show_logs() { # DIR
  local f
  for f in "$1/logs/server.log" "$1/logs/kafka.out" "$1/logs/format.out"; do
    [[ -s $f ]] || continue
    echo "---- last lines of $f" >&2
    tail -n 30 "$f" >&2
  done
}

BROKER_PID=
BROKER_READY=
STATE_DIR=
on_start_exit() {
  if [[ -z $BROKER_READY && -n $BROKER_PID ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -KILL "$BROKER_PID" 2>/dev/null || true
    [[ -n $STATE_DIR ]] && rm -f "$STATE_DIR/pid"
  fi
}

launch_broker() { # DIR: start DIR's broker in the background; sets BROKER_PID, writes DIR/pid
  local dir=$1
  # setsid: the broker leaves the caller's process group (a test runner's
  # Ctrl-C or group kill does not reach it; `stop` does). In a
  # non-interactive shell setsid execs in place, so $! is the JVM's pid.
  # kafka.out is appended to: a resumed broker keeps the earlier runs' output.
  # shellcheck disable=SC2086
  setsid "$JAVA" $HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dkafka.logs.dir="$dir/logs" \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" \
    </dev/null >>"$dir/logs/kafka.out" 2>&1 &
  BROKER_PID=$!
  echo "$BROKER_PID" >"$dir/pid"
}

await_broker() { # DIR PORT T0: 0 once BROKER_PID answers, 1 if it exited; dies START_TIMEOUT s after T0
  local dir=$1 port=$2 t0=$3
  # The port accepts connections, then a metadata request succeeds.
  while :; do
    kill -0 "$BROKER_PID" 2>/dev/null || return 1
    if (( SECONDS - t0 >= START_TIMEOUT )); then
      show_logs "$dir"
      die "the broker was not ready after ${START_TIMEOUT} s (state dir $dir)"
    fi
    if port_open "$port" && (cmd_topics --bootstrap "127.0.0.1:$port" list) >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
}

announce_broker() { # DIR PORT T0: the broker is ready; write DIR/bootstrap and DIR/env, print them
  local dir=$1 port=$2 t0=$3
  BROKER_READY=1
  echo "127.0.0.1:$port" >"$dir/bootstrap"
  printf 'KAFKA_DIR=%s\nKAFKA_BOOTSTRAP=127.0.0.1:%s\n' "$dir" "$port" >"$dir/env"
  log "broker ready (pid $BROKER_PID) after $(( SECONDS - t0 )) s"
  cat "$dir/env"
}

cmd_start() {
  local dir="" props=()
  while [[ $# -gt 0 ]]; do
    case $1 in
      --dir) [[ $# -ge 2 ]] || die "--dir needs a value"; dir=$2; shift 2 ;;
      --prop) [[ $# -ge 2 && $2 == *=* ]] || die "--prop needs KEY=VALUE"; props+=("$2"); shift 2 ;;
      *) die "start: unknown argument '$1' (see: tools/kafka.sh help)" ;;
    esac
  done
  cmd_fetch
  ensure_java
  if [[ -z $dir ]]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/kafka.XXXXXX")
  else
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ ! -f $dir/.kafka-sh && -n $(ls -A "$dir") ]]; then
      die "$dir is not empty and was not made by tools/kafka.sh: give an empty or new dir"
    fi
    if [[ -f $dir/pid ]] && is_our_broker "$(cat "$dir/pid")" "$dir"; then
      die "a broker is already running for $dir (pid $(cat "$dir/pid")): stop it first"
    fi
  fi
  STATE_DIR=$dir
  trap on_start_exit EXIT
  local t0=$SECONDS attempt p1 p2
  for attempt in 1 2 3; do
    # A fresh cluster each start: only our own files in DIR are replaced.
    rm -rf "$dir/data" "$dir/logs" "$dir/pid" "$dir/bootstrap" "$dir/env"
    mkdir -p "$dir/data" "$dir/logs"
    touch "$dir/.kafka-sh"
    read -r p1 p2 < <(free_ports 2)
    write_config "$dir" "$p1" "$p2" ${props[@]+"${props[@]}"}
    log "state dir $dir, broker 127.0.0.1:$p1, controller 127.0.0.1:$p2"
    if ! run_class kafka.tools.StorageTool format -t "$(cluster_id)" \
           -c "$dir/server.properties" --standalone >"$dir/logs/format.out" 2>&1; then
      show_logs "$dir"
      die "formatting the storage failed"
    fi
    launch_broker "$dir"
    await_broker "$dir" "$p1" "$t0" && break
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=
    if grep -qs 'Address already in use' "$dir/logs/server.log" "$dir/logs/kafka.out" && (( attempt < 3 )); then
      log "port taken in the meantime; retrying with new ports"
      continue
    fi
    show_logs "$dir"
    die "the broker exited during startup (state dir $dir)"
  done
  announce_broker "$dir" "$p1" "$t0"
}

# -------------------------------------------------------------------- stop --

cmd_stop() {
  local dir=${KAFKA_DIR:-} keep="" pid i
  while [[ $# -gt 0 ]]; do
    case $1 in
      --dir) [[ $# -ge 2 ]] || die "--dir needs a value"; dir=$2; shift 2 ;;
      --keep) keep=1; shift ;;
      *) die "stop: unknown argument '$1' (see: tools/kafka.sh help)" ;;
    esac
  done
  [[ -n $dir ]] || die "stop: give --dir DIR (or set KAFKA_DIR)"
  [[ -d $dir ]] || { log "no state dir $dir: nothing to stop"; return 0; }
  dir=$(cd "$dir" && pwd)
  [[ -f $dir/.kafka-sh ]] || die "$dir was not made by tools/kafka.sh start: not touching it"
  pid=$(cat "$dir/pid" 2>/dev/null || true)
  if [[ -n $pid ]] && is_our_broker "$pid" "$dir"; then
    kill -TERM "$pid" 2>/dev/null || true
    for (( i = 0; i < 300; i++ )); do
      is_our_broker "$pid" "$dir" || break
      sleep 0.1
    done
    if is_our_broker "$pid" "$dir"; then
      log "broker $pid still running after 30 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for (( i = 0; i < 50; i++ )); do is_our_broker "$pid" "$dir" || break; sleep 0.1; done
    fi
    log "stopped broker $pid"
  else
    log "no running broker for $dir"
  fi
  rm -f "$dir/pid"
  if [[ -z $keep ]]; then
    rm -rf "$dir"
  fi
}

# ------------------------------------------------------------------ resume --

listener_port() { # SERVER_PROPERTIES NAME -> the port of listener NAME in its listeners= line
  sed -n 's/^listeners=//p' "$1" | tr ',' '\n' | sed -n "s|^$2://[^:]*:\([0-9]*\)\$|\1|p" | head -n 1
}

cmd_resume() {
  local dir=${KAFKA_DIR:-} pid p1 p2 p t0
  while [[ $# -gt 0 ]]; do
    case $1 in
      --dir) [[ $# -ge 2 ]] || die "--dir needs a value"; dir=$2; shift 2 ;;
      *) die "resume: unknown argument '$1' (see: tools/kafka.sh help)" ;;
    esac
  done
  [[ -n $dir ]] || die "resume: give --dir DIR (or set KAFKA_DIR)"
  [[ -d $dir ]] || die "resume: no state dir $dir (stop without --keep removes it): nothing to resume"
  dir=$(cd "$dir" && pwd)
  [[ -f $dir/.kafka-sh ]] || die "$dir was not made by tools/kafka.sh start: not touching it"
  pid=$(cat "$dir/pid" 2>/dev/null || true)
  if [[ -n $pid ]] && is_our_broker "$pid" "$dir"; then
    die "the broker of $dir is running (pid $pid): nothing to resume"
  fi
  if [[ ! -f $dir/server.properties || ! -f $dir/data/meta.properties ]]; then
    die "$dir holds no stopped broker (no server.properties or no formatted data/): use start"
  fi
  p1=$(listener_port "$dir/server.properties" PLAINTEXT)
  p2=$(listener_port "$dir/server.properties" CONTROLLER)
  [[ -n $p1 && -n $p2 ]] || die "cannot read the PLAINTEXT and CONTROLLER ports from $dir/server.properties"
  # Clients know the broker by its port: it must come back on the same ones,
  # and a readiness check on a port someone else holds would lie.
  for p in "$p1" "$p2"; do
    port_open "$p" && die "port $p of $dir/server.properties is in use by another process: cannot resume"
  done
  cmd_fetch
  ensure_java
  STATE_DIR=$dir
  trap on_start_exit EXIT
  rm -f "$dir/pid" "$dir/bootstrap" "$dir/env"
  log "resuming $dir: broker 127.0.0.1:$p1, controller 127.0.0.1:$p2, data kept"
  t0=$SECONDS
  launch_broker "$dir"
  if ! await_broker "$dir" "$p1" "$t0"; then
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=
    rm -f "$dir/pid"
    show_logs "$dir"
    die "the resumed broker exited during startup (state dir $dir)"
  fi
  announce_broker "$dir" "$p1" "$t0"
}

# ------------------------------------------------------------------ topics --

cmd_topics() {
  local bs=${KAFKA_BOOTSTRAP:-}
  if [[ ${1:-} == --bootstrap ]]; then
    [[ $# -ge 2 ]] || die "--bootstrap needs HOST:PORT"
    bs=$2; shift 2
  fi
  [[ -n $bs ]] || die "topics: give --bootstrap HOST:PORT (or set KAFKA_BOOTSTRAP)"
  [[ -f $CACHE/.complete ]] || cmd_fetch
  # Fail fast instead of retrying for minutes against a dead broker.
  local cfg=$CACHE/tools-admin.properties
  if [[ ! -f $cfg ]]; then
    printf 'request.timeout.ms=5000\ndefault.api.timeout.ms=10000\n' >"$cfg.$$"
    mv "$cfg.$$" "$cfg"
  fi
  local tc=(org.apache.kafka.tools.TopicCommand --bootstrap-server "$bs" --command-config "$cfg")
  local sub=${1:-}; shift || true
  case $sub in
    create)
      [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || die "usage: topics create NAME PARTITIONS [KEY=VALUE]..."
      local name=$1 parts=$2 cfgs=() kv; shift 2
      for kv in "$@"; do cfgs+=(--config "$kv"); done
      run_class "${tc[@]}" --create --topic "$name" --partitions "$parts" \
        --replication-factor 1 ${cfgs[@]+"${cfgs[@]}"} ;;
    list) run_class "${tc[@]}" --list ;;
    describe) run_class "${tc[@]}" --describe ${1:+--topic "$1"} ;;
    delete) [[ $# -eq 1 ]] || die "usage: topics delete NAME"
      run_class "${tc[@]}" --delete --topic "$1" ;;
    *) die "topics: expected create, list, describe or delete (see: tools/kafka.sh help)" ;;
  esac
}

cmd_run() {
  [[ $# -ge 1 ]] || die "usage: run CLASS [ARGS]..."
  [[ -f $CACHE/.complete ]] || cmd_fetch
  run_class "$@"
}

# -------------------------------------------------------------------- main --

cmd=${1:-help}; shift || true
case $cmd in
  fetch) cmd_fetch "$@" ;;
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  resume) cmd_resume "$@" ;;
  topics) cmd_topics "$@" ;;
  run) cmd_run "$@" ;;
  help|-h|--help) usage ;;
  *) usage >&2; exit 2 ;;
esac
