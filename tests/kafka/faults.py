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
replay --alerts-json) except evidence.top_contributors: a clean `run` of this
scenario already differs from replay there (see the note printed), because
which corridors' expectations it reads depends on how many windows close in
one detector call; those differences are printed, not failed.

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
import urllib.request
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from restart_resumes import STOP_TIMEOUT, committed_offsets, parse_run_log  # noqa: E402
from run_matches_replay import KAFKA_SH, replay_totals, run_totals, sh  # noqa: E402

SCENARIO = ["--scenario", "port_closure", "--seed", "5", "--partitions", "4"]
PARTITIONS = 4                   # per input topic, and of the repartition topic
INPUT_TASKS = 2 * PARTITIONS     # stage-one tasks when one instance holds everything
SESSION = ["--set", "kafka.consumer.session.timeout.ms=6000", "--set", "kafka.consumer.heartbeat.interval.ms=1000"]
KILL_DELAY = (0.5, 5.0)          # seconds after a full assignment
SLICE_SECONDS = 7                # each kill-mode slice is produced over this long: longer than KILL_DELAY
FAILOVER_SLICES, FAILOVER_SLICE_SECONDS = 12, 3
FAILOVER_KILL_SLICES = (4, 10)   # A dies in one of these slices (0-based): 1/3 to 11/12 of the way
ASSIGN_TIMEOUT = 60              # a join waits <= 6 s for a dead member's session, then the rebalance
FINAL_TIMEOUT = 120              # the last `run --until-idle` (it takes seconds)
ASSIGNED = re.compile(r"shortfall run: assigned \d+ partitions \((\d+) input, (\d+) repartition tasks\)")
RELEASED = re.compile(r"shortfall run: (?:revoked|lost) (\d+) partitions")
METRICS = re.compile(r"shortfall run: metrics on (http://\S+/metrics)")


# ------------------------------------------------------------ reading topics --

def _varint(buf, i):
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf):
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wire)
        if i > len(buf):
            raise ValueError("truncated field %d" % (key >> 3))
        yield key >> 3, value


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
    f = dict(_fields(buf))
    seconds, nanos = f.get(1, 0), f.get(2, 0)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if nanos:
        frac = "%09d" % nanos
        text += "." + (frac[:3] if nanos % 1000000 == 0 else frac[:6] if nanos % 1000 == 0 else frac)
    return text + "Z"


def decode(buf, schema=_ALERT):
    """A protobuf message as the dict protobuf's JSON mapping gives (known fields only)."""
    out = {}
    for number, value in _fields(buf):
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


def without_contributors(alert):
    a = dict(alert)
    a["evidence"] = {k: v for k, v in a.get("evidence", {}).items() if k != "topContributors"}
    return a


def kcat(bootstrap, topic, fmt):
    r = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", topic, "-e", "-q",
                        "-X", "isolation.level=read_committed"] + fmt, capture_output=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("kcat on %s failed: %s" % (topic, r.stderr.decode(errors="replace")))
    return r.stdout


def read_alerts(bootstrap, topic):
    """Every committed record of the alert topic as (key, decoded ShortageAlert)."""
    out = kcat(bootstrap, topic, ["-f", "%p %o %K %S\n%k%s"])
    records, i = [], 0
    while i < len(out):
        nl = out.index(b"\n", i)
        partition, offset, klen, vlen = (int(x) for x in out[i:nl].split())
        i = nl + 1
        key = out[i:i + max(klen, 0)]
        i += max(klen, 0)
        value = out[i:i + max(vlen, 0)]
        i += max(vlen, 0)
        try:
            records.append((key.decode("utf-8", errors="replace"), normalise(decode(value))))
        except (ValueError, IndexError, UnicodeDecodeError) as e:
            records.append((key.decode("utf-8", errors="replace"),
                            {"undecodable": "%d@%d: %s" % (partition, offset, e)}))
    return records


def read_dlq(bootstrap, topic):
    """Every committed DLQ record's shortfall.* headers, {name without "shortfall.": value}."""
    records = []
    for line in kcat(bootstrap, topic, ["-J"]).splitlines():
        if not line.strip():
            continue
        flat = json.loads(line.decode("utf-8", errors="replace")).get("headers") or []
        headers = dict(zip(flat[0::2], flat[1::2]))
        records.append({k: headers.get("shortfall." + k)
                        for k in ("reason", "detail", "source.topic", "source.partition", "source.offset")})
    return records


# ------------------------------------------------------- processes, producer --

