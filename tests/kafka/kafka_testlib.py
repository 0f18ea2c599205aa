"""Helpers the Kafka tests share: one way to do each thing they all do.

The scripts in tests/kafka/ (and tests/monitoring/live_metrics.py) create
fresh topics on a real broker, produce a generated scenario to them, run
`shortfall run` and check what it left behind against `shortfall replay`.
This module holds the pieces they have in common:

  processes        sh, LoggedRun (stderr to a log file read while it runs),
                   terminate, kill_all, STOP_TIMEOUT
  topics, config   topic_names, create_topics, produce_args, run_settings,
                   write_config
  results          gen_and_replay, read_totals / replay_totals / run_totals, column_diff,
                   replay_counts (replay's stdout), run_counts /
                   parse_run_log (a run's final counts line)
  group offsets    committed_offsets, group_offsets (strict), at_end
                   (ConsumerGroupCommand --describe)
  records          kcat_consume, kcat_json, read_records, read_dlq,
                   kcat_produce
  metrics          metrics_base, wait_for_metrics_base, http_get,
                   parse_metrics, consumed_input
  protobuf wire    varint, tag, f_* (encoding), read_varint, wire_fields,
                   event_file_records (decoding)

Nothing here asserts: helpers return what they read, and the scripts decide
what is a problem. A helper whose tool fails (kcat, ConsumerGroupCommand not
understood) raises RuntimeError; a script that meets one fails with its
traceback. Import it after `sys.path.insert(0, <this directory>)`, as the
scripts do.
"""
import csv
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
KAFKA_SH = os.path.join(HERE, "..", "..", "tools", "kafka.sh")
STOP_TIMEOUT = 30  # seconds a SIGTERMed `shortfall run` may take to exit
TOPIC_KINDS = ("shipments", "customs", "alerts", "dlq")
# Columns of a --totals-csv that hold decimals, and the factor that makes them exact integers.
SCALES = {"gross_weight_kg": 1000, "declared_value_usd": 10000, "quantity_kg": 1000, "quantity_pcs": 1000,
          "quantity_pairs": 1000, "quantity_l": 1000, "quantity_m3": 1000}
DLQ_HEADERS = ("reason", "detail", "source.topic", "source.partition", "source.offset")
MAX_RECORD_BYTES = 16777216  # what kcat may fetch and send: poison_records.py's 10 MiB record fits


# --- processes --------------------------------------------------------------------------------

def sh(args, **kw):
    """subprocess.run that raises on a non-zero exit and returns stdout and stderr as text.

    A failure prints the command's stderr first: the exception alone does not say why."""
    try:
        return subprocess.run(args, check=True, capture_output=True, text=True, **kw)
    except subprocess.CalledProcessError as e:
        sys.stderr.write("failed (exit %d): %s\n%s" % (e.returncode, " ".join(map(str, args)), e.stderr or ""))
        raise


