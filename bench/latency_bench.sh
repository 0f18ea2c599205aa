#!/usr/bin/env bash
# Latency at a steady rate on a real Kafka broker, in one pipeline run:
# publish -> state committed, and publish -> alert visible to a
# read_committed consumer.
#   1. Starts the test broker (tools/kafka.sh) and measures shortfall's
#      maximum rate: `shortfall run --until-idle` over PRELOAD events of the
#      demo scenario already in the topics (default 1,000,000; the time
#      includes joining the group and seeing it is idle, a few seconds, so a
#      small preload understates it).
#   2. Starts one `shortfall run` on two fresh input topics and a fresh alert
#      topic and, once it is ready, a read_committed consumer of the alerts
#      (`bench/alert_latency watch`: each alert record's receive time), then
#      produces EVENTS events of the demo scenario (default 1,000,000; its
#      chip and PPE shortages raise alerts) at half that maximum with
#      `gen --to-kafka --rate R --wall-clock-timestamps`, so each record's
#      Kafka timestamp is the moment it was published. The total consumer lag
#      is sampled from /metrics every 0.5 s meanwhile.
#   3. When the run has caught up (every lag 0), prints:
#      - the lag while producing (median, max; in all, and of the
#        repartition topic alone), at the last publish, and how
#        long after the last publish the run caught up: whether the run kept
#        up with the rate;
#      - publish -> state committed: p50 and p99 of
#        shortfall_processing_latency_seconds{stage="state"} from /metrics
#        (interpolated within the histogram's buckets) and the bucket the
#        largest fell in. At each commit, each stage-one task observes the
#        oldest record the commit covers, so these are per-commit worst
#        cases, an upper bound of the per-record latency; the commit is
#        stage one's (its watermark state, its partial sums delivered to the
#        repartition topic, its offsets); the sums reach stage two's state
#        at a later commit;
#      - publish -> alert visible: p50, p99 and max over the alert records
#        (`bench/alert_latency measure`: receive time minus the publish time
#        of the event whose publication closed the window that raised the
#        alert, found by rebuilding the watermark from the input topics; see
#        bench/publish_watermarks.h), with the number of alert records
#        measured; it fails when there is none;
#      - the aim: p99 publish -> state committed <= 250 ms, met or missed.
#      With them, p50 and p99 of the commits' own duration
#      (shortfall_commit_duration_seconds: flush, state, offsets or
#      transaction), one of the parts a record waits for.
# Usage: bench/latency_bench.sh [EVENTS] [PRELOAD] [GUARANTEE] [FRACTION]
#   GUARANTEE: at_least_once (default) or exactly_once.
#   FRACTION: the produced rate as a fraction of the maximum (default 0.5,
#   the aim's rate; a smaller one shows the latency of a run with headroom).
#   LATENCY_LIST=1 also lists each alert record's latency.
#   LATENCY_RATE=N skips the maximum (step 1) and produces at N/s, for
#   comparing settings at one rate; the aim is then not judged.
#   LATENCY_RUN_ARGS="--set KEY=VALUE ..." adds flags to the steady run.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
preload=${2:-1000000}
guarantee=${3:-at_least_once}
fraction=${4:-0.5}
tools/build.sh >/dev/null
B=build/pipeline/shortfall
dir=$(mktemp -d /tmp/shortfall-latency-bench.XXXXXX)
run_pid=""
watch_pid=""
sampler_pid=""
cleanup() {
  for pid in $sampler_pid $watch_pid $run_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  tools/kafka.sh stop --dir "$dir/broker" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
tools/kafka.sh start --dir "$dir/broker" >/dev/null
bootstrap=$(cat "$dir/broker/bootstrap")
for t in shipments.events.v1 customs.events.v1 latency.shipments latency.customs latency.alerts; do
  tools/kafka.sh topics --bootstrap "$bootstrap" create "$t" 8 retention.ms=-1 >/dev/null
done
common=(--brokers "$bootstrap" --set processing.guarantee="$guarantee")

# 1. The maximum rate, on a backlog.
if [[ -n ${LATENCY_RATE:-} ]]; then
  rate=$LATENCY_RATE
  fraction=given
  printf 'latency_bench: %s: producing %d events at %d/s (given, the maximum not measured)\n' \
    "$guarantee" "$events" "$rate" >&2
else
  "$B" gen --to-kafka --brokers "$bootstrap" --scenario demo --events "$preload" --keep-partitions 2>&1 | grep "produced" >&2
  start=$(python3 -c 'import time; print(time.time())')
  "$B" run "${common[@]}" --until-idle --set application_id=latency-max --set state.dir="$dir/state-max" \
    --set metrics.bind=127.0.0.1:0 >/dev/null 2>&1
  max_rate=$(python3 -c "import time; print($preload / (time.time() - $start))")
  rate=$(python3 -c "print(round($max_rate * $fraction))")
  printf 'latency_bench: %s: %.0f events/s on a backlog of %d; producing %d events at %d/s (%s of it)\n' \
    "$guarantee" "$max_rate" "$preload" "$events" "$rate" "$fraction" >&2
fi

# 2. A run following a steady stream, and a read_committed consumer of its alerts.
# GET of the run's endpoint PATH; fails (exit 1) unless it answers 200.
get() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "http://127.0.0.1:$port$1" 2>/dev/null; }
# The consumer lag summed over the input partitions, and over the repartition
# partitions; nothing when /metrics does not answer.
lags() {
  { get /metrics || true; } | awk '/^shortfall_consumer_lag_records/ {
    n++; if ($0 ~ /repartition/) r += $2; else i += $2 } END {if (n) print i + 0, r + 0}'
}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# shellcheck disable=SC2086  # LATENCY_RUN_ARGS is split into flags on purpose
"$B" run "${common[@]}" --set application_id=latency --set state.dir="$dir/state" \
  --set topics.shipments=latency.shipments --set topics.customs=latency.customs --set topics.alerts=latency.alerts \
  --set metrics.bind="127.0.0.1:$port" ${LATENCY_RUN_ARGS:-} >"$dir/run.log" 2>&1 &
