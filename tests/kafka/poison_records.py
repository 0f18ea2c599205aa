#!/usr/bin/env python3
"""Poison records never stall a partition; every input record ends in the state or in the DLQ.

A normal scenario slice (`gen --seed S --events N --partitions 4`, the
generator's default malformed and late rates) goes to fresh input topics in
three chunks with `gen --to-kafka --keep-partitions --from-record/--to-record`
(same seed, same records as the file `replay` reads: run_matches_replay.py
relies on that too). After each chunk this script produces, with `kcat -P`,
one batch of poison records on every input partition, each marked with a
header `test.poison: <id>` (the runtime copies input headers to the DLQ):

  on all 8 input partitions (4 shipments, 4 customs)
    garbage_pb      random bytes that are not protobuf wire format (checked
                    here), content-type: application/x-protobuf -> unparseable
    garbage_none    the same kind of bytes, no content-type (auto-detect)  -> unparseable
    garbage_json    random bytes, content-type: application/json           -> unparseable
    garbage_brace   '{' + random bytes, no content-type: auto-detection
                    tries JSON, then protobuf; both fail                   -> unparseable
    empty           a zero-length value: protobuf parses it as a message
                    with every field at its default, so the first check
                    that fails is the id (EventNormalizer::Normalize)      -> missing_id
    null            a null value (a tombstone; kcat -Z): the runtime reads
                    it as an empty value                                   -> missing_id
  on the 4 shipments partitions only, "a schema from the future": a valid
  ShipmentEvent (TRANSPORT ARRI ACT at the border, one semiconductors line,
  MX-US-2304) as a newer producer would write it
    v2_pb_param     binary, plus unknown fields of every wire type (varint,
                    fixed32, fixed64, length-delimited, group; at top level,
                    in the corridor and in the goods line), content-type
                    "application/x-protobuf; schema=shortfall.v2.ShipmentEvent"
                                                                           -> accepted
    v2_pb_vnd       the same, content-type "application/vnd.shortfall.v2+protobuf"
                                                                           -> accepted
    v2_pb_unknown_ct the same, content-type "application/vnd.shortfall.v2"
                    (neither json nor protobuf: auto-detect -> protobuf)   -> accepted
    v2_json         protobuf JSON with unknown keys (top level and nested),
                    content-type: application/json                         -> accepted
    v2_json_auto    the same without content-type (auto-detect -> JSON)    -> accepted
    v2_only_unknown the same data under field numbers v1 does not know,
                    so no v1 field is set                                  -> unparseable
    v2_enum_pb      binary, event_class = 7 (an enum value v1 lacks; read
                    as unspecified, so ARRI is no code of it)              -> unknown_event_code
    v2_enum_json    JSON, eventClass "EVENT_CLASS_AIRSPACE" (the JSON parser
                    ignores unknown enum names, leaving it unspecified)    -> unknown_event_code
    v2_retyped      binary, event_time retyped to int64 milliseconds (wire
                    type 0 on field 6, not a Timestamp): protobuf keeps the
                    mismatched field as unknown, so event_time is unset    -> missing_event_time
  once, after the first chunk, on shipments partition 2 (unless --without-large):
    large           10 MiB (10485760 bytes) of random bytes, content-type
                    application/x-protobuf                                 -> unparseable
    Its DLQ record must fit the producer's message.max.bytes (librdkafka's
    default 1,000,000): its value is cut to at most 1,000,000 bytes (a prefix
    of the original) and it carries `shortfall.value.truncated_from: 10485760`.

Why the accepted ones are accepted: proto/README.md's v1 compatibility rule
3, "readers tolerate the unknown": unknown fields are skipped, and
operators/event_decoder.cc parses binary with protobuf (which keeps unknown
fields aside) and JSON with ignore_unknown_fields; the content-type only
picks the parser (PayloadFormatFromContentType: "json" -> JSON, "protobuf"
-> binary, anything else -> auto-detect), the schema it names is not
checked. Only a value that sets no v1 field at all is unparseable (the
decoder's guard against random bytes that parse as nothing but unknown
fields). An unknown enum value is "treated as *_UNSPECIFIED" (rule 3), and
a retyped field is a v2 change (rule 4), which a v1 reader cannot read.

The accepted records carry an event time two hours before the newest
plausible actual event time on their partition so far (so they are never
late and never move the partition's watermark) and add, each, exactly one
shipment, one goods line, 1000 pieces, 50 kg and 25,000 USD to
semiconductors MX-US-2304 and semiconductors *.

Then `shortfall run --until-idle --totals-csv` (the config file of
kafka_testlib.write_config, as in restart_resumes.py; `--guarantee exactly_once` adds
`--set processing.guarantee=exactly_once`) must:
- exit 0 within RUN_TIMEOUT seconds;
- leave the group's committed offset equal to the end offset on every input
  partition (ConsumerGroupCommand), N + poison records in all;
- log N + P input records: accepted = replay's + the accepted poison,
  invalid = replay's + the rejected poison, late = replay's, none too late
  at stage two;
- have written every rejected poison record to the DLQ exactly once (matched
  by shortfall.source.topic/partition/offset to where the record was read
  back from the input topic), with the expected shortfall.reason, a
  shortfall.detail, its original key, value and headers; and no accepted one;
- have written the normal records' DLQ records with reasons equal to
  `replay`'s counts of the normal slice, each with shortfall.source.*, no
  source record twice;
- write totals equal to `replay --totals-csv` of the normal slice plus the
  accepted poison's contribution above.
As a cross-check of the expectations (no Kafka involved), `replay` of the
same records in the same per-partition order (the poison as raw values)
must count the same reasons and the same totals.

About 20-30 s on two cores (10 s of it producing). --without-large leaves
the 10 MiB record out, to check everything else against a binary that
cannot dead-letter it yet; --keep-tmp keeps the files (event files, config,
run log).

Usage: poison_records.py SHORTFALL BOOTSTRAP_FILE [--events N] [--seed S]
         [--guarantee at_least_once|exactly_once] [--without-large] [--keep-tmp]
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from kafka_testlib import (SCALES, LoggedRun, column_diff, committed_offsets, create_topics,  # noqa: E402
                           event_file_records, f_bytes, f_double, f_fixed32, f_fixed64, f_group, f_varint,
                           gen_and_replay, kcat_produce, produce_args, read_records, read_varint, replay_counts,
                           replay_totals, run_counts, run_totals, sh, topic_names, varint, wire_fields,
                           write_config)

RUN_TIMEOUT = 180          # seconds `shortfall run --until-idle` may take
PARTITIONS = 4             # per input topic
LARGE_SIZE = 10 * 1024 * 1024
DLQ_VALUE_CAP = 1000000    # librdkafka's default message.max.bytes
TOPIC_CONFIGS = ["retention.ms=-1", "max.message.bytes=16777216"]
POISON_HEADER = "test.poison"
PB = "application/x-protobuf"
PB_V2 = "application/x-protobuf; schema=shortfall.v2.ShipmentEvent"
JSON_CT = "application/json"
ACCEPTED = "accepted"

# The accepted future event's contribution to each of its two series,
# in kafka_testlib.read_totals' fixed-point units.
FUTURE_SERIES = [("semiconductors", "MX-US-2304"), ("semiconductors", "*")]
FUTURE_DELTA = {"shipments": 1, "goods_lines": 1, "quantity_pcs": 1000 * SCALES["quantity_pcs"],
                "gross_weight_kg": 50 * SCALES["gross_weight_kg"],
                "declared_value_usd": 25000 * SCALES["declared_value_usd"]}


# --- protobuf wire format (field numbers from proto/shortfall/v1/; encoders in kafka_testlib).
def wire_valid(buf):
    """True when buf is well-formed protobuf wire format (any fields). Looser
    than protobuf's parser (which also checks known fields' types, nested
    messages and UTF-8), so False here means protobuf cannot parse it."""
    def fields(i, end, group):
        while i < end:
            key, i = read_varint(buf, i)
            number, wire = key >> 3, key & 7
            if number == 0:
                return None
            if wire == 0:
                _, i = read_varint(buf, i)
            elif wire == 1:
                i += 8
            elif wire == 2:
                n, i = read_varint(buf, i)
                i += n
            elif wire == 3:
                i = fields(i, end, number)
                if i is None:
                    return None
            elif wire == 4:
                return i if group == number else None
            elif wire == 5:
                i += 4
            else:
                return None
            if i > end:
                return None
        return i if group is None else None
    try:
        return fields(0, len(buf), None) == len(buf)
    except (ValueError, RecursionError):
        return False


def parse_fields(buf):
    """Top-level fields of a well-formed message: {number: [value, ...]} (ints or bytes)."""
    out = defaultdict(list)
    for number, value in wire_fields(buf):
        out[number].append(value)
    return out


def timestamp(seconds):
    return f_varint(1, seconds)


def rfc3339(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


# --- the future ShipmentEvent.
def future_event_pb(event_id, t, event_class=1, retyped_time=False, renumber=0, unknown=True):
    """A v1 ShipmentEvent (ARRI ACT, MX-US-2304, one semiconductors line) with
    v2 additions. renumber > 0 moves every field to number + renumber (no v1
    field set); retyped_time sends event_time as int64 milliseconds."""
    def n(number):
        return number + renumber
    corridor = f_bytes(n(1), "MX") + f_bytes(n(2), "US") + f_bytes(n(3), "2304")
    line = (f_bytes(n(1), "854231") + f_varint(n(2), 2022) + f_double(n(3), 1000.0) + f_bytes(n(4), "NAR") +
            f_double(n(5), 50.0) + f_double(n(6), 25000.0) + f_bytes(n(7), "USD"))
    if unknown:
        corridor += f_bytes(4, "LANE-FAST")                  # Corridor has fields 1..3
        line += f_bytes(9, "UN3480") + f_varint(10, 3)       # GoodsLine has fields 1..8
    out = b""
    if unknown:  # unknown fields before the known ones, too
        out += f_varint(13, 2) + f_fixed32(15, 0xDEADBEEF)
    out += f_bytes(n(1), event_id) + f_bytes(n(2), "SHP-" + event_id) + f_varint(n(3), event_class)
    out += f_bytes(n(4), "ARRI") + f_varint(n(5), 1)
    out += f_varint(n(6), t * 1000) if retyped_time else f_bytes(n(6), timestamp(t))
    out += f_bytes(n(7), timestamp(t + 60)) + f_bytes(n(8), corridor) + f_bytes(n(9), "BOCR")
    out += f_bytes(n(10), "TRUCK") + f_bytes(n(12), line)
    if unknown:
        out += (f_bytes(14, f_bytes(1, "co2e") + f_double(2, 12.5)) + f_fixed64(16, 1 << 60) +
                f_group(17, f_varint(1, 42)) + f_bytes(100000, b"\x00\x01v2"))
    return out


def future_event_json(event_id, t, event_class="EVENT_CLASS_TRANSPORT"):
    e = {"eventId": event_id, "shipmentId": "SHP-" + event_id, "eventClass": event_class,
         "eventTypeCode": "ARRI", "eventClassifier": "EVENT_CLASSIFIER_ACTUAL",
         "eventTime": rfc3339(t), "publishTime": rfc3339(t + 60),
         "corridor": {"originCountry": "MX", "destinationCountry": "US", "portOfEntry": "2304",
                      "laneType": "FAST"},
         "facilityType": "BOCR", "modeOfTransport": "TRUCK",
         "goods": [{"hsCode": "854231", "hsVersion": "HS_VERSION_2022", "quantity": 1000, "unit": "NAR",
                    "grossWeightKg": 50, "declaredValue": 25000, "currency": "USD",
                    "dangerousGoods": {"unNumber": "UN3480", "class": 9}}],
         "schemaVersion": 2, "carbonFootprint": {"kgCo2e": 12.5}, "tags": ["v2", None, {"x": [1, 2]}]}
    return json.dumps(e).encode()


def garbage(rng, first=None):
    """Random bytes (16..600) that are not protobuf wire format."""
    while True:
        data = bytes(rng.getrandbits(8) for _ in range(rng.randint(16, 600)))
        if first is not None:
            data = first + data
        elif data[0] in b" \t\r\n{":
            continue
        if not wire_valid(data):
            return data


def large_garbage(rng):
    data = bytearray(rng.randbytes(LARGE_SIZE))
    data[0] = 0x00  # field number 0: not protobuf whatever follows (and not '{')
    return bytes(data)


class Poison:
    def __init__(self, pid, kind, partition, value, content_type, expect):
        self.id, self.kind, self.partition = pid, kind, partition
        self.value, self.content_type, self.expect = value, content_type, expect
        self.key = "poison-" + pid
        self.offset = None  # where it was read back from the input topic


def make_batch(b, rng, future_time, with_large):
    """Batch b's poison records: [Poison]; future_time[p]: event time for shipments partition p."""
    out = []
    for kind in ("shipments", "customs"):
        for p in range(PARTITIONS):
            def add(name, value, ctype, expect):
                out.append(Poison("b%d-%s%d-%s" % (b, kind[0], p, name), kind, p, value, ctype, expect))
            add("garbage_pb", garbage(rng), PB, "unparseable")
            add("garbage_none", garbage(rng), None, "unparseable")
            add("garbage_json", garbage(rng), JSON_CT, "unparseable")
            add("garbage_brace", garbage(rng, first=b"{"), None, "unparseable")
            add("empty", b"", PB, "missing_id")
            add("null", None, None, "missing_id")
            if kind != "shipments":
                continue
            t = future_time[p]
            eid = "future-b%d-p%d-" % (b, p)
            add("v2_pb_param", future_event_pb(eid + "1", t), PB_V2, ACCEPTED)
            add("v2_pb_vnd", future_event_pb(eid + "2", t), "application/vnd.shortfall.v2+protobuf", ACCEPTED)
            add("v2_pb_unknown_ct", future_event_pb(eid + "3", t), "application/vnd.shortfall.v2", ACCEPTED)
            add("v2_json", future_event_json(eid + "4", t), JSON_CT, ACCEPTED)
            add("v2_json_auto", future_event_json(eid + "5", t), None, ACCEPTED)
            add("v2_only_unknown", future_event_pb(eid + "6", t, renumber=200), PB_V2, "unparseable")
            add("v2_enum_pb", future_event_pb(eid + "7", t, event_class=7), PB_V2, "unknown_event_code")
            add("v2_enum_json", future_event_json(eid + "8", t, event_class="EVENT_CLASS_AIRSPACE"),
                JSON_CT, "unknown_event_code")
            add("v2_retyped", future_event_pb(eid + "9", t, retyped_time=True), PB_V2, "missing_event_time")
            if b == 0 and p == 2 and with_large:
                add("large", large_garbage(rng), PB, "unparseable")
    return out