class LoggedRun:
    """One child process (a `shortfall run`, a prometheus): stdout dropped, stderr to LOG_DIR/NAME.log.

    The log is a file, not a pipe, so a chatty child never blocks on it and
    log() can read it while the child runs. `proc` is the Popen; `children`,
    when given, is a list the Popen is appended to (for kill_all)."""

    def __init__(self, name, cmd, log_dir, children=None):
        self.name = name
        self.path = os.path.join(log_dir, name + ".log")
        with open(self.path, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        if children is not None:
            children.append(self.proc)
        self.started = time.time()

    def log(self, since=0):
        """The log so far, from character `since` on."""
        with open(self.path, errors="replace") as f:
            return f.read()[since:]

    def alive(self):
        return self.proc.poll() is None


def terminate(proc, timeout):
    """SIGTERM (so that `shortfall run` commits and logs its counts), then SIGKILL after timeout s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def kill_all(procs):
    """SIGKILL and reap every Popen of procs that is still running (a script's `finally`)."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- topics and the run's settings -------------------------------------------------------------

def topic_names(app):
    """{kind: "APP.kind"} for the four topics a run reads and writes (TOPIC_KINDS)."""
    return {k: "%s.%s" % (app, k) for k in TOPIC_KINDS}


def create_topics(bootstrap, names, partitions, configs=("retention.ms=-1",), **kw):
    """Creates each topic with tools/kafka.sh. The default keeps records forever: the scenarios'
    record timestamps are months old, and time-based retention would delete them. kw goes to sh."""
    for name in names:
        sh([KAFKA_SH, "topics", "--bootstrap", bootstrap, "create", name, str(partitions)] + list(configs), **kw)


def produce_args(gen, bootstrap, topics, first=None, last=None, rate=None):
    """`gen` (a `shortfall gen ...` command line) made to produce to topics["shipments"] and
    topics["customs"], each record on the partition the scenario gives it; only records
    [first, last) when first is given (the generator is deterministic: same seed, same records,
    so slices are the scenario file's records), at `rate` records/s when given (0: at once)."""
    cmd = gen + ["--to-kafka", "--brokers", bootstrap, "--keep-partitions",
                 "--shipments-topic", topics["shipments"], "--customs-topic", topics["customs"]]
    if first is not None:
        cmd += ["--from-record", str(first), "--to-record", str(last)]
    if rate is not None:
        cmd += ["--rate", str(rate)]
    return cmd


def run_settings(app, topics, state_dir, partitions=4):
    """`--set` arguments with what write_config writes: application_id, the four topics,
    repartition.partitions, state.dir and metrics.bind 127.0.0.1:0 (a free port, so that
    several instances can run on one machine)."""
    sets = (["application_id=" + app] + ["topics.%s=%s" % (k, topics[k]) for k in TOPIC_KINDS] +
            ["repartition.partitions=%d" % partitions, "state.dir=" + state_dir, "metrics.bind=127.0.0.1:0"])
    return [arg for s in sets for arg in ("--set", s)]


def write_config(path, app, topics, state_dir, partitions=4):
    """Writes a `shortfall run --config` file with the settings of run_settings; returns path."""
    with open(path, "w") as f:
        f.write("application_id: %s\n"
                "topics:\n  shipments: %s\n  customs: %s\n  alerts: %s\n  dlq: %s\n"
                "repartition:\n  partitions: %d\n"
                "state:\n  dir: %s\n"
                "metrics:\n  bind: 127.0.0.1:0\n"
                % (app, topics["shipments"], topics["customs"], topics["alerts"], topics["dlq"],
                   partitions, state_dir))
    return path


# --- what replay and run computed --------------------------------------------------------------

def gen_and_replay(shortfall, gen, tmp, extra=()):
    """Writes the scenario of `gen` (a `shortfall gen ...` command line) to TMP/events.pb and runs
    `shortfall replay --totals-csv TMP/replay.csv` (plus `extra` arguments) on it: the clean
    computation a run is compared with. Returns (events path, totals CSV path, replay's stdout)."""
    events, totals_csv = os.path.join(tmp, "events.pb"), os.path.join(tmp, "replay.csv")
    sh(gen + ["--out", events])
    replay = sh([shortfall, "replay", "--input", events, "--print", "none", "--totals-csv", totals_csv] + list(extra))
    return events, totals_csv, replay.stdout


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


def column_diff(want, got):
    """{column: (got, want)} of the columns where two rows of totals differ (None where one lacks it)."""
    return {k: (got.get(k), want.get(k)) for k in sorted(set(want) | set(got)) if got.get(k) != want.get(k)}


def replay_counts(stdout):
    """({"records", "accepted", "invalid", "late"}, Counter of DLQ reasons) from the stdout of
    `shortfall replay`; the reasons include "late", as the runtime's DLQ does."""
    m = re.search(r"records (\d+)  accepted (\d+)  invalid (\d+)  late (\d+)", stdout)
    counts = dict(zip(("records", "accepted", "invalid", "late"), map(int, m.groups())))
    reasons = Counter({k: int(v) for k, v in re.findall(r"^  ([a-z_]+) (\d+)$", stdout, re.M)})
    if counts["late"]:
        reasons["late"] = counts["late"]
    return counts, reasons


# The line `shortfall run` logs last when it stops cleanly (pipeline/runtime.cc).
RUN_LOG = re.compile(r"(\d+) input records \((\d+) accepted, (\d+) invalid, (\d+) late\), \d+ repartition "
                     r"records sent, \d+ applied \((\d+) too late for their window\)")


def run_counts(log):
    """{"records", "accepted", "invalid", "late", "late_stage_two"} from a run's final counts
    line, or None when its log has none (it did not stop cleanly)."""
    m = RUN_LOG.search(log)
    if not m:
        return None
    return dict(zip(("records", "accepted", "invalid", "late", "late_stage_two"), map(int, m.groups())))


def parse_run_log(name, log, problems):
    """run_counts, adding a problem naming the run when the line is missing."""
    counts = run_counts(log)
    if counts is None:
        problems.append("%s: no final counts line in its log" % name)
    return counts


# --- consumer group offsets (ConsumerGroupCommand) ---------------------------------------------

def _describe_group(bootstrap, group):
    """({(topic, partition): (committed or None, log end)}, whether the answer was understood,
    the CompletedProcess) of ConsumerGroupCommand --describe --group."""
    r = subprocess.run([KAFKA_SH, "run", "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                        "--bootstrap-server", bootstrap, "--describe", "--group", group],
                       capture_output=True, text=True, timeout=60)
    offsets = {}
    understood = "GroupIdNotFoundException" in r.stdout + r.stderr  # never committed, never joined
    for line in (r.stdout + "\n" + r.stderr).splitlines():
        f = line.split()
        if f[:2] == ["GROUP", "TOPIC"] or "has no active members" in line:
            understood = True
        if len(f) >= 6 and f[0] == group and f[2].isdigit():
            offsets[(f[1], int(f[2]))] = (None if f[3] == "-" else int(f[3]), int(f[4]))
    return offsets, understood, r


def committed_offsets(bootstrap, group, topics=None):
    """{(topic, partition): (committed, log_end)} for `topics` (all the group's when None);
    committed is None when '-'. Whatever else the command says is ignored (a group that has not
    joined yet describes no partition): for polling."""
    offsets, _, _ = _describe_group(bootstrap, group)
    return {tp: v for tp, v in offsets.items() if topics is None or tp[0] in topics}


def group_offsets(bootstrap, group):
    """{(topic, partition): (committed or None, log_end)} of every partition the group describes,
    or {} when the group has no offsets; raises when ConsumerGroupCommand's answer is not understood."""
    offsets, understood, r = _describe_group(bootstrap, group)
    if not understood:
        raise RuntimeError("ConsumerGroupCommand --describe --group %s: %s %s" % (group, r.stdout, r.stderr))
    return offsets


def at_end(offsets, partitions, records):
    """True when offsets (committed_offsets' answer) cover `partitions` partitions holding
    `records` records in all, each committed to its end."""
    return (len(offsets) == partitions and sum(end for _, end in offsets.values()) == records
            and all(c == end for c, end in offsets.values()))


# --- records (kcat) ----------------------------------------------------------------------------

def kcat_consume(bootstrap, topic, args):
    """kcat -C's stdout (bytes) over every record of topic, read_committed: records of aborted
    or unfinished transactions are not shown. args: the format (-J or -f FMT)."""
    r = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", topic, "-e", "-q",
                        "-X", "isolation.level=read_committed",
                        "-X", "fetch.message.max.bytes=%d" % MAX_RECORD_BYTES] + list(args),
                       capture_output=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("kcat -C %s failed: %s" % (topic, r.stderr.decode(errors="replace")))
    return r.stdout


def kcat_json(bootstrap, topic):
    """Every record of topic as [(kcat -J's JSON object, {header name: value})], in kcat's order."""
    out = []
    for line in kcat_consume(bootstrap, topic, ["-J"]).splitlines():
        if line.strip():
            rec = json.loads(line.decode("utf-8", errors="replace"))
            flat = rec.get("headers") or []
            out.append((rec, dict(zip(flat[0::2], flat[1::2]))))
    return out


def read_records(bootstrap, topic):
    """Every record of topic, byte-exact, in kcat's order:
    {(partition, offset): {"key", "value" (bytes or None for null), "headers" {name: value}}}."""
    # A "%p %o %K %S" line (lengths -1 for null), then key and value bytes and a newline.
    data = kcat_consume(bootstrap, topic, ["-f", "%p %o %K %S\\n%k%s\\n"])
    out, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        p, o, klen, vlen = map(int, data[i:nl].split())
        i = nl + 1
        key = data[i:i + klen] if klen >= 0 else None
        i += max(klen, 0)
        value = data[i:i + vlen] if vlen >= 0 else None
        i += max(vlen, 0)
        if data[i:i + 1] != b"\n":
            raise RuntimeError("kcat output of %s out of step at %d-%d" % (topic, p, o))
        i += 1
        out[(p, o)] = {"key": key, "value": value, "headers": None}
    # Headers from -J (kcat's %h does not quote commas).
    for rec, headers in kcat_json(bootstrap, topic):
        out[(rec["partition"], rec["offset"])]["headers"] = headers
    return out


def read_dlq(bootstrap, topic):
    """Every DLQ record's shortfall.* headers, {name without "shortfall.": value} (None when absent)."""
    return [{k: headers.get("shortfall." + k) for k in DLQ_HEADERS} for _, headers in kcat_json(bootstrap, topic)]


def kcat_produce(bootstrap, topic, partition, key, value, headers, tmp):
    """Produces one record with kcat -P: key (text), value (bytes; b"" empty, None null),
    headers [(name, value)]. tmp: a directory for the value's file. Raises RuntimeError when
    kcat fails or says anything."""
    cmd = ["kcat", "-b", bootstrap, "-P", "-t", topic, "-p", str(partition),
           "-X", "message.max.bytes=%d" % MAX_RECORD_BYTES]
    for name, v in headers:
        cmd += ["-H", "%s=%s" % (name, v)]
    if value:  # one file, one record
        path = os.path.join(tmp, "value")
        with open(path, "wb") as f:
            f.write(value)
        r = subprocess.run(cmd + ["-k", key, path], capture_output=True, timeout=60)
    else:  # kcat skips empty files; "key:" on stdin with -K: gives an empty value, -Z a null one
        r = subprocess.run(cmd + ["-K:"] + (["-Z"] if value is None else []),
                           input=key.encode() + b":\n", capture_output=True, timeout=60)
    if r.returncode != 0 or r.stderr.strip():
        raise RuntimeError("kcat -P %s to %s-%d failed (%d): %s"
                           % (key, topic, partition, r.returncode, r.stderr.decode(errors="replace")))


# --- the metrics endpoint ----------------------------------------------------------------------

METRICS_LINE = re.compile(r"shortfall run: metrics on (http://[^/\s]+)/metrics")


def metrics_base(log):
    """http://HOST:PORT of the metrics endpoint a `shortfall run` log names, or None."""
    m = METRICS_LINE.search(log)
    return m.group(1) if m else None


def wait_for_metrics_base(run, timeout):
    """metrics_base of a LoggedRun's log once it is there; None if the run exits or timeout s pass first."""
    deadline = time.time() + timeout
    while True:
        exited = not run.alive()
        base = metrics_base(run.log())
        if base or exited or time.time() >= deadline:
            return base
        time.sleep(0.1)


def http_get(url, timeout=2.0):
    """(status, body) of a GET; (None, error text) when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace").strip()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace").strip()
    except (OSError, ValueError) as e:
        return None, str(e)


def parse_metrics(text):
    """[(name, {label: value}, value)] of the sample lines of a text exposition."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)", line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="((?:\\.|[^"\\])*)"', m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def consumed_input(base, topics):
    """Sum of shortfall_records_consumed_total over `topics` from /metrics at base (published once
    a second), or None when it does not answer 200."""
    status, body = http_get(base + "/metrics")
    if status != 200:
        return None
    return sum(int(v) for name, labels, v in parse_metrics(body)
               if name == "shortfall_records_consumed_total" and labels.get("topic") in topics)