run_pid=$!
for _ in $(seq 1 120); do
  get /readyz >/dev/null && break
  sleep 0.5
done
get /readyz >/dev/null || { cat "$dir/run.log" >&2; exit 1; }
build/bench/alert_latency watch --brokers "$bootstrap" --topic latency.alerts --out "$dir/receipts" \
  2>"$dir/watch.log" &
watch_pid=$!
(while true; do lags; sleep 0.5; done) >"$dir/lag" &
sampler_pid=$!
"$B" gen --to-kafka --brokers "$bootstrap" --scenario demo --events "$events" --rate "$rate" --wall-clock-timestamps \
  --shipments-topic latency.shipments --customs-topic latency.customs 2>&1 | grep "produced" >&2
produced_at=$(date +%s.%N)
lag_at_end=$(lags | awk '{print $1 + $2}')
kill "$sampler_pid"
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=""

# 3. Caught up (every lag 0 twice in a row), then the numbers.
zero=0
caught_up_after=""
for _ in $(seq 1 240); do
  values=$({ get /metrics || true; } | { grep '^shortfall_consumer_lag_records' || true; } | awk '{print $2}' | sort -u)
  if [[ $values == "0" ]]; then zero=$((zero + 1)); else zero=0; fi
  [[ $zero -eq 1 ]] && caught_up_after=$(python3 -c "import time; print('%.1f' % (time.time() - $produced_at))")
  [[ $zero -ge 2 ]] && break
  sleep 0.5
