#!/usr/bin/env python3
"""`shortfall run` rides out a broker outage (the broker stopped for 30 s
mid-stream and restarted): it reports not ready, keeps its state, resumes
without loss or duplicates, and never exits on its own.

The test starts its own broker (`tools/kafka.sh start --dir <tmp>`): it stops
and resumes that broker, so it must not be the shared ctest fixture's.

One scenario (`gen --seed S --events N --partitions 4`) is written to a file
for `replay --totals-csv` and produced to fresh topics (4 partitions,
retention.ms=-1) in five slices with `gen --to-kafka --keep-partitions
--from-record/--to-record` (same seed, same records: restart_resumes.py relies
on that too):

  A [0, 40%)      before `shortfall run` starts;
  B [40%, 60%)    while it runs, at --rate, so records are in flight when
                  the broker goes;
  C, D [60%, 95%) after the broker is back;
  E [95%, 100%)   after the live run has stopped, for the --until-idle run:
                  `run --until-idle` with nothing new on an input partition
                  never stops (0.2.0 counts a partition as caught up only once
                  it has consumed a record there).

1. Start `shortfall run` (no --until-idle; metrics.bind 127.0.0.1:0, session
   timeout 6 s, heartbeat 1 s, `processing.guarantee` from --guarantee).
   Wait for /readyz 200 and input records flowing (its
   shortfall_records_consumed_total passing slice A while B is produced).
2. `tools/kafka.sh stop --dir D --keep`, hold --outage-seconds (default 30)
   with the broker down, polling /healthz and /readyz every 0.5 s and
   checking that the process is alive; then `tools/kafka.sh resume`.
   Checks: /readyz answered non-200 at least once during the outage (the
   report says how long after the stop it first did, and why), /healthz
   always 200, the process never exited, /readyz 200 again within
   READY_AGAIN_TIMEOUT s of the resume.
3. Produce C and D. The group's committed offsets must reach the end of every
   input partition; SIGTERM: exit 0 within 30 s.
4. Produce E; `run --until-idle --totals-csv` on the same state dir and
   group; the group's offsets must then be at the end of all N records.
   exactly_once: totals equal replay's exactly; the DLQ (read_committed) holds
   each source record exactly once, reasons equal to replay's; no
   contribution too late at stage two.
   at_least_once: nothing lost (every column of every series >= replay's, no
   DLQ source record missing); duplicates are allowed and printed (series,
   shipments, DLQ records).

processing.idle_after defaults to 10m here (not 30s): with the broker down
for 30 s every input partition would count as caught up long enough to turn
idle, and windows closing on idle sources is another subject
(restart_resumes.py avoids it the same way, by stopping before 30 s).
--idle-after 30s runs with the production default.

Exit code 0 passed, 1 failed.

Usage: outage.py SHORTFALL [--guarantee exactly_once|at_least_once] [--events N]
                 [--seed S] [--outage-seconds S] [--idle-after DURATION]
"""
import argparse
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
from kafka_testlib import (KAFKA_SH, STOP_TIMEOUT, LoggedRun, at_end, column_diff, committed_offsets,  # noqa: E402
                           consumed_input, create_topics, gen_and_replay, http_get, kill_all, parse_run_log,
                           produce_args, read_dlq, replay_counts, replay_totals, run_totals, sh, terminate,
                           topic_names, wait_for_metrics_base, write_config)

POLL = 0.5                   # seconds between /healthz + /readyz polls
READY_TIMEOUT = 90           # first /readyz 200 after start
READY_AGAIN_TIMEOUT = 90     # /readyz 200 again after the broker is back
CATCH_UP_TIMEOUT = 120       # committed offsets at the end after the last slice
FINAL_RUN_TIMEOUT = 180      # the --until-idle run


class Stopwatch:
    def __init__(self):
        self.t0 = time.time()

    def __call__(self):
        return time.time() - self.t0

    def say(self, msg):
        print("[%6.1f s] %s" % (self(), msg), flush=True)