# --- protobuf wire format, by hand (no protobuf module needed) ---------------------------------

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(number, wire):
    return varint(number << 3 | wire)


def f_varint(number, n):
    return tag(number, 0) + varint(n)


def f_bytes(number, data):
    data = data.encode() if isinstance(data, str) else data
    return tag(number, 2) + varint(len(data)) + data


def f_double(number, x):
    return tag(number, 1) + struct.pack("<d", x)


def f_fixed64(number, n):
    return tag(number, 1) + struct.pack("<Q", n)


def f_fixed32(number, n):
    return tag(number, 5) + struct.pack("<I", n)


def f_group(number, inner):
    return tag(number, 3) + inner + tag(number, 4)


def read_varint(buf, i):
    """(value, index after it) of the varint at buf[i]; ValueError when it is cut off."""
    n = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def wire_fields(buf):
    """(field number, value) of each field of a message, in order: an int for varints, bytes
    otherwise. ValueError for groups (wire types 3, 4) and fields cut off."""
    i = 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        wire = key & 7
        if wire == 0:
            value, i = read_varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = read_varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wire)
        if i > len(buf):
            raise ValueError("truncated field %d" % (key >> 3))
        yield key >> 3, value


def event_file_records(path):
    """The raw EventRecord messages of a `gen --out` file (each preceded by its length), in order."""
    with open(path, "rb") as f:
        data = f.read()
    out, i = [], 0
    while i < len(data):
        n, i = read_varint(data, i)
        out.append(data[i:i + n])
        i += n
    return out
