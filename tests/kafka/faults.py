#!/usr/bin/env python3
"""Crash tests of `shortfall run` on a real Kafka broker: kill -9 and fail-over.

Both modes play one scenario — `gen --scenario port_closure` (Laredo closed
for four days: ten alert records, OPEN then RESOLVED, plus the generator's
malformed and late records for the DLQ) — written once to a file for
`shortfall replay` (totals, alerts, DLQ reasons: the clean computation) and
produced to fresh 4-partition topics (`retention.ms=-1`: the records carry
the scenario's months-old timestamps) by a background thread, in slices
(`gen --to-kafka --keep-partitions --from-record/--to-record`; the generator is
deterministic, so the slices are exactly the file's records) each spread over
a few seconds with `--rate`, so records keep arriving while processes die.

kill: start `shortfall run` (no --until-idle) on a state dir; once its log
  says it holds every partition, wait a random 0.5-5 s (seeded
  random.Random; the seed is printed, --seed repeats it) and kill -9 it; start
  it again on the same state dir; --kills times (default 10). Slice i (of
  kills + 1) starts when the i-th instance holds every partition and lasts 7 s,
  so every kill lands while a slice is being produced (checked: the test fails
  otherwise). The last slice comes after the last kill, then a last
  `run --until-idle --totals-csv` on the same state dir reads it.
failover: instances A and B, one group, separate state dirs (two machines).
  B starts first; A joins once B holds every partition (B has created the
  output and internal topics by then). The cooperative-sticky assignor hands
  the newcomer A input and repartition tasks alike (checked), so A's death
  leaves B stage-one offsets and stage-two state to take over. Once both have
  consumed records, kill -9 A at a random moment of a random slice between
  1/3 and 11/12 of the stream (this scenario's first alerts come at about 3/4:
  depending on the seed A dies before or after sending some); A is not
  restarted. B's log must show it holding every partition, the group's
  committed offsets must reach the end of every input partition, B must exit
  0 within 30 s of SIGTERM, then the last slice is produced and
  `run --until-idle --totals-csv` runs on B's state dir. (The last slice waits
  for that run because `run --until-idle` never stops while an input
  partition has nothing new to read since its last commit.) B is stopped
  within seconds of catching up, before the 30 s after which a caught-up
  partition declares itself idle (docs/runtime.md, rule 5) and lets windows
  close that replay never closes.

Checks (read_committed throughout, with kcat -X isolation.level=read_committed):
  exactly_once   totals equal replay's exactly (every column of every series);
                 the alert topic holds each (alert_id, revision) once and
                 exactly replay's alert records; the DLQ holds each source
                 record (shortfall.source.topic/partition/offset) once, with
                 replay's counts by reason.
  at_least_once  no loss: every column of every series >= replay's; the DLQ
                 holds every source record replay rejects (by reason) at least
                 once; duplicates are counted and printed (excess per column,
                 DLQ records and alert records seen twice). Alerts are compared
                 with replay's only when the totals came out exact: counting a
                 partial sum twice may legitimately move an alert.

Alert records are compared field by field (protobuf decoded here, against
replay --alerts-json), evidence and top contributors included.

With --standby (failover only) both instances run with
processing.num_standby_replicas=1: B keeps warm copies of A's stage-two tasks
before the kill, so taking them over must read back at most 20% of their
changelog records (without it, B reads each changelog from the start; both
print what was read back).

Settings and why:
  kafka.consumer.session.timeout.ms=6000, heartbeat.interval.ms=1000
      a restarted member (or the survivor) waits for the dead member's session
      to expire before the group rebalances: 6 s (the broker's minimum)
      instead of 45 s.
  metrics.bind 127.0.0.1:0     several instances on one machine; the metrics
                               endpoint also tells how many records an
                               instance consumed (failover waits for both).
  repartition.partitions 4     one instance holds 8 input + 4 repartition tasks.
  processing.guarantee         --guarantee, passed to every `run`.

Takes about 1.5-2 min (kill, 10 kills) or 45 s (failover) on two shared cores.

Usage: faults.py SHORTFALL BOOTSTRAP_FILE kill|failover --guarantee at_least_once|exactly_once
                 [--events N] [--seed S] [--kills K] [--keep]
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from kafka_testlib import (KAFKA_SH, STOP_TIMEOUT, LoggedRun, at_end, column_diff, committed_offsets,  # noqa: E402
                           consumed_input, create_topics, gen_and_replay, kill_all, metrics_base, parse_run_log,
                           produce_args, read_dlq, read_records, replay_counts, replay_totals, run_totals,
                           topic_names, wire_fields, write_config)

SCENARIO = ["--scenario", "port_closure", "--seed", "5", "--partitions", "4"]
PARTITIONS = 4                   # per input topic, and of the repartition topic
INPUT_TASKS = 2 * PARTITIONS     # stage-one tasks when one instance holds everything
# "restoring DIR from APP-volumes-changelog[P] offsets START to END" (pipeline/runtime.cc)
RESTORING = re.compile(r"restoring \S+ from \S+-volumes-changelog\[\d+\] offsets (\d+) to (\d+)")
STANDBY = re.compile(r"standby copies of [1-9]\d* stage-two tasks")
SESSION = ["--set", "kafka.consumer.session.timeout.ms=6000", "--set", "kafka.consumer.heartbeat.interval.ms=1000"]
KILL_DELAY = (0.5, 5.0)          # seconds after a full assignment
SLICE_SECONDS = 7                # each kill-mode slice is produced over this long: longer than KILL_DELAY
FAILOVER_SLICES, FAILOVER_SLICE_SECONDS = 12, 3
FAILOVER_KILL_SLICES = (4, 10)   # A dies in one of these slices (0-based): 1/3 to 11/12 of the way
ASSIGN_TIMEOUT = 60              # a join waits <= 6 s for a dead member's session, then the rebalance
FINAL_TIMEOUT = 120              # the last `run --until-idle` (it takes seconds)
ASSIGNED = re.compile(r"shortfall run: assigned \d+ partitions \((\d+) input, (\d+) repartition tasks\)")
RELEASED = re.compile(r"shortfall run: (?:revoked|lost) (\d+) partitions")


# ------------------------------------------------------------ reading topics --

# proto/shortfall/v1/shortage_alert.proto, named as protobuf's JSON mapping
# names them (what replay --alerts-json writes). Fields not listed here (a
# later additive change) are skipped on both sides.
_CORRIDOR = {1: ("originCountry", "string"), 2: ("destinationCountry", "string"), 3: ("portOfEntry", "string")}
_CONTRIBUTOR = {1: ("corridor", _CORRIDOR), 2: ("share", "double")}
_EVIDENCE = {1: ("measure", "string"), 2: ("observed", "double"), 3: ("expected", "double"),
             4: ("statistic", "string"), 5: ("statisticValue", "double"), 6: ("threshold", "double"),
             7: ("baselineHistorySeconds", "int64"), 8: ("topContributors", [_CONTRIBUTOR])}
_ALERT = {1: ("alertId", "string"), 2: ("commodityGroup", "string"), 3: ("corridor", _CORRIDOR),
          4: ("kind", ("ALERT_KIND_UNSPECIFIED", "ALERT_KIND_VOLUME_DROP", "ALERT_KIND_CUSTOMS_HOLD_SPIKE",
                       "ALERT_KIND_DWELL_TIME_RISE", "ALERT_KIND_UNIT_VALUE_SPIKE",
                       "ALERT_KIND_ORIGIN_CONCENTRATION")),
          5: ("severity", ("SEVERITY_UNSPECIFIED", "SEVERITY_INFO", "SEVERITY_WARNING", "SEVERITY_CRITICAL")),
          6: ("state", ("ALERT_STATE_UNSPECIFIED", "ALERT_STATE_OPEN", "ALERT_STATE_UPDATED",
                        "ALERT_STATE_RESOLVED")),
          7: ("windowStart", "timestamp"), 8: ("windowEnd", "timestamp"), 9: ("openedAt", "timestamp"),
          10: ("evidence", _EVIDENCE), 11: ("revision", "uint"), 12: ("summary", "string")}


def _timestamp(buf):
    f = dict(wire_fields(buf))
    seconds, nanos = f.get(1, 0), f.get(2, 0)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if nanos:
        frac = "%09d" % nanos
        text += "." + (frac[:3] if nanos % 1000000 == 0 else frac[:6] if nanos % 1000 == 0 else frac)
    return text + "Z"


def decode(buf, schema=_ALERT):
    """A protobuf message as the dict protobuf's JSON mapping gives (known fields only)."""
    out = {}
    for number, value in wire_fields(buf):
        if number not in schema:
            continue
        name, kind = schema[number]
        if isinstance(kind, list):
            out.setdefault(name, []).append(decode(value, kind[0]))
        elif isinstance(kind, dict):
            out[name] = decode(value, kind)
        elif isinstance(kind, tuple):
            out[name] = kind[value] if value < len(kind) else value
        elif kind == "string":
            out[name] = value.decode("utf-8")
        elif kind == "double":
            out[name] = struct.unpack("<d", value)[0]
        elif kind == "int64":
            out[name] = str(value - (1 << 64) if value >= 1 << 63 else value)
        elif kind == "uint":
            out[name] = value
        elif kind == "timestamp":
            out[name] = _timestamp(value)
    return out