class Instance:
    """One `shortfall run` process; its stderr goes to NAME.log."""

    def __init__(self, name, cmd, tmp, children):
        self.name = name
        self.path = os.path.join(tmp, name + ".log")
        with open(self.path, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        children.append(self.proc)
        self.started = time.time()

    def log(self, since=0):
        with open(self.path, errors="replace") as f:
            return f.read()[since:]

    def tail(self, n=3000):
        """The end of its log without the configuration it prints first."""
        text = re.sub(r"shortfall run: configuration\n(?:(?!shortfall run:).*\n)*", "", self.log())
        return "--- %s (exit %s)\n%s" % (self.name, self.proc.poll(), text[-n:])

    def alive(self):
        return self.proc.poll() is None

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
        m = METRICS.search(self.log())
        if not m:
            return None
        try:
            text = urllib.request.urlopen(m.group(1), timeout=2).read().decode()
        except OSError:
            return None
        total = 0
        for line in text.splitlines():
            t = re.match(r'shortfall_records_consumed_total\{topic="([^"]+)"\} (\S+)', line)
            if t and t.group(1) in input_topics:
                total += int(float(t.group(2)))
        return total

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
                diff = {k: (g.get(k), w.get(k)) for k in sorted(set(w) | set(g)) if g.get(k) != w.get(k)}
                problems.append("%s: {column: (run, replay)} %s" % (key, diff))
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
    for k in [k for k in common if without_contributors(want_by[k]) != without_contributors(got_by[k])][:5]:
        findings.append("alert %s differs from replay's:\n  run    %s\n  replay %s"
                        % (k, without_contributors(got_by[k]), without_contributors(want_by[k])))
    if compare:
        problems.extend(findings)
    else:
        notes.extend("not failed (at_least_once counted input twice, so alerts may move): " + f for f in findings)
    if not want:
        problems.append("the scenario raises no alert: nothing to check on the alert topic")
    contributors = [k for k in common if want_by[k].get("evidence", {}).get("topContributors")
                    != got_by[k].get("evidence", {}).get("topContributors")]
    if contributors:
        def shares(alert):
            return ", ".join("%s-%s-%s %.3f" % (c.get("corridor", {}).get("originCountry"),
                                                c.get("corridor", {}).get("destinationCountry"),
                                                c.get("corridor", {}).get("portOfEntry"), c.get("share", 0))
                             for c in alert.get("evidence", {}).get("topContributors", []))
        k = contributors[0]
        notes.append("evidence.top_contributors differ from replay's in %d alert record(s), e.g. %s: run [%s], "
                     "replay [%s]. Not failed: a clean run differs from replay there too "
                     "(ShortageDetection::AddContributors reads each corridor's latest expected shipments, so "
                     "the result depends on how many windows one detector call closes)"
                     % (len(contributors), k, shares(got_by[k]), shares(want_by[k])))
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
    a = p.parse_args()
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 31)
    rng = random.Random(seed)
    exact = a.guarantee == "exactly_once"
    bootstrap = open(a.bootstrap_file).read().strip()
    app = "faults%s%d-%d" % (a.mode[0], os.getpid(), int(time.time()))
    topics = {k: "%s.%s" % (app, k) for k in ("shipments", "customs", "alerts", "dlq")}
    inputs = {topics["shipments"], topics["customs"]}
    print("faults %s %s: seed %d (--seed %d repeats the kill moments), group %s, %d events"
          % (a.mode, a.guarantee, seed, seed, app, a.events), flush=True)
    for t in ("shipments", "customs"):
        sh([KAFKA_SH, "topics", "--bootstrap", bootstrap, "create", topics[t], str(PARTITIONS), "retention.ms=-1"])

    tmp = tempfile.mkdtemp(prefix="shortfall-faults-")
    children, instances, producer = [], [], None
    t_start = time.time()
    problems, notes = [], []
    try:
        # --- the clean computation: replay of the same records.
        events = os.path.join(tmp, "events.pb")
        gen = [a.shortfall, "gen"] + SCENARIO + ["--events", str(a.events)]
        sh(gen + ["--out", events])
        replay_csv, replay_alerts = os.path.join(tmp, "replay.csv"), os.path.join(tmp, "replay-alerts.json")
        replay = sh([a.shortfall, "replay", "--input", events, "--print", "none", "--totals-csv", replay_csv,
                     "--alerts-json", replay_alerts])
        m = re.search(r"records (\d+)  accepted (\d+)  invalid (\d+)  late (\d+)", replay.stdout)
        records = int(m.group(1))
        want_reasons = Counter({k: int(v) for k, v in re.findall(r"^  ([a-z_]+) (\d+)$", replay.stdout, re.M)})
        if int(m.group(4)):
            want_reasons["late"] = int(m.group(4))
        with open(replay_alerts) as f:
            want_alerts = [json.loads(line) for line in f if line.strip()]
        gen_kafka = gen + ["--to-kafka", "--brokers", bootstrap, "--keep-partitions",
                           "--shipments-topic", topics["shipments"], "--customs-topic", topics["customs"]]

        def config(state):
            path = os.path.join(tmp, state + ".yaml")
            with open(path, "w") as f:
                f.write("application_id: %s\n"
                        "topics:\n  shipments: %s\n  customs: %s\n  alerts: %s\n  dlq: %s\n"
                        "repartition:\n  partitions: %d\n"
                        "state:\n  dir: %s\n"
                        "metrics:\n  bind: 127.0.0.1:0\n"
                        % (app, topics["shipments"], topics["customs"], topics["alerts"], topics["dlq"],
                           PARTITIONS, os.path.join(tmp, state)))
            return path

        def start(name, cfg, extra=()):
            inst = Instance(name, [a.shortfall, "run", "--config", cfg, "--brokers", bootstrap,
                                   "--set", "processing.guarantee=" + a.guarantee] + SESSION + list(extra),
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
            print("B holds every partition %.1f s after the kill" % takeover, flush=True)
            if not wait_for(lambda: producer.produced == before_tail or producer.error,
                            60 + FAILOVER_SLICES * FAILOVER_SLICE_SECONDS) or producer.error:
                return fail("producer did not finish: %s (%d of %d records)"
                            % (producer.error or "still running", producer.produced, before_tail), inst_b)
            offsets = {}

            def caught_up():
                offsets.update(committed_offsets(bootstrap, app, inputs))
                return (len(offsets) == INPUT_TASKS and sum(end for _, end in offsets.values()) == before_tail
                        and all(c == end for c, end in offsets.values()))
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
        for proc in children:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
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
