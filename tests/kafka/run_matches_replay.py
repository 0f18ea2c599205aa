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
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
KAFKA_SH = os.path.join(HERE, "..", "..", "tools", "kafka.sh")
SCALES = {"gross_weight_kg": 1000, "declared_value_usd": 10000, "quantity_kg": 1000, "quantity_pcs": 1000,
          "quantity_pairs": 1000, "quantity_l": 1000, "quantity_m3": 1000}


def sh(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def read_totals(path, out):
    """A --totals-csv (exact decimals; replay and run write the same format)
    into out: {(group, corridor): {column: fixed-point int}}."""
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            key = (row.pop("group"), row.pop("corridor"))
            assert key not in out, "series %s twice (on two instances?)" % (key,)
            out[key] = {k: int(Decimal(v) * SCALES.get(k, 1)) for k, v in row.items()}
    return out


def replay_totals(path):
    return read_totals(path, {})


def run_totals(paths):
    """The totals of one or more instances, merged: each series is on one."""
    out = {}
    for path in paths:
        read_totals(path, out)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("shortfall")
    p.add_argument("bootstrap_file")
    p.add_argument("--events", default="40000")
    p.add_argument("--instances", type=int, default=1)
    a = p.parse_args()
    bootstrap = open(a.bootstrap_file).read().strip()
    app = "t%d-%d" % (os.getpid(), int(time.time()))
    topics = {k: "%s.%s" % (app, k) for k in ("shipments", "customs", "alerts", "dlq")}
    env = dict(os.environ, KAFKA_BOOTSTRAP=bootstrap)
    for t in ("shipments", "customs"):
        # The scenario's record timestamps are months old: time-based retention would delete them.
        sh([KAFKA_SH, "topics", "--bootstrap", bootstrap, "create", topics[t], "8", "retention.ms=-1"], env=env)

    with tempfile.TemporaryDirectory() as tmp:
        events = os.path.join(tmp, "events.pb")
        gen = [a.shortfall, "gen", "--seed", "21", "--events", a.events, "--partitions", "8",
               "--malformed-rate", "0.01", "--late-rate", "0.005"]
        sh(gen + ["--out", events])
        produced = sh(gen + ["--to-kafka", "--brokers", bootstrap, "--keep-partitions",
                             "--shipments-topic", topics["shipments"], "--customs-topic", topics["customs"]])
        replay = sh([a.shortfall, "replay", "--input", events, "--print", "none",
                     "--totals-csv", os.path.join(tmp, "replay.csv")])

        sets = ["--set", "application_id=" + app, "--set", "repartition.partitions=4"]
        for t in ("shipments", "customs", "alerts", "dlq"):
            sets += ["--set", "topics.%s=%s" % (t, topics[t])]
        runs, csvs = [], []
        for i in range(a.instances):  # each instance has its own state directory, as on its own machine
            csvs.append(os.path.join(tmp, "run%d.csv" % i))
            cmd = [a.shortfall, "run", "--brokers", bootstrap, "--until-idle", "--totals-csv", csvs[-1],
                   "--set", "state.dir=" + os.path.join(tmp, "state%d" % i),
                   "--set", "metrics.bind=127.0.0.1:0"] + sets
            runs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        logs = []
        for r in runs:
            out, err = r.communicate(timeout=300)
            logs.append(err)
            if r.returncode != 0:
                print(err[-3000:])
                print("shortfall run exited %d" % r.returncode)
                return 1
        want = replay_totals(os.path.join(tmp, "replay.csv"))
        got = run_totals(csvs)

        problems = []
        for key in sorted(set(want) | set(got)):
            if want.get(key) != got.get(key):
                problems.append("%s: run %s, replay %s" % (key, got.get(key), want.get(key)))

        # Every input record accounted for: accepted (in state) + DLQ = input.
        dlq = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", topics["dlq"], "-e", "-q", "-f", "%h\n"],
                             capture_output=True, text=True, timeout=120)
        reasons = Counter(m.group(1) for m in re.finditer(r"shortfall\.reason=([a-z_]+)", dlq.stdout))
        m = re.search(r"records (\d+)  accepted (\d+)  invalid (\d+)  late (\d+)", replay.stdout)
        records, accepted, invalid, late = map(int, m.groups())
        want_reasons = Counter(dict((k, int(v)) for k, v in re.findall(r"^  ([a-z_]+) (\d+)$", replay.stdout, re.M)))
        if late:
            want_reasons["late"] = late
        if reasons != want_reasons:
            problems.append("DLQ reasons %s, replay %s" % (dict(reasons), dict(want_reasons)))
        run_counts = [re.search(r"(\d+) input records \((\d+) accepted, (\d+) invalid, (\d+) late\)", l) for l in logs]
        total_in = sum(int(c.group(1)) for c in run_counts)
        total_accepted = sum(int(c.group(2)) for c in run_counts)
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
