#!/usr/bin/env bash
# Builds the Kafka Streams reference application of bench/kafka_bench.sh
# (bench/kstreams/src, see VolumesStreamsApp.java) and prints the classpath to
# run it with:
#   cp=$(bench/kstreams/build.sh) && java -cp "$cp" io.shortfall.bench.VolumesStreamsApp ...
#
# - Jars: kafka-streams $KAFKA_VERSION (the broker's version, tools/kafka.sh),
#   its runtime dependencies (kafka-clients, rocksdbjni, ...), protobuf-java
#   matching the installed protoc (3.21.12 for libprotoc 3.21.12) and
#   slf4j-simple for the slf4j-api Kafka uses, fetched from Maven Central
#   with a generated pom, the way tools/kafka.sh fetches the broker, into
#   third_party/kstreams-bench-$KAFKA_VERSION/libs (git-ignored; a second
#   run does nothing).
# - Classes: `protoc --java_out` over proto/shortfall/v1/{common,
#   shipment_event,customs_event}.proto and javac (Java 17) into
#   build/kstreams-bench/, rebuilt only when a source, proto or jar changed.
# Installs openjdk-17-jdk-headless (javac) and maven with apt-get when
# missing. Progress and errors go to stderr; stdout is the classpath only.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
SLF4J_VERSION=1.7.36  # the slf4j-api kafka-clients 4.x depends on
CACHE=${KAFKA_CACHE:-$ROOT/third_party}/kstreams-bench-$KAFKA_VERSION
OUT=$ROOT/build/kstreams-bench

log() { echo "kstreams/build.sh: $*" >&2; }
die() { echo "kstreams/build.sh: error: $*" >&2; exit 1; }

apt_install() {
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  log "apt-get install $*"
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >&2
}

command -v javac >/dev/null || apt_install openjdk-17-jdk-headless
command -v protoc >/dev/null || apt_install protobuf-compiler
protobuf_version=$(protoc --version | awk '{print $2}')   # "libprotoc 3.21.12"
[[ $protobuf_version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "cannot read protoc's version: $(protoc --version)"

pom_xml() {
  cat <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.shortfall</groupId>
  <artifactId>kstreams-bench-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-streams</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>com.google.protobuf</groupId>
      <artifactId>protobuf-java</artifactId>
      <version>$protobuf_version</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-simple</artifactId>
      <version>$SLF4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
}

if [[ ! -f $CACHE/.complete || "$(cat "$CACHE/request.pom" 2>/dev/null)" != "$(pom_xml)" ]]; then
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9
  if [[ ! -f $CACHE/.complete || "$(cat "$CACHE/request.pom" 2>/dev/null)" != "$(pom_xml)" ]]; then
    command -v mvn >/dev/null || apt_install maven
    tmp=$(mktemp -d "$CACHE/.fetch.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    pom_xml >"$tmp/pom.xml"
    log "downloading kafka-streams $KAFKA_VERSION, protobuf-java $protobuf_version and their dependencies from Maven Central ..."
    if ! (cd "$tmp" && mvn -B -q "$DEP_PLUGIN:copy-dependencies" -DincludeScope=runtime \
            -DoutputDirectory="$tmp/libs" >"$tmp/mvn.log" 2>&1); then
      tail -n 40 "$tmp/mvn.log" >&2
      die "Maven could not resolve the jars (log: above)"
    fi
    [[ -f $tmp/libs/kafka-streams-$KAFKA_VERSION.jar ]] || die "kafka-streams jar missing after Maven ran"
    rm -rf "$CACHE/libs" "$CACHE/.complete"
    mv "$tmp/libs" "$CACHE/libs"
    mv "$tmp/pom.xml" "$CACHE/request.pom"
    touch "$CACHE/.complete"
    rm -rf "$tmp"
    trap - EXIT
    log "fetched $(find "$CACHE/libs" -name '*.jar' | wc -l) jars, $(du -sh "$CACHE/libs" | cut -f1) into $CACHE/libs"
  fi
  exec 9>&-
fi

protos=(proto/shortfall/v1/common.proto proto/shortfall/v1/shipment_event.proto proto/shortfall/v1/customs_event.proto)
# shellcheck disable=SC2046  # the sources' paths have no blanks
stamp=$(cd "$ROOT" && cat "${protos[@]}" $(find bench/kstreams/src -name '*.java' | sort) "$CACHE/request.pom" | sha256sum | cut -c1-16)
if [[ "$(cat "$OUT/stamp" 2>/dev/null)" != "$stamp" ]]; then
  log "compiling into $OUT"
  rm -rf "$OUT"
  mkdir -p "$OUT/gen" "$OUT/classes"
  (cd "$ROOT" && protoc -I proto --java_out="$OUT/gen" "${protos[@]}")
  # shellcheck disable=SC2046
  javac --release 17 -nowarn -d "$OUT/classes" -cp "$CACHE/libs/*" \
    $(find "$OUT/gen" "$ROOT/bench/kstreams/src" -name '*.java') >&2
  echo "$stamp" >"$OUT/stamp"
fi
echo "$OUT/classes:$CACHE/libs/*"
