#!/usr/bin/env python3
"""`shortfall run` stopped with SIGTERM and started again resumes exactly.

One scenario (`gen --seed S --events N --partitions 4`, the generator's
default malformed and late rates) is written to a file once, for
`shortfall replay`, and produced to fresh topics in two slices with
`gen --to-kafka --keep-partitions --from-record/--to-record`: the generator
is deterministic (same seed, same records: kafka_run_matches_replay relies on
that too), so the two slices are exactly the file's records [0, N/2) and
[N/2, N), each on the partition the file gives it.

1. Produce the first half. Start `shortfall run` (no --until-idle) with a
   state dir and a config file. Wait until the group's committed offsets on
   every input partition reach the end of the first half
   (ConsumerGroupCommand, as kafka_scale_out_and_back does), then SIGTERM it:
   it must exit 0 within 30 s, having read exactly the first half.
   The stop comes within seconds of catching up, before the 30 s after
   which a caught-up input partition declares itself idle (docs/runtime.md,
   rule 5): this test is about a restart, not about idle sources changing
   what stage two may close.
2. Read the DLQ: it holds exactly run one's invalid + late records.
3. Produce the second half; `shortfall run --until-idle --totals-csv` with the
   same config and state dir. Its totals (restored stage-two state plus the
   second half) must equal `replay --totals-csv` of the whole file exactly:
   nothing lost, nothing counted twice.
4. Accounting: run one's + run two's logged input records = N, accepted /
   invalid / late sums = replay's; the DLQ holds exactly invalid + late of
   both runs, by reason equal to replay's, each with shortfall.reason and
   shortfall.source.* headers, and no source record twice; neither run
   counted a contribution as too late at stage two.

Usage: restart_resumes.py SHORTFALL BOOTSTRAP_FILE [--events N] [--seed S]
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from kafka_testlib import (STOP_TIMEOUT, LoggedRun, at_end, column_diff, committed_offsets,  # noqa: E402
                           create_topics, gen_and_replay, kill_all, parse_run_log, produce_args, read_dlq,
                           replay_counts, replay_totals, run_totals, sh, topic_names, write_config)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("shortfall")
    p.add_argument("bootstrap_file")
    p.add_argument("--events", type=int, default=60000)
    p.add_argument("--seed", default="47")
    a = p.parse_args()
    bootstrap = open(a.bootstrap_file).read().strip()
    app = "restart%d-%d" % (os.getpid(), int(time.time()))
    topics = topic_names(app)
    inputs = {topics["shipments"], topics["customs"]}
    create_topics(bootstrap, [topics["shipments"], topics["customs"]], 4)

    tmp = tempfile.mkdtemp(prefix="shortfall-restart-")
    children = []
    t_start = time.time()
    try:
        gen = [a.shortfall, "gen", "--seed", a.seed, "--events", str(a.events), "--partitions", "4"]
        _, replay_csv, replay_out = gen_and_replay(a.shortfall, gen, tmp)
        counts, want_reasons = replay_counts(replay_out)
        records, accepted, invalid, late = (counts[k] for k in ("records", "accepted", "invalid", "late"))

        def produce(first, last):
            sh(produce_args(gen, bootstrap, topics, first, last))

        config = write_config(os.path.join(tmp, "shortfall.yaml"), app, topics, os.path.join(tmp, "state"))

        def start(name, extra):
            return LoggedRun(name, [a.shortfall, "run", "--config", config, "--brokers", bootstrap] + extra,
                             tmp, children)

        problems = []
        half = a.events // 2
        produce(0, half)

        # --- run one: until the group has committed the first half, then SIGTERM.
        run1 = start("run1", [])
        deadline = time.time() + 90
        caught_up = False
        offsets = {}
        while time.time() < deadline and run1.alive():
            offsets = committed_offsets(bootstrap, app, inputs)
            if at_end(offsets, 8, half):
                caught_up = True
                break
            time.sleep(0.5)
        if not caught_up:
            print("run one never committed the first half (exit code %s); last offsets %s"
                  % (run1.proc.poll(), offsets))
            print(run1.log()[-3000:])
            return 1
        t_term = time.time()
        run1.proc.send_signal(signal.SIGTERM)
        try:
            run1.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            problems.append("run one still running %d s after SIGTERM" % STOP_TIMEOUT)
        stop_seconds = time.time() - t_term
        err1 = run1.log()
        if run1.proc.returncode != 0:
            problems.append("run one exited %s after SIGTERM (want 0)" % run1.proc.returncode)
        c1 = parse_run_log("run one", err1, problems)
        if c1 and c1["records"] != half:
            problems.append("run one read %d input records, want exactly the first half, %d" % (c1["records"], half))
        dlq1 = read_dlq(bootstrap, topics["dlq"])
        if c1 and len(dlq1) != c1["invalid"] + c1["late"]:
            problems.append("after run one the DLQ holds %d records, run one logged %d invalid + %d late"
                            % (len(dlq1), c1["invalid"], c1["late"]))

        # --- run two: the second half, until idle, same config and state dir.
        produce(half, a.events)
        run2_csv = os.path.join(tmp, "run2.csv")
        run2 = start("run2", ["--until-idle", "--totals-csv", run2_csv])
        try:
            run2.proc.wait(timeout=240)
        except subprocess.TimeoutExpired:
            problems.append("run two (--until-idle) did not finish in 240 s")
        err2 = run2.log()
        if run2.proc.returncode != 0:
            problems.append("run two exited %s" % run2.proc.returncode)
        c2 = parse_run_log("run two", err2, problems)

        if os.path.exists(run2_csv):
            want = replay_totals(replay_csv)
            got = run_totals([run2_csv])
            for key in sorted(set(want) | set(got)):
                if want.get(key) != got.get(key):
                    diff = column_diff(want.get(key) or {}, got.get(key) or {})
                    problems.append("%s: {column: (run, replay)} %s" % (key, diff))
            if len(want) < 20:
                problems.append("scenario too small to test anything: %d series" % len(want))
        else:
            problems.append("run two wrote no totals CSV")

        # --- every input record accounted for.
        dlq = read_dlq(bootstrap, topics["dlq"])
        reasons = Counter(r["reason"] for r in dlq)
        if reasons != want_reasons:
            problems.append("DLQ reasons %s, replay %s" % (dict(reasons), dict(want_reasons)))
        missing = [r for r in dlq if None in r.values()]
        if missing:
            problems.append("%d DLQ records lack shortfall.* headers, e.g. %s" % (len(missing), missing[0]))
        sources = Counter((r["source.topic"], r["source.partition"], r["source.offset"]) for r in dlq)
        twice = [k for k, n in sources.items() if n > 1]
        if twice:
            problems.append("%d input records are in the DLQ more than once, e.g. %s" % (len(twice), twice[:3]))
        if not reasons.get("unparseable") or not reasons.get("late"):
            problems.append("the scenario has no unparseable or no late records: %s" % dict(reasons))
        if c1 and c2:
            total = {k: c1[k] + c2[k] for k in c1}
            if (total["records"], total["accepted"], total["invalid"], total["late"]) != \
                    (records, accepted, invalid, late):
                problems.append("runs read %(records)d records: %(accepted)d accepted, %(invalid)d invalid, "
                                "%(late)d late" % total +
                                "; replay %d: %d accepted, %d invalid, %d late" % (records, accepted, invalid, late))
            if total["accepted"] + len(dlq) != records:
                problems.append("accepted %d + DLQ %d != %d produced records" % (total["accepted"], len(dlq), records))
            if len(dlq) != total["invalid"] + total["late"]:
                problems.append("DLQ holds %d records, the runs logged %d invalid + %d late"
                                % (len(dlq), total["invalid"], total["late"]))
            if total["late_stage_two"]:
                problems.append("runs counted %d contributions too late at stage two (run one %d, run two %d)"
                                % (total["late_stage_two"], c1["late_stage_two"], c2["late_stage_two"]))

        if problems:
            print("\n".join(problems[:40]))
            print("--- run one\n" + err1[-3000:] + "\n--- run two\n" + err2[-3000:])
            return 1
        print("restart resumes exactly: %d series; run one read %d records and stopped %.1f s after SIGTERM "
              "(DLQ %d), run two read %d; %d accepted + DLQ %d = %d records, DLQ %s; %.0f s in all"
              % (len(want), c1["records"], stop_seconds, len(dlq1), c2["records"], accepted, len(dlq), records,
                 dict(reasons), time.time() - t_start))
        return 0
    finally:
        kill_all(children)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
