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
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run_matches_replay import KAFKA_SH, replay_totals, run_totals, sh  # noqa: E402

STOP_TIMEOUT = 30  # seconds a SIGTERMed `shortfall run` may take to exit
RUN_LOG = re.compile(r"(\d+) input records \((\d+) accepted, (\d+) invalid, (\d+) late\), \d+ repartition "
                     r"records sent, \d+ applied \((\d+) too late for their window\)")


def committed_offsets(bootstrap, group, topics):
    """{(topic, partition): (committed, log_end)} for `topics`; committed is None when '-'."""
    out = subprocess.run([KAFKA_SH, "run", "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                          "--bootstrap-server", bootstrap, "--describe", "--group", group],
                         capture_output=True, text=True, timeout=60).stdout
    result = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 6 and f[0] == group and f[1] in topics:
            result[(f[1], int(f[2]))] = (None if f[3] == "-" else int(f[3]), int(f[4]))
    return result


def read_dlq(bootstrap, topic):
    """Every DLQ record's shortfall.* headers as {name without "shortfall.": value} (None when absent)."""
    r = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", topic, "-e", "-q", "-J"],
                       capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("kcat on the DLQ failed: " + r.stderr.decode(errors="replace"))
    records = []
    for line in r.stdout.splitlines():
        if not line.strip():
            continue
        flat = json.loads(line.decode("utf-8", errors="replace")).get("headers") or []
        headers = dict(zip(flat[0::2], flat[1::2]))
        records.append({k: headers.get("shortfall." + k)
                        for k in ("reason", "detail", "source.topic", "source.partition", "source.offset")})
    return records


def parse_run_log(name, err, problems):
    m = RUN_LOG.search(err)
    if not m:
        problems.append("%s: no final counts line in its log" % name)
        return None
    return dict(zip(("records", "accepted", "invalid", "late", "late_stage_two"), map(int, m.groups())))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("shortfall")
    p.add_argument("bootstrap_file")
    p.add_argument("--events", type=int, default=60000)
    p.add_argument("--seed", default="47")
    a = p.parse_args()
    bootstrap = open(a.bootstrap_file).read().strip()
    app = "restart%d-%d" % (os.getpid(), int(time.time()))
    topics = {k: "%s.%s" % (app, k) for k in ("shipments", "customs", "alerts", "dlq")}
    inputs = {topics["shipments"], topics["customs"]}
    for t in ("shipments", "customs"):
        sh([KAFKA_SH, "topics", "--bootstrap", bootstrap, "create", topics[t], "4", "retention.ms=-1"])

    tmp = tempfile.mkdtemp(prefix="shortfall-restart-")
    children = []
    t_start = time.time()
    try:
        events = os.path.join(tmp, "events.pb")
        gen = [a.shortfall, "gen", "--seed", a.seed, "--events", str(a.events), "--partitions", "4"]
        sh(gen + ["--out", events])
        replay = sh([a.shortfall, "replay", "--input", events, "--print", "none",
                     "--totals-csv", os.path.join(tmp, "replay.csv")])
        m = re.search(r"records (\d+)  accepted (\d+)  invalid (\d+)  late (\d+)", replay.stdout)
        records, accepted, invalid, late = map(int, m.groups())
        want_reasons = Counter({k: int(v) for k, v in re.findall(r"^  ([a-z_]+) (\d+)$", replay.stdout, re.M)})
        if late:
            want_reasons["late"] = late

        def produce(first, last):
            sh(gen + ["--to-kafka", "--brokers", bootstrap, "--keep-partitions", "--from-record", str(first),
                      "--to-record", str(last), "--shipments-topic", topics["shipments"],
                      "--customs-topic", topics["customs"]])

        config = os.path.join(tmp, "shortfall.yaml")
        with open(config, "w") as f:
            f.write("application_id: %s\n"
                    "topics:\n  shipments: %s\n  customs: %s\n  alerts: %s\n  dlq: %s\n"
                    "repartition:\n  partitions: 4\n"
                    "state:\n  dir: %s\n"
                    "metrics:\n  bind: 127.0.0.1:0\n"
                    % (app, topics["shipments"], topics["customs"], topics["alerts"], topics["dlq"],
                       os.path.join(tmp, "state")))

        def start(name, extra):
            log = open(os.path.join(tmp, name + ".log"), "w+")
            proc = subprocess.Popen([a.shortfall, "run", "--config", config, "--brokers", bootstrap] + extra,
                                    stdout=subprocess.DEVNULL, stderr=log, text=True)
            children.append(proc)
            return proc, log

        def log_text(log):
            log.flush()
            log.seek(0)
            return log.read()

        problems = []
        half = a.events // 2
        produce(0, half)

        # --- run one: until the group has committed the first half, then SIGTERM.
        run1, log1 = start("run1", [])
        deadline = time.time() + 90
        caught_up = False
        offsets = {}
        while time.time() < deadline and run1.poll() is None:
            offsets = committed_offsets(bootstrap, app, inputs)
            if (len(offsets) == 8 and sum(end for _, end in offsets.values()) == half
                    and all(c == end for c, end in offsets.values())):
                caught_up = True
                break
            time.sleep(0.5)
        if not caught_up:
            print("run one never committed the first half (exit code %s); last offsets %s"
                  % (run1.poll(), offsets))
            print(log_text(log1)[-3000:])
            return 1
        t_term = time.time()
        run1.send_signal(signal.SIGTERM)
        try:
            run1.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            problems.append("run one still running %d s after SIGTERM" % STOP_TIMEOUT)
        stop_seconds = time.time() - t_term
        err1 = log_text(log1)
        if run1.returncode != 0:
            problems.append("run one exited %s after SIGTERM (want 0)" % run1.returncode)
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
        run2, log2 = start("run2", ["--until-idle", "--totals-csv", run2_csv])
        try:
            run2.wait(timeout=240)
        except subprocess.TimeoutExpired:
            problems.append("run two (--until-idle) did not finish in 240 s")
        err2 = log_text(log2)
        if run2.returncode != 0:
            problems.append("run two exited %s" % run2.returncode)
        c2 = parse_run_log("run two", err2, problems)

        if os.path.exists(run2_csv):
            want = replay_totals(os.path.join(tmp, "replay.csv"))
            got = run_totals([run2_csv])
            for key in sorted(set(want) | set(got)):
                if want.get(key) != got.get(key):
                    w, g = want.get(key) or {}, got.get(key) or {}
                    diff = {k: (g.get(k), w.get(k)) for k in sorted(set(w) | set(g)) if g.get(k) != w.get(k)}
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
        for proc in children:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
