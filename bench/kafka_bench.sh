#!/usr/bin/env bash
# shortfall against the limit, on a real Kafka broker: starts the test broker
# (tools/kafka.sh), loads a generated scenario once (default 5M events, 8
# partitions per input topic), then RUNS times each (default 3):
#   - the limit: bench/kafka_limit, a bare librdkafka batch consumer that
#     only counts the records of the two input topics;
#   - shortfall run --until-idle, at_least_once, from the beginning to
#     caught up and committed (fresh group and state each run; its wall time
#     includes joining the group and the ~3 s it takes to see it is idle);
#   - the same with processing.guarantee=exactly_once;
#   - the operator core alone: shortfall replay over the same events in a
#     file (gen --out with the same seed and count: the same records), for
#     the CPU cost without Kafka; its record counts (accepted, invalid,
#     late) must equal the first shortfall run's, or the bench fails;
#   - the Kafka Streams reference (bench/kstreams: the same job written with
#     Kafka Streams 4.4.0, built by bench/kstreams/build.sh) with
#     at_least_once and exactly_once_v2, until idle as well (it stops 1 s
#     after its consumers report lag 0 on every partition and nothing more
#     is processed, then closes, committing).
# Every run is timed by GNU time: wall, CPU = user + sys of the process (the
# JVM's JIT and GC threads included), peak RSS. Prints the medians — events/s,
# CPU seconds per million events, peak RSS — and the ratios shortfall / limit,
# exactly_once / at_least_once and shortfall / Kafka Streams per guarantee.
# Correctness: each run writes its all-time totals per (group, corridor)
# series and group total as CSV; every Kafka Streams run's must equal
# shortfall's first at_least_once run's to the last digit, and Kafka Streams
# must drop no contribution at its windows, or the bench fails.
#
# Kafka Streams settings: its defaults except num.stream.threads=2 (one per
# core here), auto.offset.reset=earliest and a window grace of
# KSTREAMS_GRACE_HOURS (default 87600 h, 10 years: as long as the backlog).
# With the 6 h of shortfall's allowed lateness it drops much of a backlog
# as too late: its stream time is per repartition task, and the upstream
# tasks that feed one run weeks to months of event time apart in a backfill
# (6 h: 87% of the contributions dropped at 200k events; 90 d: 60,358 of
# 1.25M at 1M events). shortfall closes windows on the minimum of its input
# partitions' watermarks and needs no more than its 6 h. Commit
# interval: Kafka Streams' defaults, 30 s at_least_once and 100 ms
# exactly_once_v2 (shortfall: 100 ms for both); KSTREAMS_MATCHED_COMMIT=1
# adds a Kafka Streams at_least_once row with commit.interval.ms=100. JVM:
# -Xmx1g (KSTREAMS_JAVA_OPTS), G1 (the JVM's default here).
# The machine is shared: compare ratios, not absolute numbers.
# Usage: bench/kafka_bench.sh [EVENTS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-5000000}
runs=${2:-3}
grace_hours=${KSTREAMS_GRACE_HOURS:-87600}
java_opts=${KSTREAMS_JAVA_OPTS:--Xmx1g}
tools/build.sh >/dev/null
B=build/pipeline/shortfall
L=build/bench/kafka_limit
ks_cp=$(bench/kstreams/build.sh)
dir=$(mktemp -d /tmp/shortfall-kafka-bench.XXXXXX)
cleanup() { tools/kafka.sh stop --dir "$dir/broker" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
# The records' timestamps are the events' publish times, which run months
# past the scenario's start (2026-01-05), at 5M events beyond today; Kafka 4
# refuses records more than an hour in the future (the whole batch fails,
# "an invalid record in the same batch"), in the input topics and in
# shortfall's and Kafka Streams' internal topics alike. And nothing is
# deleted for its age: most of those timestamps are months old.
tools/kafka.sh start --dir "$dir/broker" --prop log.message.timestamp.after.max.ms=9223372036854775807 \
  --prop log.retention.ms=-1 >/dev/null
bootstrap=$(cat "$dir/broker/bootstrap")
for t in shipments.events.v1 customs.events.v1; do
  tools/kafka.sh topics --bootstrap "$bootstrap" create "$t" 8 retention.ms=-1 >/dev/null
done
tools/kafka.sh topics --bootstrap "$bootstrap" create kstreams.dlq.v1 8 >/dev/null
echo "kafka_bench: producing $events events to $bootstrap" >&2
"$B" gen --to-kafka --brokers "$bootstrap" --events "$events" --keep-partitions 2>&1 | grep "produced" >&2
"$B" gen --events "$events" --out "$dir/events.pb" 2>/dev/null

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# wall_s cpu_s max_rss_kb of one command, from GNU time; its stdout and
# stderr are kept in $dir/last.out and $dir/last.err (stderr shown, and the
# bench stops, if it fails).
measure() {
  if ! /usr/bin/time -o "$dir/time" -f "%e %U %S %M" "$@" >"$dir/last.out" 2>"$dir/last.err"; then
    tail -n 30 "$dir/last.err" >&2
    echo "kafka_bench: failed: $*" >&2
    exit 1
  fi
  awk '{print $1, $2 + $3, $4}' "$dir/time"
}
# The Kafka Streams reference: NAME GUARANTEE [extra app args]; checks its
# totals against shortfall's and that it dropped nothing at its windows.
kstreams() {
  local name=$1 guarantee=$2; shift 2
  # shellcheck disable=SC2086
  measure java $java_opts -cp "$ks_cp" io.shortfall.bench.VolumesStreamsApp --bootstrap "$bootstrap" \
    --application-id "$name" --state-dir "$dir/$name" --guarantee "$guarantee" \
    --catalog catalog/critical_goods.csv --dlq-topic kstreams.dlq.v1 --grace-hours "$grace_hours" \
    --totals-csv "$dir/$name.csv" "$@"
  rm -rf "${dir:?}/$name"
  grep -m1 '^kstreams: [a-z_0-9]*, num.stream.threads' "$dir/last.err" >>"$dir/settings" || true
  local summary dropped
  summary=$(grep '^kstreams: idle' "$dir/last.err" || true)
  dropped=$(sed -n 's/.*, \([0-9]*\) dropped by Kafka Streams.*/\1/p' <<<"$summary")
  if [[ $dropped != 0 ]]; then
    echo "kafka_bench: $name dropped ${dropped:-an unknown number of} contributions at its windows: $summary" >&2
    exit 1
  fi
  if ! diff <(sort "$dir/totals-shortfall.csv") <(sort "$dir/$name.csv") >"$dir/diff"; then
    head -n 20 "$dir/diff" >&2
    echo "kafka_bench: $name's totals differ from shortfall's (lines above: < shortfall, > Kafka Streams)" >&2
    exit 1
  fi
  echo "$name: totals equal shortfall's, 0 dropped at its windows" >>"$dir/checks"
  [[ -s $dir/ks-summary ]] || echo "${summary#kstreams: idle; }" >"$dir/ks-summary"
}

: > "$dir/limit" ; : > "$dir/replay" ; : > "$dir/run" ; : > "$dir/eos"; : > "$dir/ks"; : > "$dir/ks-eos"; : > "$dir/ks-100ms"; : > "$dir/checks"; : > "$dir/settings"; : > "$dir/ks-summary"
for i in $(seq 1 "$runs"); do
  measure "$L" --brokers "$bootstrap" --topic shipments.events.v1 --topic customs.events.v1 >> "$dir/limit"
  measure "$B" replay --input "$dir/events.pb" --print none >> "$dir/replay"
  if [[ $i == 1 ]]; then grep -m1 '^records [0-9]* *accepted' "$dir/last.out" >"$dir/replay-summary" || true; fi
  measure "$B" run --brokers "$bootstrap" --until-idle --set application_id="bench$i" \
    --set state.dir="$dir/state$i" --set metrics.bind=127.0.0.1:0 --totals-csv "$dir/run$i.csv" >> "$dir/run"
  if [[ $i == 1 ]]; then
    cp "$dir/run1.csv" "$dir/totals-shortfall.csv"
    grep -m1 '^shortfall run: [0-9]* input records' "$dir/last.err" >"$dir/sf-summary" || true
    # replay and run must have read the same records and judged them alike.
    counts_run=$(sed -n 's/^shortfall run: \([0-9]*\) input records (\([0-9]*\) accepted, \([0-9]*\) invalid, \([0-9]*\) late).*/\1 \2 \3 \4/p' "$dir/sf-summary")
    counts_replay=$(sed -n 's/^records \([0-9]*\) *accepted \([0-9]*\) *invalid \([0-9]*\) *late \([0-9]*\).*/\1 \2 \3 \4/p' "$dir/replay-summary")
    if [[ -z $counts_run || $counts_run != "$counts_replay" ]]; then
      echo "kafka_bench: replay of the file and shortfall run differ (records accepted invalid late): replay '$counts_replay', run '$counts_run'" >&2
      exit 1
    fi
    echo "replay of the file: the same records, accepted, invalid and late as shortfall run ($counts_run)" >>"$dir/checks"
  fi
  measure "$B" run --brokers "$bootstrap" --until-idle --set application_id="bench-eos$i" \
    --set processing.guarantee=exactly_once \
    --set state.dir="$dir/state-eos$i" --set metrics.bind=127.0.0.1:0 >> "$dir/eos"
  rm -rf "$dir/state$i" "$dir/state-eos$i"
  kstreams "kstreams$i" at_least_once >> "$dir/ks"
  kstreams "kstreams-eos$i" exactly_once_v2 >> "$dir/ks-eos"
  if [[ ${KSTREAMS_MATCHED_COMMIT:-0} == 1 ]]; then
    kstreams "kstreams-100ms$i" at_least_once --commit-interval-ms 100 >> "$dir/ks-100ms"
  fi
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
report "shortfall replay (file)" "$dir/replay"
report "shortfall at_least_once" "$dir/run"
report "shortfall exactly_once" "$dir/eos"
report "kstreams at_least_once" "$dir/ks"
report "kstreams exactly_once_v2" "$dir/ks-eos"
[[ -s $dir/ks-100ms ]] && report "kstreams alo commit 100ms" "$dir/ks-100ms"
read -r lw lc < "$dir/limit.median"
read -r rw rc < "$dir/run.median"
read -r pw pc < "$dir/replay.median"
read -r ew ec < "$dir/eos.median"
read -r kw kc < "$dir/ks.median"
read -r kew kec < "$dir/ks-eos.median"
awk -v lw="$lw" -v rw="$rw" -v lc="$lc" -v rc="$rc" 'BEGIN {
  printf "ratio shortfall/limit: events/s %.2f (aim >= 0.7), events per CPU-second %.2f\n", lw / rw, lc / rc }'