done
[[ $zero -ge 2 ]] || { echo "latency_bench: the run did not catch up within 2 min of the last publish" >&2; exit 1; }
sleep 2  # the last commit's observation, and its alerts reaching the consumer
python3 - "$dir/lag" "$lag_at_end" "$caught_up_after" "$rate" <<'PY'
import statistics, sys
samples = [[int(float(x)) for x in l.split()] for l in open(sys.argv[1]) if l.strip()]
rate = float(sys.argv[4])
if not samples:
    sys.exit("latency_bench: no lag sampled while producing")
lags = [i + r for i, r in samples]
print("consumer lag while producing (total over partitions, %d samples every 0.5 s): median %d, max %d records"
      " (%.0f ms, %.0f ms of input at the rate)" % (len(lags), statistics.median(lags), max(lags),
      1000 * statistics.median(lags) / rate, 1000 * max(lags) / rate))
print("  of it the repartition topic (stage two): median %d, max %d records" % (
      statistics.median(r for i, r in samples), max(r for i, r in samples)))
print("  at the last publish: %s records; every lag 0 %s s after it" % (sys.argv[2] or "?", sys.argv[3]))
PY
metrics=$(get /metrics)
kill "$watch_pid"
wait "$watch_pid" || { cat "$dir/watch.log" >&2; exit 1; }
watch_pid=""
produced_alerts=$(awk '/^shortfall_alerts_total/ {s += $2} END {print s + 0}' <<<"$metrics")
received_alerts=$(wc -l <"$dir/receipts")
python3 -c '
import re, sys
rate, guarantee, fraction = sys.argv[1], sys.argv[2], sys.argv[3]
text = sys.stdin.read()
def histogram(name, labels):
    buckets = []
    for m in re.finditer(name + r"_bucket\{" + labels + r"le=\"([^\"]+)\"\} (\S+)", text):
        buckets.append((float("inf") if m.group(1) == "+Inf" else float(m.group(1)), float(m.group(2))))
    return sorted(buckets)
def quantile(buckets, q):
    rank, lo, below = q * buckets[-1][1], 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return lo
            return lo + (le - lo) * (rank - below) / max(count - below, 1e-9)
        lo, below = le, count
    return lo
state = histogram("shortfall_processing_latency_seconds", r"[^}]*stage=\"state\",")
if not state or state[-1][1] == 0:
    sys.exit("latency_bench: no latency observed")
top = next(le for le, count in state if count >= state[-1][1])
p99 = quantile(state, 0.99)
print("publish -> state committed, %s, at %s events/s (per task and commit, the oldest record it covers):" % (guarantee, rate))
print("  observations %d   p50 %.0f ms   p99 %.0f ms   largest <= %s" % (
    state[-1][1], quantile(state, 0.5) * 1000, p99 * 1000, "%.0f ms" % (top * 1000) if top != float("inf") else "+Inf"))
commits = histogram("shortfall_commit_duration_seconds", "")
if commits and commits[-1][1] > 0:
    print("  commits %d, each taking p50 %.0f ms   p99 %.0f ms" % (
        commits[-1][1], quantile(commits, 0.5) * 1000, quantile(commits, 0.99) * 1000))
print("  aim: p99 <= 250 ms at half the maximum rate (commit interval 100 ms): %s" % (
    ("met" if p99 <= 0.25 else "MISSED") if fraction != "given" and float(fraction) == 0.5 else "not judged (%s)" % (
        "rate given" if fraction == "given" else "at " + fraction + " of the maximum")))
' "$rate" "$guarantee" "$fraction" <<<"$metrics"
echo "alert records: $produced_alerts produced (shortfall_alerts_total), $received_alerts received read_committed"
[[ $received_alerts -eq $produced_alerts ]] || echo "latency_bench: WARNING: received and produced alert counts differ" >&2
build/bench/alert_latency measure --brokers "$bootstrap" --shipments-topic latency.shipments \
  --customs-topic latency.customs --receipts "$dir/receipts" ${LATENCY_LIST:+--list}