def normalise(obj, schema=_ALERT):
    """A JSON alert reduced to the fields `decode` knows, empty messages dropped."""
    out = {}
    names = {name: kind for name, kind in schema.values()}
    for name, value in obj.items():
        kind = names.get(name)
        if kind is None:
            continue
        if isinstance(kind, list):
            value = [normalise(v, kind[0]) for v in value]
        elif isinstance(kind, dict):
            value = normalise(value, kind)
        if value in ({}, []):
            continue
        out[name] = value
    return out


def read_alerts(bootstrap, topic):
    """Every committed record of the alert topic as (key, decoded ShortageAlert)."""
    records = []
    for (partition, offset), rec in read_records(bootstrap, topic).items():
        key = (rec["key"] or b"").decode("utf-8", errors="replace")
        try:
            records.append((key, normalise(decode(rec["value"] or b""))))
        except (ValueError, IndexError, UnicodeDecodeError) as e:
            records.append((key, {"undecodable": "%d@%d: %s" % (partition, offset, e)}))
    return records


# ------------------------------------------------------- processes, producer --

class Instance(LoggedRun):
    """One `shortfall run` process; its stderr goes to NAME.log."""

    def tail(self, n=3000):
        """The end of its log without the configuration it prints first."""
        text = re.sub(r"shortfall run: configuration\n(?:(?!shortfall run:).*\n)*", "", self.log())
        return "--- %s (exit %s)\n%s" % (self.name, self.proc.poll(), text[-n:])

    def tasks(self, since=0):
        """(tasks held, holds every partition, (input, repartition) tasks or None after a revoke) from the
        assigned/revoked lines of its log after `since`."""
        held, full, split = 0, False, None
        for line in self.log(since).splitlines():
            m = ASSIGNED.search(line)
            if m:
                split = int(m.group(1)), int(m.group(2))
                held, full = sum(split), split == (INPUT_TASKS, PARTITIONS)
            m = RELEASED.search(line)
            if m:
                held, full, split = held - int(m.group(1)), False, None
        return held, full, split

    def consumed(self, input_topics):
        """Input records consumed, from its metrics endpoint (published once a second); None if unknown."""
        base = metrics_base(self.log())
        return None if base is None else consumed_input(base, input_topics)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