awk -v rw="$rw" -v pw="$pw" -v rc="$rc" -v pc="$pc" 'BEGIN {
  printf "ratio replay/at_least_once: events/s %.2f, events per CPU-second %.2f (what Kafka, the hop and the commits add)\n", rw / pw, rc / pc }'
awk -v rw="$rw" -v ew="$ew" -v rc="$rc" -v ec="$ec" 'BEGIN {
  printf "ratio exactly_once/at_least_once: events/s %.2f, events per CPU-second %.2f\n", rw / ew, rc / ec }'
awk -v rw="$rw" -v kw="$kw" -v rc="$rc" -v kc="$kc" 'BEGIN {
  printf "ratio shortfall/Kafka Streams at_least_once: events/s %.2f, events per CPU-second %.2f (aim >= 3)\n", kw / rw, kc / rc }'
awk -v ew="$ew" -v kew="$kew" -v ec="$ec" -v kec="$kec" 'BEGIN {
  printf "ratio shortfall/Kafka Streams exactly_once: events/s %.2f, events per CPU-second %.2f (aim >= 3)\n", kew / ew, kec / ec }'
echo "Kafka Streams settings (JVM $java_opts, window grace ${grace_hours} h):"
sort -u "$dir/settings" | sed 's/^kstreams: /  /'
echo "checks (Kafka Streams totals against shortfall's first at_least_once run, $(wc -l <"$dir/totals-shortfall.csv") CSV lines):"
sed 's/^/  /' "$dir/checks"
echo "  first shortfall at_least_once run: $(sed 's/^shortfall run: //' "$dir/sf-summary")"
echo "  first Kafka Streams run: $(cat "$dir/ks-summary")"