class Watch:
    """Polls /healthz and /readyz every POLL s and whether the process lives;
    keeps every sample as (t, healthz status, readyz status, readyz body, alive)."""

    def __init__(self, clock, base, proc):
        self.clock, self.base, self.proc = clock, base, proc
        self.samples = []
        self.exit_seen_at = None

    def poll_until(self, done, deadline, stop_on_exit=True):
        """Poll until done() is true (returns True) or the deadline passes
        (returns False); with stop_on_exit, also return False as soon as the
        process has exited."""
        while True:
            t = self.clock()
            h, _ = http_get(self.base + "/healthz", timeout=POLL)
            r, body = http_get(self.base + "/readyz", timeout=POLL)
            alive = self.proc.poll() is None
            self.samples.append((t, h, r, body, alive))
            if not alive and self.exit_seen_at is None:
                self.exit_seen_at = t
            if not alive and stop_on_exit:
                return False
            if done():
                return True
            if self.clock() >= deadline:
                return False
            time.sleep(max(0.0, POLL - (self.clock() - t)))

    def between(self, t_from, t_to):
        return [s for s in self.samples if t_from <= s[0] < t_to]


def notable_lines(text, limit=25):
    """The runtime's and librdkafka's log lines, without the configuration dump
    and the connection failures librdkafka logs while the broker is down."""
    lines = [l for l in text.splitlines() if l.startswith(("shortfall", "%")) and "configuration" not in l]
    lines = [l for l in lines if not re.match(r"%[36]\|[0-9.]+\|FAIL\|", l)]
    if len(lines) > limit:
        lines = lines[:limit // 2] + ["... (%d lines)" % (len(lines) - limit)] + lines[-(limit - limit // 2):]
    return "\n".join("    " + l for l in lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("shortfall")
    p.add_argument("--guarantee", choices=("exactly_once", "at_least_once"), default="exactly_once")
    p.add_argument("--events", type=int, default=60000)
    p.add_argument("--seed", default="53")
    p.add_argument("--outage-seconds", type=float, default=30)
    p.add_argument("--idle-after", default="10m")
    a = p.parse_args()
    exactly = a.guarantee == "exactly_once"
    clock = Stopwatch()
    # ctest's timeout and Ctrl-C: still run the finally below (the broker is
    # in its own session and would outlive us).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    tmp = tempfile.mkdtemp(prefix="shortfall-outage-")
    broker_dir = os.path.join(tmp, "kafka")
    children = []
    try:
        started = sh([KAFKA_SH, "start", "--dir", broker_dir], timeout=300)
        bootstrap = re.search(r"^KAFKA_BOOTSTRAP=(\S+)$", started.stdout, re.M).group(1)
        clock.say("own broker %s in %s" % (bootstrap, broker_dir))
        app = "outage%d-%d" % (os.getpid(), int(time.time()))
        topics = topic_names(app)
        inputs = {topics["shipments"], topics["customs"]}
        create_topics(bootstrap, [topics["shipments"], topics["customs"]], 4)

        gen = [a.shortfall, "gen", "--seed", a.seed, "--events", str(a.events), "--partitions", "4"]
        _, replay_csv, replay_out = gen_and_replay(a.shortfall, gen, tmp)
        counts, want_reasons = replay_counts(replay_out)
        records, accepted, invalid, late = (counts[k] for k in ("records", "accepted", "invalid", "late"))
        want = replay_totals(replay_csv)

        def produce_cmd(first, last, rate=0):
            return produce_args(gen, bootstrap, topics, first, last, rate)

        n = a.events
        cuts = [0, n * 4 // 10, n * 6 // 10, n * 8 // 10, n * 95 // 100, n]

        config = write_config(os.path.join(tmp, "shortfall.yaml"), app, topics, os.path.join(tmp, "state"))
        sets = ["--set", "processing.guarantee=" + a.guarantee,
                "--set", "processing.idle_after=" + a.idle_after,
                "--set", "kafka.consumer.session.timeout.ms=6000",
                "--set", "kafka.consumer.heartbeat.interval.ms=1000"]

        def start(name, extra):
            return LoggedRun(name, [a.shortfall, "run", "--config", config, "--brokers", bootstrap] + sets + extra,
                             tmp, children)

        problems = []
        sh(produce_cmd(cuts[0], cuts[1]))
        clock.say("%s: %d records (%d accepted, %d invalid, %d late by replay); slice A [0, %d) produced"
                  % (a.guarantee, records, accepted, invalid, late, cuts[1]))

        # --- 1. the live run: ready, and records flowing.
        live_run = start("live", [])
        live = live_run.proc
        base = wait_for_metrics_base(live_run, 60)
        if base is None:
            print("shortfall run printed no metrics address (exit code %s):\n%s"
                  % (live.poll(), live_run.log()[-3000:]))
            return 1
        watch = Watch(clock, base, live)
        t_started = clock()
        if not watch.poll_until(lambda: watch.samples[-1][2] == 200, clock() + READY_TIMEOUT):
            why = ("exited %s before it was ready" % live.returncode if live.poll() is not None
                   else "not ready after %d s (last /readyz %s %r)" % (READY_TIMEOUT, watch.samples[-1][2],
                                                                        watch.samples[-1][3]))
            print("shortfall run %s:\n%s" % (why, live_run.log()[-3000:]))
            return 1
        clock.say("live run ready after %.1f s (%s)" % (clock() - t_started, base))
        # Slice B at a modest rate, so the broker goes while records are in flight.
        rate = max(1000, (cuts[2] - cuts[1]) // 4)
        gen_b = subprocess.Popen(produce_cmd(cuts[1], cuts[2], rate), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
        children.append(gen_b)
        flowing = watch.poll_until(lambda: (consumed_input(base, inputs) or 0) > cuts[1], clock() + 60)
        gen_b_err = gen_b.communicate(timeout=120)[1]
        if gen_b.returncode != 0:
            print("gen slice B failed (%s): %s" % (gen_b.returncode, gen_b_err[-2000:]))
            return 1
        if not flowing:
            print("input records not flowing: consumed %s of slice A's %d + B (exit code %s)\n%s"
                  % (consumed_input(base, inputs), cuts[1], live.poll(), live_run.log()[-3000:]))
            return 1
        consumed_at_stop = consumed_input(base, inputs)
        clock.say("records flowing: %s input records consumed, slice B [%d, %d) produced at %d/s"
                  % (consumed_at_stop, cuts[1], cuts[2], rate))

        # --- 2. the outage.
        t_stop = clock()
        stopper = subprocess.Popen([KAFKA_SH, "stop", "--dir", broker_dir, "--keep"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        children.append(stopper)
        watch.poll_until(lambda: stopper.poll() is not None, clock() + 60, stop_on_exit=False)
        stop_out = stopper.communicate(timeout=60)[0]
        if stopper.returncode != 0:
            print("tools/kafka.sh stop failed (%s): %s" % (stopper.returncode, stop_out))
            return 1
        t_down = clock()
        clock.say("broker stopped (%.1f s); holding it down %.0f s" % (t_down - t_stop, a.outage_seconds))
        watch.poll_until(lambda: False, t_down + a.outage_seconds, stop_on_exit=False)
        t_resume = clock()
        resumer = subprocess.Popen([KAFKA_SH, "resume", "--dir", broker_dir],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        children.append(resumer)
        watch.poll_until(lambda: resumer.poll() is not None, clock() + 120, stop_on_exit=False)
        resume_out, resume_err = resumer.communicate(timeout=120)
        if resumer.returncode != 0:
            print("tools/kafka.sh resume failed (%s): %s" % (resumer.returncode, resume_err))
            return 1
        m = re.search(r"^KAFKA_BOOTSTRAP=(\S+)$", resume_out, re.M)
        if not m or m.group(1) != bootstrap:
            problems.append("resume printed bootstrap %s, the broker was %s" % (m and m.group(1), bootstrap))
        t_up = clock()
        clock.say("broker back after %.1f s down (resume took %.1f s)" % (t_up - t_down, t_up - t_resume))
        ready_again = watch.poll_until(lambda: watch.samples[-1][2] == 200, t_up + READY_AGAIN_TIMEOUT)
        t_ready_again = clock() if ready_again else None

        outage = [s for s in watch.between(t_stop, t_up) if s[4]]
        not_ready = [s for s in outage if s[2] != 200]
        unhealthy = [s for s in watch.between(t_stop, clock() + 1) if s[4] and s[1] != 200]
        if not_ready:
            first = not_ready[0]
            clock.say("/readyz first non-200 %.1f s after the stop began (%+.1f s from broker down): %s %r; "
                      "%d of %d polls during the outage non-200, reasons %s"
                      % (first[0] - t_stop, first[0] - t_down, first[2], first[3], len(not_ready), len(outage),
                         dict(Counter("%s %s" % (s[2], s[3]) for s in not_ready))))
        else:
            problems.append("/readyz answered 200 at all %d polls while the broker was down (and the process "
                            "alive)" % len(outage))
        if unhealthy:
            problems.append("/healthz answered non-200 %d times after the stop, first %.1f s after it: %s"
                            % (len(unhealthy), unhealthy[0][0] - t_stop, unhealthy[0][1]))
        if ready_again:
            clock.say("/readyz 200 again %.1f s after the broker was back" % (t_ready_again - t_up))
        elif live.poll() is None:
            problems.append("/readyz not 200 again within %d s of the resume (last: %s %r)"
                            % (READY_AGAIN_TIMEOUT, watch.samples[-1][2], watch.samples[-1][3]))

        # --- 3. the rest of the stream; the group reaches the end; SIGTERM.
        for first, last in ((cuts[2], cuts[3]), (cuts[3], cuts[4])):
            sh(produce_cmd(first, last))
        clock.say("slices C, D [%d, %d) produced" % (cuts[2], cuts[4]))
        offsets = {}

        def caught_up():
            offsets.update(committed_offsets(bootstrap, app, inputs))
            return at_end(offsets, 8, cuts[4])

        live_counts = None
        if live.poll() is None:
            if watch.poll_until(caught_up, clock() + CATCH_UP_TIMEOUT):
                clock.say("live run committed the end of all 8 input partitions (%d records)" % cuts[4])
            elif live.poll() is None:
                problems.append("committed offsets not at the end %d s after the last slice: "
                                "{partition: (committed, end)} %s" % (CATCH_UP_TIMEOUT, offsets))
        if live.poll() is not None:
            seen = watch.exit_seen_at if watch.exit_seen_at is not None else clock()
            problems.append("shortfall run exited on its own with code %s, seen %.1f s after the stop began "
                            "(the broker was %s)" % (live.returncode, seen - t_stop,
                                                     "down" if seen < t_up else "back"))
        else:
            t_term = clock()
            live.send_signal(signal.SIGTERM)
            try:
                live.wait(timeout=STOP_TIMEOUT)
                clock.say("live run exited %s %.1f s after SIGTERM" % (live.returncode, clock() - t_term))
                if live.returncode != 0:
                    problems.append("shortfall run exited %s after SIGTERM (want 0)" % live.returncode)
            except subprocess.TimeoutExpired:
                problems.append("shortfall run still running %d s after SIGTERM" % STOP_TIMEOUT)
        live_text = live_run.log()
        live_counts = parse_run_log("live run", live_text, problems)

        # --- 4. slice E, then until idle on the same state: totals, DLQ.
        sh(produce_cmd(cuts[4], cuts[5]))
        clock.say("slice E [%d, %d) produced" % (cuts[4], cuts[5]))
        final_csv = os.path.join(tmp, "final.csv")
        final_run = start("final", ["--until-idle", "--totals-csv", final_csv])
        final = final_run.proc
        try:
            final.wait(timeout=FINAL_RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            problems.append("the --until-idle run did not finish in %d s" % FINAL_RUN_TIMEOUT)
            terminate(final, STOP_TIMEOUT)
        final_text = final_run.log()
        if final.returncode != 0:
            problems.append("the --until-idle run exited %s" % final.returncode)
        final_counts = parse_run_log("until-idle run", final_text, problems)
        clock.say("until-idle run exited %s: %s" % (final.returncode, final_counts))
        offsets = committed_offsets(bootstrap, app, inputs)
        short = {k: v for k, v in offsets.items() if v[0] != v[1]}
        if len(offsets) != 8 or sum(end for _, end in offsets.values()) != n or short:
            problems.append("after the until-idle run the group's input offsets are not all at the end of %d "
                            "records: {partition: (committed, end)} %s" % (n, short or offsets))

        got = run_totals([final_csv]) if os.path.exists(final_csv) else None
        if got is None:
            problems.append("the --until-idle run wrote no totals CSV")
        dup_series, dup_shipments, dup_columns = 0, 0, 0
        if got is not None:
            if len(want) < 20:
                problems.append("scenario too small to test anything: %d series" % len(want))
            for key in sorted(set(want) | set(got)):
                w, g = want.get(key), got.get(key)
                if w == g:
                    continue
                if w is None or g is None:
                    problems.append("%s: series only in %s" % (key, "run" if w is None else "replay"))
                    continue
                diff = column_diff(w, g)
                lost = {c: v for c, v in diff.items() if v[0] is None or v[1] is None or v[0] < v[1]}
                if exactly or lost:
                    problems.append("%s: {column: (run, replay)} %s" % (key, lost or diff))
                if not lost:
                    dup_series += 1
                    dup_columns += len(diff)
                    dup_shipments += g.get("shipments", 0) - w.get("shipments", 0)

        dlq = read_dlq(bootstrap, topics["dlq"])
        missing_headers = [r for r in dlq if None in r.values()]
        if missing_headers:
            problems.append("%d DLQ records lack shortfall.* headers, e.g. %s" % (len(missing_headers),
                                                                                  missing_headers[0]))
        by_source = {}
        for r in dlq:
            by_source.setdefault((r["source.topic"], r["source.partition"], r["source.offset"]), []).append(r)
        dlq_dups = sum(len(v) - 1 for v in by_source.values())
        reasons_distinct = Counter(v[0]["reason"] for v in by_source.values())
        if exactly and dlq_dups:
            twice = [k for k, v in by_source.items() if len(v) > 1]
            problems.append("%d source records are in the DLQ more than once (%d extra), e.g. %s"
                            % (len(twice), dlq_dups, twice[:3]))
        if reasons_distinct != want_reasons:
            problems.append("DLQ reasons (one per source record) %s, replay %s"
                            % (dict(reasons_distinct), dict(want_reasons)))
        if len(by_source) != invalid + late:
            problems.append("DLQ holds %d distinct source records, replay has %d invalid + %d late"
                            % (len(by_source), invalid, late))
        conflicting = [k for k, v in by_source.items() if len({r["reason"] for r in v}) > 1]
        if conflicting:
            problems.append("%d source records are in the DLQ with different reasons, e.g. %s"
                            % (len(conflicting), [by_source[k] for k in conflicting[:2]]))
        if not want_reasons.get("unparseable") or not want_reasons.get("late"):
            problems.append("the scenario has no unparseable or no late records: %s" % dict(want_reasons))
        late_two = sum(c["late_stage_two"] for c in (live_counts, final_counts) if c)
        if exactly and late_two:
            problems.append("%d contributions were too late for their window at stage two" % late_two)
        read_total = sum(c["records"] for c in (live_counts, final_counts) if c)

        summary = ("%s: broker down %.0f s; /readyz first non-200 %s after the stop began, 200 again %s after "
                   "the broker was back; "
                   "input records read %d (live %s + until-idle %s) for %d produced; DLQ %d records, %d distinct, "
                   "%d duplicates; totals: %d series, %d differ from replay (%d columns, %+d shipments); "
                   "%d contributions too late at stage two; %.0f s in all"
                   % (a.guarantee, t_up - t_down,
                      "%.1f s" % (not_ready[0][0] - t_stop) if not_ready else "never",
                      "%.1f s" % (t_ready_again - t_up) if ready_again else "never",
                      read_total, live_counts and live_counts["records"], final_counts and final_counts["records"],
                      n, len(dlq), len(by_source), dlq_dups, len(want), dup_series, dup_columns, dup_shipments,
                      late_two, clock()))
        if problems:
            print("PROBLEMS:\n  " + "\n  ".join(problems[:40]))
            print(summary)
            print("--- live run, notable log lines:\n" + notable_lines(live_text, 40))
            print("--- live run, end of log:\n" + live_text[-1500:])
            print("--- until-idle run, notable log lines:\n" + notable_lines(final_text, 20))
            return 1
        print(summary)
        print("--- live run, notable log lines:\n" + notable_lines(live_text))
        return 0
    finally:
        kill_all(children)
        subprocess.run([KAFKA_SH, "stop", "--dir", broker_dir], capture_output=True, timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