class Producer(threading.Thread):
    """Produces the scenario slice by slice; slice i starts once gate(i) is true."""

    def __init__(self, gen, slices, gate):
        super().__init__(daemon=True)
        self.gen, self.slices, self.gate = gen, slices, gate
        self.active = threading.Event()  # set while a gen process runs
        self.abort = threading.Event()
        self.produced = 0                # records produced so far (slices are in order)
        self.error = None
        self.proc = None

    def run(self):
        try:
            for i, (first, last, rate) in enumerate(self.slices):
                while not self.gate(i):
                    if self.abort.wait(0.05):
                        return
                if self.abort.is_set():
                    return
                self.active.set()
                self.proc = subprocess.Popen(self.gen + ["--from-record", str(first), "--to-record", str(last),
                                                         "--rate", str(rate)],
                                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                _, err = self.proc.communicate()
                self.active.clear()
                m = re.search(r"produced (\d+) records to Kafka: (\d+) delivered, (\d+) failed", err)
                if (self.proc.returncode != 0 or not m
                        or (int(m.group(2)), int(m.group(3))) != (last - first, 0)):
                    self.error = "gen slice [%d, %d) exited %s: %s" % (first, last, self.proc.returncode,
                                                                      err.strip()[-500:])
                    return
                self.produced = last
        except Exception as e:  # noqa: BLE001 -- reported by the main thread
            self.error = "producer: %r" % e
        finally:
            self.active.clear()

    def stop(self):
        self.abort.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()


def wait_for(condition, timeout, watch=(), interval=0.2):
    """Poll condition() until true (True), the deadline passes or a watched Instance exits (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        if any(not w.alive() for w in watch):
            return bool(condition())
        time.sleep(interval)
    return bool(condition())


def pause(seconds, inst):
    """The random kill delay (not an assertion); False if the instance exits meanwhile."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not inst.alive():
            return False
        time.sleep(min(0.05, max(0.0, deadline - time.time())))
    return inst.alive()


# ------------------------------------------------------------------- checks --

def check_totals(exact, want, got, problems):
    """Totals against replay's; returns {column: excess summed over series} (at_least_once)."""
    excess = Counter()
    for key in sorted(set(want) | set(got)):
        w, g = want.get(key), got.get(key)
        if g is None:
            problems.append("%s: series missing from the run's totals (replay %s)" % (key, w))
            continue
        if w is None:
            problems.append("%s: series in the run's totals only: %s" % (key, g))
            continue
        if exact:
            if w != g:
                problems.append("%s: {column: (run, replay)} %s" % (key, column_diff(w, g)))
            continue
        lost = {k: (g.get(k, 0), v) for k, v in w.items() if g.get(k, 0) < v}
        if lost:
            problems.append("%s: LOSS {column: (run, replay)} %s" % (key, lost))
        for k, v in g.items():
            if v > w.get(k, 0):
                excess[k] += v - w.get(k, 0)
    if len(want) < 20:
        problems.append("scenario too small to test anything: %d series" % len(want))
    return excess


def check_dlq(exact, records, want_reasons, inputs, problems):
    """DLQ against replay's reasons; returns the count of records seen more than once."""
    missing = [r for r in records if None in r.values()]
    if missing:
        problems.append("%d DLQ records lack shortfall.* headers, e.g. %s" % (len(missing), missing[0]))
    by_source = {}
    copies = Counter()
    for r in records:
        source = (r["source.topic"], r["source.partition"], r["source.offset"])
        copies[source] += 1
        if source in by_source and by_source[source] != r["reason"]:
            problems.append("DLQ: source record %s with two reasons, %s and %s" % (source, by_source[source],
                                                                                 r["reason"]))
        by_source[source] = r["reason"]
    duplicates = sum(n - 1 for n in copies.values())
    if exact and duplicates:
        twice = [k for k, n in copies.items() if n > 1]
        problems.append("DLQ: %d source records more than once (%d extra copies), e.g. %s"
                        % (len(twice), duplicates, twice[:3]))
    foreign = {s[0] for s in by_source} - set(inputs)
    if foreign:
        problems.append("DLQ: records from topics %s, want only %s" % (sorted(foreign), sorted(inputs)))
    reasons = Counter(by_source.values())
    if reasons != want_reasons:
        problems.append("DLQ: distinct source records by reason %s, replay %s" % (dict(reasons), dict(want_reasons)))
    if not want_reasons.get("unparseable") or not want_reasons.get("late"):
        problems.append("the scenario has no unparseable or no late records: %s" % dict(want_reasons))
    return duplicates, reasons


def check_alerts(exact, compare, records, want, problems, notes):
    """Alert records against replay's alerts. exact: each (alert_id, revision) at most once. compare: the
    set of (alert_id, revision) and the content must be replay's (else differences are notes).
    Returns (extra copies, missing, extra) counts."""
    want_by = {(a["alertId"], a.get("revision", 0)): normalise(a) for a in want}
    got_by, copies, differing_copies = {}, Counter(), 0
    for key, alert in records:
        if "undecodable" in alert:
            problems.append("alert record %s does not decode as a ShortageAlert: %s" % (key, alert["undecodable"]))
            continue
        if key != alert.get("alertId"):
            problems.append("alert record keyed %r carries alert_id %r" % (key, alert.get("alertId")))
        k = (alert.get("alertId"), alert.get("revision", 0))
        copies[k] += 1
        if k in got_by and got_by[k] != alert:
            differing_copies += 1
        got_by.setdefault(k, alert)
    extra_copies = sum(n - 1 for n in copies.values())
    if extra_copies and exact:
        problems.append("alert topic: %d (alert_id, revision) seen more than once (%d extra copies), e.g. %s"
                        % (sum(1 for n in copies.values() if n > 1), extra_copies,
                           [k for k, n in copies.items() if n > 1][:3]))
    if differing_copies:
        (problems if exact else notes).append("%d repeated alert records differ from their first copy"
                                              % differing_copies)
    missing = sorted(set(want_by) - set(got_by))
    extra = sorted(set(got_by) - set(want_by))
    common = sorted(set(want_by) & set(got_by))
    findings = []
    if missing:
        findings.append("alert topic: %d of replay's alert records missing: %s" % (len(missing), missing[:5]))
    if extra:
        findings.append("alert topic: %d alert records replay does not have: %s" % (len(extra), extra[:5]))
    for k in [k for k in common if want_by[k] != got_by[k]][:5]:
        findings.append("alert %s differs from replay's:\n  run    %s\n  replay %s" % (k, got_by[k], want_by[k]))
    if compare:
        problems.extend(findings)
    else:
        notes.extend("not failed (at_least_once counted input twice, so alerts may move): " + f for f in findings)
    if not want:
        problems.append("the scenario raises no alert: nothing to check on the alert topic")
    return extra_copies, len(missing), len(extra)


# --------------------------------------------------------------------- main --

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("shortfall")
    p.add_argument("bootstrap_file")
    p.add_argument("mode", choices=("kill", "failover"))
    p.add_argument("--guarantee", required=True, choices=("at_least_once", "exactly_once"))
    p.add_argument("--events", type=int, default=150000, help="scenario records (default: port_closure's 150000)")
    p.add_argument("--seed", type=int, default=None, help="seed of the kill moments (default: a fresh one, printed)")
    p.add_argument("--kills", type=int, default=10, help="kill mode: kill -9 this many times (default 10)")
    p.add_argument("--keep", action="store_true", help="keep the temporary dir and the topics (debugging)")
    p.add_argument("--standby", action="store_true",
                   help="failover with processing.num_standby_replicas=1: B's copies of A's stage-two tasks must "
                        "be warm, so B restores only a small tail of their changelogs")
    a = p.parse_args()
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 31)
    rng = random.Random(seed)
    exact = a.guarantee == "exactly_once"
    bootstrap = open(a.bootstrap_file).read().strip()
    app = "faults%s%d-%d" % (a.mode[0], os.getpid(), int(time.time()))
    topics = topic_names(app)
    inputs = {topics["shipments"], topics["customs"]}
    print("faults %s %s: seed %d (--seed %d repeats the kill moments), group %s, %d events"
          % (a.mode, a.guarantee, seed, seed, app, a.events), flush=True)
    create_topics(bootstrap, [topics["shipments"], topics["customs"]], PARTITIONS)

    tmp = tempfile.mkdtemp(prefix="shortfall-faults-")
    children, instances, producer = [], [], None
    t_start = time.time()
    problems, notes = [], []
    try:
        # --- the clean computation: replay of the same records.
        gen = [a.shortfall, "gen"] + SCENARIO + ["--events", str(a.events)]
        replay_alerts = os.path.join(tmp, "replay-alerts.json")
        _, replay_csv, replay_out = gen_and_replay(a.shortfall, gen, tmp, ["--alerts-json", replay_alerts])
        counts, want_reasons = replay_counts(replay_out)
        records = counts["records"]
        with open(replay_alerts) as f:
            want_alerts = [json.loads(line) for line in f if line.strip()]
        gen_kafka = produce_args(gen, bootstrap, topics)

        def config(state):
            return write_config(os.path.join(tmp, state + ".yaml"), app, topics, os.path.join(tmp, state), PARTITIONS)

        standby = ["--set", "processing.num_standby_replicas=1"] if a.standby else []

        def start(name, cfg, extra=()):
            inst = Instance(name, [a.shortfall, "run", "--config", cfg, "--brokers", bootstrap,
                                   "--set", "processing.guarantee=" + a.guarantee] + SESSION + standby + list(extra),
                            tmp, children)
            instances.append(inst)
            return inst

        def fail(message, *show):
            print(message)
            for inst in show:
                print(inst.tail())
            print("FAILED after %.0f s (seed %d)" % (time.time() - t_start, seed))
            return 1

        def slices(n, seconds, last_rate=None):
            bounds = [records * i // n for i in range(n + 1)]
            out = [(bounds[i], bounds[i + 1], max(1, -(-(bounds[i + 1] - bounds[i]) // seconds)))
                   for i in range(n)]
            if last_rate is not None:
                out[-1] = (out[-1][0], out[-1][1], last_rate)
            return out

        kills = []
        if a.mode == "kill":
            cfg = config("state")
            assigned_cycles = [0]      # instances that have held every partition so far
            loop_done = threading.Event()
            # Slice i (i < K) starts when instance i holds every partition; the last one, at full
            # speed, once the kills are over.
            producer = Producer(gen_kafka, slices(a.kills + 1, SLICE_SECONDS, last_rate=0),
                                lambda i: i < assigned_cycles[0] or loop_done.is_set())
            producer.start()
            for k in range(a.kills):
                inst = start("run%02d" % k, cfg)
                if not wait_for(lambda: inst.tasks()[1], ASSIGN_TIMEOUT, watch=[inst]):
                    return fail("kill %d: instance %s (tasks %s)" % (
                        k + 1, "exited %s before holding every partition" % inst.proc.poll() if not inst.alive()
                        else "never held every partition within %d s" % ASSIGN_TIMEOUT, inst.tasks()), inst)
                assigned_at = time.time()
                assigned_cycles[0] = k + 1
                delay = rng.uniform(*KILL_DELAY)
                if not pause(delay, inst):
                    return fail("kill %d: instance exited by itself before the kill" % (k + 1), inst)
                if producer.error:
                    return fail(producer.error)
                consumed = inst.consumed(inputs)
                producing = producer.active.is_set()
                inst.kill9()
                kills.append({"delay": delay, "producing": producing, "consumed": consumed,
                              "produced": producer.produced, "assign_s": assigned_at - inst.started})
                print("kill %2d: %.2f s after holding every partition (%.1f s after start); consumed %s input "
                      "records; %d of %d records produced, slice %s" % (
                          k + 1, delay, assigned_at - inst.started, "?" if consumed is None else consumed,
                          producer.produced, records, "being produced" if producing else "NOT being produced"),
                      flush=True)
            loop_done.set()
            producer.join(timeout=60 + 2 * SLICE_SECONDS)
            if producer.is_alive() or producer.error or producer.produced != records:
                return fail("producer did not finish: %s (%d of %d records)"
                            % (producer.error or "still running", producer.produced, records))
            not_mid = [i + 1 for i, k in enumerate(kills) if not k["producing"]]
            if not_mid:
                problems.append("kills %s landed while no slice was being produced (not mid-stream)" % not_mid)
            final_state = cfg
        else:
            cfg_a, cfg_b = config("state-a"), config("state-b")
            # B, the survivor, starts first; A joins once B holds every partition (B has created the
            # internal and output topics by then: started together, one of them can exit 2 with "topic ...
            # does not exist", see the report). The cooperative-sticky assignor hands the newcomer stage-two
            # (repartition) tasks as well as input ones, so B has state to restore when A dies.
            inst_b = start("b", cfg_b)
            if not wait_for(lambda: inst_b.tasks()[1], ASSIGN_TIMEOUT, watch=[inst_b]):
                return fail("B %s (tasks %s)" % ("exited %s before holding every partition" % inst_b.proc.poll()
                                                 if not inst_b.alive() else "never held every partition",
                                                 inst_b.tasks()), inst_b)
            inst_a = start("a", cfg_a)
            both = [inst_a, inst_b]
            if not wait_for(lambda: inst_a.tasks()[0] > 0 and inst_b.tasks()[0] > 0
                            and inst_a.tasks()[0] + inst_b.tasks()[0] == INPUT_TASKS + PARTITIONS,
                            ASSIGN_TIMEOUT + 30, watch=both):
                return fail("A and B never shared the partitions (tasks A %s, B %s)"
                            % (inst_a.tasks(), inst_b.tasks()), inst_a, inst_b)
            # The last slice waits until B has stopped, so that the last run has input to read: a
            # `run --until-idle` whose input partitions hold nothing new never stops (see the report).
            tail_go = threading.Event()
            plan = slices(FAILOVER_SLICES + 1, FAILOVER_SLICE_SECONDS, last_rate=0)
            before_tail = plan[-1][0]
            producer = Producer(gen_kafka, plan, lambda i: i < FAILOVER_SLICES or tail_go.is_set())
            producer.start()
            if not wait_for(lambda: (inst_a.consumed(inputs) or 0) > 0 and (inst_b.consumed(inputs) or 0) > 0,
                            60, watch=both, interval=0.5):
                return fail("A and B did not both consume records within 60 s (A %s, B %s)"
                            % (inst_a.consumed(inputs), inst_b.consumed(inputs)), inst_a, inst_b)
            # A dies at a random moment of a random slice, so that runs (seeds) cover A dying before and
            # after it has sent alerts (this scenario's first alerts come about 3/4 of the way through).
            kill_slice = rng.randint(*FAILOVER_KILL_SLICES)
            if not wait_for(lambda: producer.produced >= plan[kill_slice][0] or producer.error,
                            60 + kill_slice * FAILOVER_SLICE_SECONDS, watch=both) or producer.error:
                return fail("slice %d never started: %s" % (kill_slice, producer.error), inst_a, inst_b)
            delay = rng.uniform(0.3, FAILOVER_SLICE_SECONDS - 0.5)
            if not pause(delay, inst_a) or not inst_b.alive():
                return fail("an instance exited by itself before the kill", inst_a, inst_b)
            consumed = (inst_a.consumed(inputs), inst_b.consumed(inputs))
            producing = producer.active.is_set()
            a_split = inst_a.tasks()[2]
            b_offset = len(inst_b.log())
            t_kill = time.time()
            inst_a.kill9()
            kills.append({"delay": delay, "producing": producing, "consumed": consumed})
            print("killed A %.2f s into slice %d of %d, A holding %s (input, repartition) tasks; consumed "
                  "A %s, B %s; %d of %d records produced, slice %s"
                  % (delay, kill_slice + 1, FAILOVER_SLICES, a_split, consumed[0], consumed[1], producer.produced,
                     records,
                     "being produced" if producing else "NOT being produced"), flush=True)
            if not producing:
                problems.append("A was killed while no slice was being produced (not mid-stream)")
            if not a_split or not all(a_split):
                problems.append("A held %s (input, repartition) tasks when killed: want some of each, so that B "
                                "takes over stage-one and stage-two state" % (a_split,))
            # B's own lines since the kill must show it holding every partition.
            if not wait_for(lambda: ASSIGNED.search(inst_b.log(b_offset)) and inst_b.tasks()[1],
                            ASSIGN_TIMEOUT, watch=[inst_b]):
                return fail("B did not take over every partition within %d s of the kill (tasks %s)"
                            % (ASSIGN_TIMEOUT, inst_b.tasks()), inst_b)
            takeover = time.time() - t_kill
            # What B read back of the volumes changelogs to take A's stage-two tasks over: the whole
            # changelog without standby copies, only the tail the copy had not applied with them.
            spans = [(int(lo), int(hi)) for lo, hi in RESTORING.findall(inst_b.log(b_offset))]
            read_back = sum(hi - lo for lo, hi in spans)
            print("B holds every partition %.1f s after the kill; it restored %d volumes-changelog records over "
                  "%d tasks (%s)" % (takeover, read_back, len(spans),
                                     ", ".join("%d..%d" % span for span in spans) or "all current"), flush=True)
            if a.standby:
                if not STANDBY.search(inst_b.log()):
                    problems.append("B never logged its standby copies")
                whole = sum(hi for _, hi in spans)
                if whole and read_back > 0.2 * whole:
                    problems.append("with standby copies B still read back %d of %d changelog records (> 20%%)"
                                    % (read_back, whole))
            if not wait_for(lambda: producer.produced == before_tail or producer.error,
                            60 + FAILOVER_SLICES * FAILOVER_SLICE_SECONDS) or producer.error:
                return fail("producer did not finish: %s (%d of %d records)"
                            % (producer.error or "still running", producer.produced, before_tail), inst_b)
            offsets = {}

            def caught_up():
                offsets.update(committed_offsets(bootstrap, app, inputs))
                return at_end(offsets, INPUT_TASKS, before_tail)
            t_wait = time.time()
            if not wait_for(caught_up, 120, watch=[inst_b], interval=0.5):
                return fail("B's group never committed the end of every input partition in 120 s: %s" % offsets,
                            inst_b)
            print("committed offsets reached the end of every input partition %.1f s after the last slice"
                  % (time.time() - t_wait), flush=True)
            t_term = time.time()
            inst_b.proc.send_signal(signal.SIGTERM)
            try:
                inst_b.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                return fail("B still running %d s after SIGTERM" % STOP_TIMEOUT, inst_b)
            if inst_b.proc.returncode != 0:
                problems.append("B exited %s after SIGTERM (want 0)" % inst_b.proc.returncode)
            print("B stopped %.1f s after SIGTERM" % (time.time() - t_term), flush=True)
            tail_go.set()
            producer.join(timeout=60)
            if producer.is_alive() or producer.error or producer.produced != records:
                return fail("producer did not finish the last slice: %s (%d of %d records)"
                            % (producer.error or "still running", producer.produced, records))
            final_state = cfg_b

        # --- the last run on the (surviving) state dir, until idle.
        final_csv = os.path.join(tmp, "final.csv")
        final = start("final", final_state, ["--until-idle", "--totals-csv", final_csv])
        try:
            final.proc.wait(timeout=FINAL_TIMEOUT)
        except subprocess.TimeoutExpired:
            return fail("the last run (--until-idle) did not finish in %d s (it never stops while an input "
                        "partition has had nothing new to read since it started)" % FINAL_TIMEOUT, final)
        if final.proc.returncode != 0:
            return fail("the last run exited %s" % final.proc.returncode, final)
        counts = parse_run_log("the last run", final.log(), problems)
        if counts and counts["late_stage_two"]:
            problems.append("the last run counted %d contributions too late at stage two"
                            % counts["late_stage_two"])

        # --- checks.
        want = replay_totals(replay_csv)
        excess = check_totals(exact, want, run_totals([final_csv]), problems)
        dlq_dups, dlq_reasons = check_dlq(exact, read_dlq(bootstrap, topics["dlq"]), want_reasons, inputs,
                                          problems)
        alert_dups, alerts_missing, alerts_extra = check_alerts(
            exact, exact or not excess, read_alerts(bootstrap, topics["alerts"]), want_alerts, problems, notes)
        if exact and (excess or dlq_dups or alert_dups):
            problems.append("exactly_once, yet duplicates: excess %s, DLQ %d, alerts %d"
                            % (dict(excess), dlq_dups, alert_dups))

        for n in notes:
            print("note: " + n)
        if problems:
            print("\n".join(problems[:40]))
            shown = [i for i in instances if i.name in ("final", "b")] or instances[-1:]
            for inst in (instances[-2:-1] if a.mode == "kill" else []) + shown:
                print(inst.tail())
            print("FAILED after %.0f s (seed %d)" % (time.time() - t_start, seed))
            return 1
        what = ("%d kills (%d mid-stream)" % (len(kills), sum(k["producing"] for k in kills))
                if a.mode == "kill" else "A killed mid-stream, B took over in %.1f s" % takeover)
        alerts = ("alert records = replay's %d" % len(want_alerts) if exact or not excess else
                  "alerts not compared (replay %d; %d missing, %d extra)" % (len(want_alerts), alerts_missing,
                                                                             alerts_extra))
        print("faults %s %s: %s; %d series, %d records, DLQ %d source records (by reason = replay's), %s; "
              "duplicates: totals excess %s, DLQ %d, alerts %d; seed %d; %.0f s in all"
              % (a.mode, a.guarantee, what, len(want), records, sum(dlq_reasons.values()), alerts,
                 dict(excess) or "none", dlq_dups, alert_dups, seed, time.time() - t_start))
        return 0
    finally:
        if producer is not None:
            producer.stop()
        kill_all(children)
        if producer is not None:
            producer.join(timeout=10)
        if a.keep:
            print("kept %s and the topics %s*" % (tmp, app))
        else:
            shutil.rmtree(tmp, ignore_errors=True)
            # The shared broker keeps retention.ms=-1 topics forever otherwise.
            subprocess.run([KAFKA_SH, "topics", "--bootstrap", bootstrap, "delete", app + "[.-].*"],
                           capture_output=True, timeout=120)


if __name__ == "__main__":
    sys.exit(main())
