#!/usr/bin/env python3
"""Two `shortfall run` instances in one group on a real Kafka broker.

Instance A starts alone; B joins and takes part of the partitions; more
input arrives; B leaves with a clean stop and A takes its partitions back
(rebuilding their state from the repartition topic); more input arrives.
A's final totals must equal `shortfall replay` of the whole scenario, and B
must have processed input while it was there.

Usage: scale_out.py SHORTFALL BOOTSTRAP_FILE [--events N]
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from kafka_testlib import (committed_offsets, create_topics, gen_and_replay, produce_args,  # noqa: E402
                           replay_totals, run_settings, run_totals, sh, topic_names)


def group_lag(bootstrap, group):
    """Total lag of the group over all its partitions, or None while unknown."""
    offsets = committed_offsets(bootstrap, group)
    if not offsets or any(c is None for c, _ in offsets.values()):
        return None
    return sum(end - c for c, end in offsets.values())


def wait_for_lag_zero(bootstrap, group, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if group_lag(bootstrap, group) == 0:
            return True
        time.sleep(1)
    return False


def main():
    p = argparse.ArgumentParser()
    p.add_argument("shortfall")
    p.add_argument("bootstrap_file")
    p.add_argument("--events", type=int, default=30000)
    a = p.parse_args()
    bootstrap = open(a.bootstrap_file).read().strip()
    app = "scale%d-%d" % (os.getpid(), int(time.time()))
    topics = topic_names(app)
    create_topics(bootstrap, [topics["shipments"], topics["customs"]], 8)
    with tempfile.TemporaryDirectory() as tmp:
        gen = [a.shortfall, "gen", "--seed", "33", "--events", str(a.events), "--partitions", "8",
               "--malformed-rate", "0.005", "--late-rate", "0.003"]
        _, replay_csv, _ = gen_and_replay(a.shortfall, gen, tmp)

        def produce(first, last):
            sh(produce_args(gen, bootstrap, topics, first, last))

        def start(name):
            cmd = ([a.shortfall, "run", "--brokers", bootstrap, "--totals-csv", os.path.join(tmp, name + ".csv")] +
                   run_settings(app, topics, os.path.join(tmp, "state-" + name)) +
                   ["--set", "kafka.consumer.session.timeout.ms=6000",
                    "--set", "kafka.consumer.heartbeat.interval.ms=500"])
            return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        third = a.events // 3
        produce(0, third)
        inst_a = start("a")
        ok = wait_for_lag_zero(bootstrap, app)
        inst_b = start("b")
        time.sleep(8)  # B joins; the cooperative rebalance hands it partitions
        produce(third, 2 * third)
        ok = ok and wait_for_lag_zero(bootstrap, app)
        inst_b.send_signal(signal.SIGTERM)
        _, b_err = inst_b.communicate(timeout=60)
        time.sleep(8)  # A takes B's partitions back
        produce(2 * third, a.events)
        ok = ok and wait_for_lag_zero(bootstrap, app)
        inst_a.send_signal(signal.SIGTERM)
        _, a_err = inst_a.communicate(timeout=60)

        problems = []
        if not ok:
            problems.append("the group never caught up")
        if inst_a.returncode != 0 or inst_b.returncode != 0:
            problems.append("exit codes: A %s, B %s" % (inst_a.returncode, inst_b.returncode))
        b_records = re.search(r"(\d+) input records", b_err)
        if not b_records or int(b_records.group(1)) == 0:
            problems.append("B processed no input while it was in the group")
        want = replay_totals(replay_csv)
        got = run_totals([os.path.join(tmp, "a.csv")])
        for key in sorted(set(want) | set(got)):
            if want.get(key) != got.get(key):
                problems.append("%s: A %s, replay %s" % (key, got.get(key), want.get(key)))
        if problems:
            print("\n".join(problems[:30]))
            print("--- A\n" + a_err[-3000:] + "\n--- B\n" + b_err[-3000:])
            return 1
        print("scale-out matches replay: %d series; B processed %s input records before leaving"
              % (len(want), b_records.group(1)))
        return 0


if __name__ == "__main__":
    sys.exit(main())