# --- the event file.
def read_event_file(path):
    """[(raw EventRecord bytes, {number: [values]})] in file order."""
    return [(raw, parse_fields(raw)) for raw in event_file_records(path)]


def newest_actual(records, topic_name):
    """{partition: newest plausible actual event time (s)} of the shipments records:
    classifier ACT, in 2000..2100, not more than an hour after their publish time."""
    newest = {}
    for _, r in records:
        if r.get(1, [b""])[0].decode() != topic_name or 10 not in r:
            continue
        try:
            e = parse_fields(r[10][0])
        except ValueError:
            continue
        if e.get(5, [0])[0] != 1 or 6 not in e:
            continue
        t = parse_fields(e[6][0]).get(1, [0])[0]
        pub = parse_fields(e[7][0]).get(1, [0])[0] if 7 in e else None
        if not 946684800 <= t < 4102444800 or (pub is not None and t > pub + 3600):
            continue
        p = r.get(2, [0])[0]
        newest[p] = max(newest.get(p, 0), t)
    return newest


def event_record(topic, partition, key, value, record_time=None):
    out = f_bytes(1, topic) + f_varint(2, partition) + f_bytes(3, key)
    if record_time is not None:
        out += f_bytes(4, timestamp(record_time))
    return out + f_bytes(12, value or b"")


