#!/usr/bin/env python3
"""`shortfall run` stops on signals as documented, on a real Kafka broker.

1. A ready run (its /readyz answered 200) gets SIGTERM while input is still
   arriving: it must exit 0 within processing.shutdown_timeout (30 s), having
   committed (its final counts line is logged) — a graceful stop.
2. A second run on the same state gets two SIGTERMs a few milliseconds apart:
   the second one exits the process at once, with status 130, whatever the
   first one was waiting for.

Usage: signals.py SHORTFALL BOOTSTRAP_FILE [--guarantee exactly_once|at_least_once]
"""
import argparse
import os
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from kafka_testlib import (LoggedRun, create_topics, http_get, kill_all, parse_run_log, produce_args,  # noqa: E402
                           run_settings, sh, topic_names, wait_for_metrics_base)

READY_TIMEOUT = 60       # s for a run to answer /readyz 200
GRACEFUL_TIMEOUT = 30    # processing.shutdown_timeout's default
AT_ONCE = 2.0            # s a second signal may take to end the process
PARTITIONS = 4


def start_ready(name, cmd, tmp, children):
    """A LoggedRun of `cmd` once its /readyz answers 200, or None (its log printed) if it never does."""
    run = LoggedRun(name, cmd, tmp, children)
    base = wait_for_metrics_base(run, READY_TIMEOUT)
    deadline = time.time() + READY_TIMEOUT
    while base and run.alive() and time.time() < deadline:
        if http_get(base + "/readyz")[0] == 200:
            return run
        time.sleep(0.2)
    print("the %s run never got ready (exit %s):\n%s" % (name, run.proc.poll(), run.log()[-3000:]))
    return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("shortfall")
    p.add_argument("bootstrap_file")
    p.add_argument("--guarantee", default="exactly_once", choices=("exactly_once", "at_least_once"))
    a = p.parse_args()
    bootstrap = open(a.bootstrap_file).read().strip()
    app = "signals%d-%d" % (os.getpid(), int(time.time()))
    topics = topic_names(app)
    create_topics(bootstrap, [topics["shipments"], topics["customs"]], PARTITIONS)
    tmp = tempfile.mkdtemp(prefix="shortfall-signals-")
    children = []
    problems = []
    try:
        gen = [a.shortfall, "gen", "--seed", "11", "--events", "40000", "--partitions", str(PARTITIONS)]
        sh(produce_args(gen, bootstrap, topics, 0, 20000))
        cmd = ([a.shortfall, "run", "--brokers", bootstrap, "--set", "processing.guarantee=" + a.guarantee] +
               run_settings(app, topics, os.path.join(tmp, "state"), PARTITIONS))

        # 1. One SIGTERM while the rest of the input arrives: a clean stop.
        first = start_ready("graceful", cmd, tmp, children)
        if first is None:
            return 1
        producer = LoggedRun("producer", produce_args(gen, bootstrap, topics, 20000, 40000, rate=10000), tmp,
                             children)
        time.sleep(0.5)
        t0 = time.time()
        first.proc.send_signal(signal.SIGTERM)
        try:
            first.proc.wait(timeout=GRACEFUL_TIMEOUT)
        except Exception:
            problems.append("one SIGTERM: still running after %d s" % GRACEFUL_TIMEOUT)
        graceful = time.time() - t0
        if first.proc.returncode != 0:
            problems.append("one SIGTERM: exit %s, want 0" % first.proc.returncode)
        counts = parse_run_log("the gracefully stopped run", first.log(), problems)
        producer.proc.wait(timeout=60)

        # 2. Two SIGTERMs: the second exits at once with 130.
        second = start_ready("twice", cmd, tmp, children)
        if second is None:
            return 1
        t0 = time.time()
        second.proc.send_signal(signal.SIGTERM)
        time.sleep(0.005)
        second.proc.send_signal(signal.SIGTERM)
        try:
            second.proc.wait(timeout=AT_ONCE)
        except Exception:
            problems.append("two SIGTERMs: still running after %.1f s" % AT_ONCE)
        at_once = time.time() - t0
        if second.proc.returncode != 130:
            problems.append("two SIGTERMs: exit %s, want 130" % second.proc.returncode)

        if problems:
            print("\n".join(problems))
            print("--- graceful\n" + first.log()[-2000:] + "\n--- twice\n" + second.log()[-2000:])
            return 1
        print("signals (%s): one SIGTERM exited 0 after %.2f s having read %d records; two SIGTERMs exited 130 "
              "after %.3f s" % (a.guarantee, graceful, counts["records"], at_once))
        return 0
    finally:
        kill_all(children)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
