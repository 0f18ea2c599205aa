#!/usr/bin/env python3
"""`shortfall run` on a real Kafka broker computes what `shortfall replay` does.

Generates a scenario twice from one seed — to a file and to fresh Kafka
topics, keeping the generator's partitions — runs `shortfall run --until-idle`
against the broker (optionally as two instances in one group), replays the
file, and compares every total of every series exactly. Then reads the
dead-letter topic with kcat and checks that every input record is accounted
for: accepted + DLQ = input, and the DLQ's reasons match replay's counts.

Usage: run_matches_replay.py SHORTFALL BOOTSTRAP_FILE [--events N] [--instances 1|2]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from kafka_testlib import (create_topics, gen_and_replay, produce_args, read_dlq, replay_counts,  # noqa: E402
                           replay_totals, run_counts, run_settings, run_totals, sh, topic_names)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("shortfall")
    p.add_argument("bootstrap_file")
    p.add_argument("--events", default="40000")
    p.add_argument("--instances", type=int, default=1)
    a = p.parse_args()
    bootstrap = open(a.bootstrap_file).read().strip()
    app = "t%d-%d" % (os.getpid(), int(time.time()))
    topics = topic_names(app)
    create_topics(bootstrap, [topics["shipments"], topics["customs"]], 8)

    with tempfile.TemporaryDirectory() as tmp:
        gen = [a.shortfall, "gen", "--seed", "21", "--events", a.events, "--partitions", "8",
               "--malformed-rate", "0.01", "--late-rate", "0.005"]
        _, replay_csv, replay_out = gen_and_replay(a.shortfall, gen, tmp)
        produced = sh(produce_args(gen, bootstrap, topics))

        runs, csvs = [], []
        for i in range(a.instances):  # each instance has its own state directory, as on its own machine
            csvs.append(os.path.join(tmp, "run%d.csv" % i))
            cmd = [a.shortfall, "run", "--brokers", bootstrap, "--until-idle", "--totals-csv", csvs[-1]
                   ] + run_settings(app, topics, os.path.join(tmp, "state%d" % i))
            runs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        logs = []
        for r in runs:
            out, err = r.communicate(timeout=300)
            logs.append(err)
            if r.returncode != 0:
                print(err[-3000:])
                print("shortfall run exited %d" % r.returncode)
                return 1
        want = replay_totals(replay_csv)
        got = run_totals(csvs)

        problems = []
        for key in sorted(set(want) | set(got)):
            if want.get(key) != got.get(key):
                problems.append("%s: run %s, replay %s" % (key, got.get(key), want.get(key)))

        # Every input record accounted for: accepted (in state) + DLQ = input.
        reasons = Counter(r["reason"] for r in read_dlq(bootstrap, topics["dlq"]))
        replayed, want_reasons = replay_counts(replay_out)
        records = replayed["records"]
        if reasons != want_reasons:
            problems.append("DLQ reasons %s, replay %s" % (dict(reasons), dict(want_reasons)))
        counts = [run_counts(log) for log in logs]
        total_in = sum(c["records"] for c in counts)
        total_accepted = sum(c["accepted"] for c in counts)
        if total_in != records or total_accepted + sum(reasons.values()) != records:
            problems.append("accounting: input %d, run read %d, accepted %d + DLQ %d" %
                            (records, total_in, total_accepted, sum(reasons.values())))
        if len(want) < 20 or not reasons:
            problems.append("scenario too small to test anything")
        if problems:
            print("\n".join(problems[:40]))
            for l in logs:
                print(l[-2000:])
            return 1
        print("run on Kafka (%d instance(s)) matches replay: %d series, %d records, %d accepted, DLQ %s; %s"
              % (a.instances, len(want), records, total_accepted, dict(reasons), produced.stderr.strip()))
        return 0


if __name__ == "__main__":
    sys.exit(main())