def size(value):
    return "null" if value is None else "of %d bytes" % len(value)


def produce_poison(bootstrap, topic, rec, tmp):
    headers = [(POISON_HEADER, rec.id)] + ([("content-type", rec.content_type)] if rec.content_type else [])
    kcat_produce(bootstrap, topic, rec.partition, rec.key, rec.value, headers, tmp)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("shortfall")
    p.add_argument("bootstrap_file")
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--seed", type=int, default=59)
    p.add_argument("--guarantee", choices=("at_least_once", "exactly_once"), default="at_least_once")
    p.add_argument("--without-large", action="store_true",
                   help="leave out the 10 MiB record (to check the rest against a binary without DLQ truncation)")
    p.add_argument("--keep-tmp", action="store_true")
    a = p.parse_args()
    bootstrap = open(a.bootstrap_file).read().strip()
    app = "poison%d-%d" % (os.getpid(), int(time.time()))
    topics = topic_names(app)
    # The runtime creates only missing topics, with broker defaults: the DLQ
    # is made here so that it keeps its records and takes large ones.
    create_topics(bootstrap, [topics[t] for t in ("shipments", "customs", "dlq")], PARTITIONS, TOPIC_CONFIGS)

    tmp = tempfile.mkdtemp(prefix="shortfall-poison-")
    run = None
    t_start = time.time()
    try:
        gen = [a.shortfall, "gen", "--seed", str(a.seed), "--events", str(a.events), "--partitions", str(PARTITIONS)]
        events, replay_csv, replay_out = gen_and_replay(a.shortfall, gen, tmp)
        normal_counts, normal_reasons = replay_counts(replay_out)
        records = read_event_file(events)
        if len(records) != a.events:
            raise RuntimeError("read %d records from %s, want %d" % (len(records), events, a.events))
        names = {r[1][0].decode() for _, r in records}
        file_topic = {"shipments": next(n for n in names if n.startswith("shipments")),
                      "customs": next(n for n in names if n.startswith("customs"))}

        # --- produce: chunk, poison, chunk, poison, chunk, poison; and the same order to a file for replay.
        rng = random.Random(a.seed)
        bounds = [0, a.events // 3, 2 * a.events // 3, a.events]
        poison = []
        combined = bytearray()
        for b in range(3):
            first, last = bounds[b], bounds[b + 1]
            sh(produce_args(gen, bootstrap, topics, first, last))
            for raw, _ in records[first:last]:
                combined += varint(len(raw)) + raw
            newest = newest_actual(records[:last], file_topic["shipments"])
            future_time = {p: newest[p] - 7200 for p in range(PARTITIONS)}
            batch = make_batch(b, rng, future_time, not a.without_large)
            for rec in batch:
                produce_poison(bootstrap, topics[rec.kind], rec, tmp)
                er = event_record(file_topic[rec.kind], rec.partition, rec.key, rec.value,
                                  record_time=future_time[rec.partition] + 120 if rec.kind == "shipments" else None)
                combined += varint(len(er)) + er
            poison += batch
        combined_path = os.path.join(tmp, "combined.pb")
        with open(combined_path, "wb") as f:
            f.write(combined)
        combined_replay = sh([a.shortfall, "replay", "--input", combined_path, "--print", "none",
                              "--totals-csv", os.path.join(tmp, "combined.csv")])
        t_produced = time.time()

        problems = []
        by_id = {rec.id: rec for rec in poison}
        accepted_poison = [rec for rec in poison if rec.expect == ACCEPTED]
        want_poison_reasons = Counter(rec.expect for rec in poison if rec.expect != ACCEPTED)

        # --- where each poison record landed: read the input topics back.
        ends = {}  # {(topic, partition): end offset}
        for kind in ("shipments", "customs"):
            for part in range(PARTITIONS):
                ends[(topics[kind], part)] = 0
            for (part, offset), rec in read_records(bootstrap, topics[kind]).items():
                ends[(topics[kind], part)] = max(ends[(topics[kind], part)], offset + 1)
                pid = (rec["headers"] or {}).get(POISON_HEADER)
                if pid is None:
                    continue
                r = by_id.get(pid)
                if r is None or r.kind != kind or r.partition != part or r.offset is not None:
                    problems.append("input %s-%d@%d carries %s=%s: unknown, misplaced or twice"
                                    % (kind, part, offset, POISON_HEADER, pid))
                    continue
                r.offset = offset
                if rec["value"] != r.value or rec["key"] != r.key.encode():
                    problems.append("input %s-%d@%d (%s): key/value not as produced (value %s bytes, want %s)"
                                    % (kind, part, offset, pid, None if rec["value"] is None else len(rec["value"]),
                                       None if r.value is None else len(r.value)))
        unplaced = [r.id for r in poison if r.offset is None]
        if unplaced:
            problems.append("%d poison records not found in the input topics: %s" % (len(unplaced), unplaced[:5]))
        n_input = a.events + len(poison)
        if sum(ends.values()) != n_input:
            problems.append("the input topics hold %d records, want %d (%d normal + %d poison)"
                            % (sum(ends.values()), n_input, a.events, len(poison)))
        if problems:  # the input is not what this test means to feed: nothing below would mean anything
            print("\n".join(problems))
            return 1

        # --- run until idle.
        config = write_config(os.path.join(tmp, "shortfall.yaml"), app, topics, os.path.join(tmp, "state"))
        run_csv = os.path.join(tmp, "run.csv")
        cmd = [a.shortfall, "run", "--config", config, "--brokers", bootstrap, "--until-idle",
               "--totals-csv", run_csv]
        if a.guarantee != "at_least_once":
            cmd += ["--set", "processing.guarantee=" + a.guarantee]
        t_run = time.time()
        logged_run = LoggedRun("run", cmd, tmp)
        run = logged_run.proc
        try:
            run.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            problems.append("shortfall run --until-idle still running after %d s (a stalled partition?)"
                            % RUN_TIMEOUT)
            run.kill()
            run.wait()
        run_seconds = time.time() - t_run
        err = logged_run.log()
        if run.returncode != 0:
            problems.append("shortfall run exited %s (want 0)" % run.returncode)

        # --- offsets: every input partition read and committed to its end.
        inputs = {topics["shipments"], topics["customs"]}
        committed = {tp: c for tp, (c, _) in committed_offsets(bootstrap, app, inputs).items()}
        behind = {"%s-%d" % tp: (committed.get(tp), end) for tp, end in sorted(ends.items())
                  if committed.get(tp) != end}
        if behind:
            problems.append("the group's committed offset is not the end offset on %d of %d input partitions: "
                            "{partition: (committed, end)} %s" % (len(behind), len(ends), behind))

        # --- the run's own counts.
        want_log = {"records": n_input, "accepted": normal_counts["accepted"] + len(accepted_poison),
                    "invalid": normal_counts["invalid"] + len(poison) - len(accepted_poison),
                    "late": normal_counts["late"], "late_stage_two": 0}
        got_log = run_counts(err)
        if got_log != want_log:
            problems.append("run logged %s, want %s" % (got_log, want_log))

        # --- the DLQ.
        dlq = read_records(bootstrap, topics["dlq"])
        poison_at = {(topics[r.kind], r.partition, r.offset): r for r in poison}
        seen_sources = Counter()
        normal_dlq_reasons = Counter()
        poison_found = {}
        large_report = None
        for (dp, do), rec in sorted(dlq.items()):
            h = rec["headers"] or {}
            where = "DLQ %d@%d" % (dp, do)
            try:
                source = (h["shortfall.source.topic"], int(h["shortfall.source.partition"]),
                          int(h["shortfall.source.offset"]))
            except (KeyError, ValueError):
                problems.append("%s lacks shortfall.source.* headers: %s" % (where, h))
                continue
            seen_sources[source] += 1
            if source[0] not in inputs:
                problems.append("%s names source topic %r" % (where, source[0]))
            if not h.get("shortfall.reason") or not h.get("shortfall.detail"):
                problems.append("%s from %s lacks shortfall.reason or .detail: %s" % (where, source, h))
            r = poison_at.get(source)
            if r is None:
                if POISON_HEADER in h:
                    problems.append("%s carries %s=%s but names source %s" % (where, POISON_HEADER,
                                                                              h[POISON_HEADER], source))
                normal_dlq_reasons[h.get("shortfall.reason")] += 1
                continue
            poison_found[r.id] = h.get("shortfall.reason")
            what = "%s (poison %s, from %s-%d@%d)" % (where, r.id, r.kind, r.partition, r.offset)
            if r.expect == ACCEPTED:
                problems.append("%s: in the DLQ with reason %r, want accepted (detail %r)"
                                % (what, h.get("shortfall.reason"), h.get("shortfall.detail")))
                continue
            if h.get("shortfall.reason") != r.expect:
                problems.append("%s: reason %r, want %r (detail %r)"
                                % (what, h.get("shortfall.reason"), r.expect, h.get("shortfall.detail")))
            if h.get(POISON_HEADER) != r.id or h.get("content-type") != r.content_type:
                problems.append("%s: original headers not kept: %s=%r content-type=%r, sent %r %r"
                                % (what, POISON_HEADER, h.get(POISON_HEADER), h.get("content-type"),
                                   r.id, r.content_type))
            if rec["key"] != r.key.encode():
                problems.append("%s: key %r, want the original %r" % (what, rec["key"], r.key))
            value, original = rec["value"], r.value  # None for null: a null value stays null
            truncated_from = h.get("shortfall.value.truncated_from")
            if r.kind == "shipments" and r.id.endswith("-large"):
                value = value or b""
                large_report = (len(value), truncated_from)
                if truncated_from != str(LARGE_SIZE):
                    problems.append("%s: shortfall.value.truncated_from %r, want %r"
                                    % (what, truncated_from, str(LARGE_SIZE)))
                if len(value) > DLQ_VALUE_CAP or not original.startswith(value):
                    problems.append("%s: value of %d bytes, want a prefix of the original of at most %d bytes%s"
                                    % (what, len(value), DLQ_VALUE_CAP,
                                       "" if original.startswith(value) else " (it is not a prefix)"))
            else:
                if value != original:
                    problems.append("%s: value %s, not the original %s" % (what, size(value), size(original)))
                if truncated_from is not None:
                    problems.append("%s: shortfall.value.truncated_from %r on a value that fits"
                                    % (what, truncated_from))
        twice = [s for s, n in seen_sources.items() if n > 1]
        if twice:
            problems.append("%d input records in the DLQ more than once, e.g. %s" % (len(twice), twice[:3]))
        missing = [r.id for r in poison if r.expect != ACCEPTED and r.id not in poison_found]
        if missing:
            problems.append("%d rejected poison records missing from the DLQ: %s" % (len(missing), missing[:10]))
        if normal_dlq_reasons != normal_reasons:
            problems.append("DLQ reasons of the normal records %s, replay of the normal slice %s"
                            % (dict(normal_dlq_reasons), dict(normal_reasons)))
        if not normal_reasons.get("unparseable") or not normal_reasons.get("late"):
            problems.append("the normal slice has no unparseable or no late records: %s" % dict(normal_reasons))

        # --- totals: replay of the normal slice + the accepted future events.
        want = replay_totals(replay_csv)
        for series in FUTURE_SERIES:
            row = want.get(series)
            if row is None:
                problems.append("the normal slice has no series %s to add the future events to" % (series,))
                continue
            for col, d in FUTURE_DELTA.items():
                row[col] += d * len(accepted_poison)
        if len(want) < 20:
            problems.append("scenario too small to test anything: %d series" % len(want))

        def compare(name, got):
            for key in sorted(set(want) | set(got)):
                if want.get(key) != got.get(key):
                    diff = column_diff(want.get(key) or {}, got.get(key) or {})
                    problems.append("%s %s: {column: (%s, expected)} %s" % (name, key, name, diff))
        if os.path.exists(run_csv):
            compare("run", run_totals([run_csv]))
        else:
            problems.append("run wrote no totals CSV")

        # --- cross-check, no Kafka: replay of the same records in the same order.
        combined_counts, combined_reasons = replay_counts(combined_replay.stdout)
        if combined_reasons != normal_reasons + want_poison_reasons:
            problems.append("replay of normal + poison counts reasons %s, expected %s (normal %s + poison %s)"
                            % (dict(combined_reasons), dict(normal_reasons + want_poison_reasons),
                               dict(normal_reasons), dict(want_poison_reasons)))
        compare("replay-of-all", replay_totals(os.path.join(tmp, "combined.csv")))

        if problems:
            print("\n".join(problems[:60]))
            print("--- shortfall run (last 4000 characters of its log)\n" + err[-4000:])
            return 1
        print("poison records: %d normal + %d poison records (%d accepted from a newer schema; DLQ %s), "
              "large record's DLQ value %s bytes truncated_from %s; run --until-idle %.1f s, exit 0, "
              "committed = end on %d input partitions; DLQ of the normal slice %s; %d series equal; %.0f s in all "
              "(%.0f s producing)"
              % (a.events, len(poison), len(accepted_poison), dict(want_poison_reasons),
                 large_report[0] if large_report else "-", large_report[1] if large_report else "-",
                 run_seconds, len(ends), dict(normal_dlq_reasons), len(want), time.time() - t_start,
                 t_produced - t_start))
        return 0
    finally:
        if run is not None and run.poll() is None:
            run.kill()
            run.wait()
        if a.keep_tmp:
            print("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
