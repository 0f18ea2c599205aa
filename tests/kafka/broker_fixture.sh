#!/usr/bin/env bash
# ctest fixture: a real Kafka broker for the tests labelled "kafka".
#   broker_fixture.sh start DIR   (stops and removes a stale DIR first)
#   broker_fixture.sh stop DIR
# The bootstrap address is written to DIR/bootstrap by tools/kafka.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kafka="$here/../../tools/kafka.sh"
cmd=${1:?start|stop}; dir=${2:?DIR}
case "$cmd" in
  start)
    if [ -d "$dir" ]; then "$kafka" stop --dir "$dir" >/dev/null 2>&1 || rm -rf "$dir"; fi
    rm -rf "$dir"
    "$kafka" start --dir "$dir"
    ;;
  stop)
    if [ -d "$dir" ]; then "$kafka" stop --dir "$dir"; fi
    ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
