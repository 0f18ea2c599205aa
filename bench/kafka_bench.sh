#!/usr/bin/env bash
# shortfall against the limit, on a real Kafka broker: starts the test broker
# (tools/kafka.sh), loads a generated scenario once (default 5M events, 8
# partitions per input topic), then RUNS times each (default 3):
#   - the limit: bench/kafka_limit, a bare librdkafka batch consumer that
#     only counts the records of the two input topics;
#   - shortfall run --until-idle, at_least_once, from the beginning to
#     caught up and committed (fresh group and state each run; its wall time
#     includes joining the group and the ~3 s it takes to see it is idle);
#   - the same with processing.guarantee=exactly_once.
# Prints the medians — events/s, CPU seconds per million events, peak RSS —
# and the ratios shortfall / limit and exactly_once / at_least_once. The
# machine is shared: compare ratios, not absolute numbers. Not measured yet:
# Kafka Streams.
# Usage: bench/kafka_bench.sh [EVENTS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-5000000}
runs=${2:-3}
tools/build.sh >/dev/null
B=build/pipeline/shortfall
L=build/bench/kafka_limit
dir=$(mktemp -d /tmp/shortfall-kafka-bench.XXXXXX)
cleanup() { tools/kafka.sh stop --dir "$dir/broker" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
tools/kafka.sh start --dir "$dir/broker" >/dev/null
bootstrap=$(cat "$dir/broker/bootstrap")
for t in shipments.events.v1 customs.events.v1; do
  tools/kafka.sh topics --bootstrap "$bootstrap" create "$t" 8 retention.ms=-1 >/dev/null
done
echo "kafka_bench: producing $events events to $bootstrap" >&2
"$B" gen --to-kafka --brokers "$bootstrap" --events "$events" --keep-partitions 2>&1 | grep "produced" >&2

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# wall_s cpu_s max_rss_kb of one command, from GNU time.
measure() { /usr/bin/time -f "%e %U %S %M" "$@" 2>&1 >/dev/null | tail -1 | awk '{print $1, $2 + $3, $4}'; }

: > "$dir/limit" ; : > "$dir/run" ; : > "$dir/eos"
for i in $(seq 1 "$runs"); do
  measure "$L" --brokers "$bootstrap" --topic shipments.events.v1 --topic customs.events.v1 >> "$dir/limit"
  measure "$B" run --brokers "$bootstrap" --until-idle --set application_id="bench$i" \
    --set state.dir="$dir/state$i" --set metrics.bind=127.0.0.1:0 >> "$dir/run"
  measure "$B" run --brokers "$bootstrap" --until-idle --set application_id="bench-eos$i" \
    --set processing.guarantee=exactly_once \
    --set state.dir="$dir/state-eos$i" --set metrics.bind=127.0.0.1:0 >> "$dir/eos"
  rm -rf "$dir/state$i" "$dir/state-eos$i"
done

report() {  # name file
  local wall cpu rss
  wall=$(awk '{print $1}' "$2" | median)
  cpu=$(awk '{print $2}' "$2" | median)
  rss=$(awk '{print $3}' "$2" | median)
  awk -v n="$1" -v e="$events" -v w="$wall" -v c="$cpu" -v r="$rss" 'BEGIN {
    printf "%-24s %12.0f %16.2f %12.0f %10.1f\n", n, e / w, c / (e / 1e6), r / 1024, w }'
  echo "$wall $cpu" > "$2.median"
}
printf "%-24s %12s %16s %12s %10s\n" "medians of $runs runs" "events/s" "cpu_s/M events" "peak_rss_MB" "wall_s"
report "limit (kafka_limit)" "$dir/limit"
report "shortfall at_least_once" "$dir/run"
report "shortfall exactly_once" "$dir/eos"
read -r lw lc < "$dir/limit.median"
read -r rw rc < "$dir/run.median"
read -r ew ec < "$dir/eos.median"
awk -v lw="$lw" -v rw="$rw" -v lc="$lc" -v rc="$rc" 'BEGIN {
  printf "ratio shortfall/limit: events/s %.2f (aim >= 0.7), events per CPU-second %.2f\n", lw / rw, lc / rc }'
awk -v rw="$rw" -v ew="$ew" -v rc="$rc" -v ec="$ec" 'BEGIN {
  printf "ratio exactly_once/at_least_once: events/s %.2f, events per CPU-second %.2f\n", rw / ew, rc / ec }'
