#!/usr/bin/env bash
# Latency at a steady rate on a real Kafka broker: publish -> state committed.
#   1. Starts the test broker (tools/kafka.sh) and measures shortfall's
#      maximum rate: `shortfall run --until-idle` over PRELOAD events already
#      in the topics (default 1,000,000; the time includes joining the group and
#      seeing it is idle, a few seconds, so a small preload understates it).
#   2. Starts one `shortfall run` on two fresh topics and, once it is ready,
#      produces EVENTS events (default 1,000,000) at half that maximum with
#      `gen --to-kafka --rate R --wall-clock-timestamps`, so each record's
#      Kafka timestamp is the moment it was published.
#   3. When the run has caught up, reads shortfall_processing_latency_seconds
#      {stage="state"} from its /metrics and prints p50 and p99 (interpolated
#      within the histogram's buckets) and the bucket the largest one fell in.
# What the histogram holds: at each commit, each task observes the oldest
# record the commit covers, so these are per-commit worst cases, an upper
# bound of the per-record latency. Not measured yet: publish -> alert visible
# to a read_committed consumer.
# Usage: bench/latency_bench.sh [EVENTS] [PRELOAD] [GUARANTEE]
#   GUARANTEE: at_least_once (default) or exactly_once.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
preload=${2:-1000000}
guarantee=${3:-at_least_once}
tools/build.sh >/dev/null
B=build/pipeline/shortfall
dir=$(mktemp -d /tmp/shortfall-latency-bench.XXXXXX)
run_pid=""
cleanup() {
  [[ -n $run_pid ]] && kill "$run_pid" 2>/dev/null && wait "$run_pid" 2>/dev/null || true
  tools/kafka.sh stop --dir "$dir/broker" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
tools/kafka.sh start --dir "$dir/broker" >/dev/null
bootstrap=$(cat "$dir/broker/bootstrap")
for t in shipments.events.v1 customs.events.v1 latency.shipments latency.customs; do
  tools/kafka.sh topics --bootstrap "$bootstrap" create "$t" 8 retention.ms=-1 >/dev/null
done
common=(--brokers "$bootstrap" --set processing.guarantee="$guarantee")

# 1. The maximum rate, on a backlog.
"$B" gen --to-kafka --brokers "$bootstrap" --events "$preload" --keep-partitions 2>&1 | grep "produced" >&2
start=$(python3 -c 'import time; print(time.time())')
"$B" run "${common[@]}" --until-idle --set application_id=latency-max --set state.dir="$dir/state-max" \
  --set metrics.bind=127.0.0.1:0 >/dev/null 2>&1
max_rate=$(python3 -c "import time; print($preload / (time.time() - $start))")
rate=$(python3 -c "print(round($max_rate / 2))")
printf 'latency_bench: %s: %.0f events/s on a backlog of %d; producing %d events at %d/s\n' \
  "$guarantee" "$max_rate" "$preload" "$events" "$rate" >&2

# 2. A run following a steady stream.
# GET of the run's endpoint PATH; fails (exit 1) unless it answers 200.
get() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "http://127.0.0.1:$port$1" 2>/dev/null; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$B" run "${common[@]}" --set application_id=latency --set state.dir="$dir/state" \
  --set topics.shipments=latency.shipments --set topics.customs=latency.customs \
  --set metrics.bind="127.0.0.1:$port" >"$dir/run.log" 2>&1 &
run_pid=$!
for _ in $(seq 1 120); do
  get /readyz >/dev/null && break
  sleep 0.5
done
get /readyz >/dev/null || { cat "$dir/run.log" >&2; exit 1; }
"$B" gen --to-kafka --brokers "$bootstrap" --events "$events" --rate "$rate" --wall-clock-timestamps \
  --shipments-topic latency.shipments --customs-topic latency.customs 2>&1 | grep "produced" >&2

# 3. Caught up (every lag 0 twice in a row), then the histogram.
zero=0
for _ in $(seq 1 240); do
  lags=$({ get /metrics || true; } | { grep '^shortfall_consumer_lag_records' || true; } | awk '{print $2}' | sort -u)
  if [[ $lags == "0" ]]; then zero=$((zero + 1)); else zero=0; fi
  [[ $zero -ge 2 ]] && break
  sleep 0.5
done
sleep 1  # the last commit's observation
get /metrics | python3 -c '
import re, sys
rate, guarantee = sys.argv[1], sys.argv[2]
buckets = []
for line in sys.stdin:
    m = re.match(r"shortfall_processing_latency_seconds_bucket\{.*stage=\"state\".*le=\"([^\"]+)\"\} (\S+)", line)
    if m:
        buckets.append((float("inf") if m.group(1) == "+Inf" else float(m.group(1)), float(m.group(2))))
buckets.sort()
total = buckets[-1][1] if buckets else 0
if total == 0:
    sys.exit("latency_bench: no latency observed")
def quantile(q):
    rank, lo, below = q * total, 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return lo
            return lo + (le - lo) * (rank - below) / max(count - below, 1e-9)
        lo, below = le, count
    return lo
top = next(le for le, count in buckets if count >= total)
print("publish -> state committed, %s, at %s events/s (per task and commit, the oldest record it covers):" % (guarantee, rate))
print("  observations %d   p50 %.0f ms   p99 %.0f ms   largest <= %s" % (
    total, quantile(0.5) * 1000, quantile(0.99) * 1000, "%.0f ms" % (top * 1000) if top != float("inf") else "+Inf"))
print("  aim: p99 <= 250 ms at half the maximum rate (commit interval 100 ms): %s" % ("met" if quantile(0.99) <= 0.25 else "MISSED"))
' "$rate" "$guarantee"
