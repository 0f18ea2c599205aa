#!/usr/bin/env python3
"""Events fed by hand as JSON (protobuf's JSON mapping) are decoded and counted.

Produces a handful of records with `kcat -P`, one record per call, to fresh
single-partition input topics (so their offsets are 0, 1, 2, ... in the
order below):

  shipments  0  ARRI, JSON, content-type: application/json (camelCase names)
             1  ARRI, JSON, no header (auto-detection), proto field names,
                leading blanks, CAD and MXN values, a DZN line
             2  ARRI, binary protobuf encoded by this script, no header
             3  DEPA, JSON with header: valid, counts nothing
             4  a JSON object that is no ShipmentEvent, with the JSON header
             5  broken JSON, no header (auto: JSON fails, protobuf fails)
             6  valid JSON, no header, a goods line with unit 'XYZ'
             7  ARRI, JSON, content-type: application/json; charset=utf-8, LBR
  customs    0  CUSTOMS_STATUS_RELEASED, JSON with header

then runs `shortfall run --until-idle --totals-csv` and checks:
- the totals are exactly the expected rows, computed here from the events
  above with the default catalog's groups (catalog/critical_goods.csv) and
  the default units and USD rates, each amount rounded once per goods line
  (README "What it computes"). All-time totals count every accepted event
  whether or not its window has closed (Runtime::WriteTotals writes
  VolumeAggregator::Summaries(), whose totals AddToSeries adds at once), so
  no watermark has to pass;
- the DLQ holds exactly records 4 and 5 with shortfall.reason `unparseable`
  and record 6 with `unknown_unit` (README's reason names), each with its
  original key, value and content-type header and the shortfall.source.*
  headers naming its topic, partition and offset;
- the run logged 9 input records: 6 accepted, 3 invalid, 0 late.

Usage: json_input.py SHORTFALL BOOTSTRAP_FILE
"""
import argparse
import calendar
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from kafka_testlib import (LoggedRun, column_diff, create_topics, f_bytes, f_double, f_varint,  # noqa: E402
                           kcat_json, kcat_produce, read_totals, run_counts, run_settings, topic_names)

# HS code (as sent, with its hs_version) -> groups of the default catalog.
GROUPS = {
    "854231": ["semiconductors"],                    # semiconductors 8542 include
    "3004.90": ["pharmaceuticals"],                  # pharmaceuticals 3004 include
    "260500": ["batteries", "critical_minerals"],    # in both groups
    "401512": ["ppe"],                               # ppe 401512, HS 2022 only
    "85423200": ["semiconductors"],                  # 8-digit national code, first six classify
    "854143": ["unclassified"],                      # PV modules: semiconductors excludes 854143 (HS 2022)
    "870323": ["unclassified"],                      # cars: in no group
    "280461": ["semiconductors"],                    # silicon >= 99.99 %
}
UNITS = {"KGM": ("kg", Decimal(1)), "LBR": ("kg", Decimal("0.45359237")), "NAR": ("pcs", Decimal(1)),
         "PCE": ("pcs", Decimal(1)), "H87": ("pcs", Decimal(1)), "DZN": ("pcs", Decimal(12))}
RATES = {"USD": Decimal(1), "MXN": Decimal("0.055"), "CAD": Decimal("0.73")}
CANONICAL_UNITS = ("kg", "pcs", "pairs", "l", "m3")
STATUSES = ("filed", "accepted", "hold", "hold_released", "exam_selected", "released", "refused")


def line(hs, qty, unit, kg, value, currency, version=None):
    g = {"hsCode": hs, "quantity": qty, "unit": unit, "grossWeightKg": kg, "declaredValue": value,
         "currency": currency}
    if version:
        g["hsVersion"] = version
    return g


def arri(sid, time_, corridor, goods, **extra):
    o, d, port = corridor.split("-")
    e = {"eventId": sid + "-ARRI", "shipmentId": sid, "eventClass": "EVENT_CLASS_TRANSPORT",
         "eventTypeCode": "ARRI", "eventClassifier": "EVENT_CLASSIFIER_ACTUAL", "eventTime": time_,
         "corridor": {"originCountry": o, "destinationCountry": d, "portOfEntry": port}, "goods": goods}
    e.update(extra)
    return e


S1 = arri("SHP-J1", "2026-03-02T14:00:00Z", "MX-US-2304",
          [line("854231", 1200, "NAR", 85, 310000, "USD", "HS_VERSION_2022"),
           line("3004.90", 50, "KGM", 60.5, 12000.25, "USD")],
          facilityType="BOCR", publishTime="2026-03-02T14:05:00Z")
# Proto field names and a leading newline, sent without a content-type header.
S2_TEXT = ('\n  {"event_id": "SHP-J2-ARRI", "shipment_id": "SHP-J2", "event_class": "EVENT_CLASS_TRANSPORT",'
           ' "event_type_code": "ARRI", "event_classifier": "EVENT_CLASSIFIER_ACTUAL",'
           ' "event_time": "2026-03-02T15:00:00Z",'
           ' "corridor": {"origin_country": "CA", "destination_country": "US", "port_of_entry": "3801"},'
           ' "goods": [{"hs_code": "260500", "quantity": 20000, "unit": "KGM", "gross_weight_kg": 20500,'
           ' "declared_value": 150000, "currency": "CAD"},'
           ' {"hs_code": "401512", "hs_version": "HS_VERSION_2022", "quantity": 10, "unit": "DZN",'
           ' "gross_weight_kg": 12, "declared_value": 2400, "currency": "MXN"}]}')
S2 = arri("SHP-J2", "2026-03-02T15:00:00Z", "CA-US-3801",
          [line("260500", 20000, "KGM", 20500, 150000, "CAD"),
           line("401512", 10, "DZN", 12, 2400, "MXN", "HS_VERSION_2022")])
S3 = arri("SHP-B3", "2026-03-02T16:00:00Z", "US-CA-CAWND",
          [line("85423200", 300, "PCE", 2.5, 45000.5, "USD"),
           line("854143", 40, "NAR", 800, 9000, "USD", "HS_VERSION_2022"),
           line("870323", 1, "H87", 1500, 25000, "USD")],
          facilityType="BOCR")
S4 = dict(arri("SHP-J4", "2026-03-02T13:00:00Z", "MX-US-2304",
               [line("854231", 999, "NAR", 9, 99999, "USD")]), eventTypeCode="DEPA", eventId="SHP-J4-DEPA")
BAD_OBJECT = '{"shipmentId": "SHP-BAD", "eventTime": "last tuesday", "goods": 7}'
BAD_SYNTAX = '{"shipmentId": "SHP-BAD2", "eventClass": "EVENT_CLASS_TRANSPORT", "goods": [}'
BAD_UNIT = json.dumps(arri("SHP-J6", "2026-03-02T15:30:00Z", "MX-US-2304",
                           [line("854231", 5, "XYZ", 1, 100, "USD")]))
S7 = arri("SHP-J7", "2026-03-02T17:00:00Z", "MX-US-2402",
          [line("280461", 1000, "LBR", 454, 8000, "USD")], publishTime="2026-03-02T17:01:00Z")
C1 = {"eventId": "D-1-REL", "declarationId": "D-1", "shipmentId": "SHP-J1", "status": "CUSTOMS_STATUS_RELEASED",
      "authorityStatusCode": "RELEASED", "eventTime": "2026-03-02T14:30:00Z",
      "corridor": {"originCountry": "MX", "destinationCountry": "US", "portOfEntry": "2304"},
      "goods": [line("854231", 1200, "NAR", 85, 310000, "USD"), line("3004.90", 50, "KGM", 60.5, 12000.25, "USD")]}


# --- binary protobuf, encoded by hand (field numbers from proto/shortfall/v1/).
def timestamp(text):
    return f_varint(1, calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


ENUMS = {"EVENT_CLASS_TRANSPORT": 1, "EVENT_CLASSIFIER_ACTUAL": 1, "HS_VERSION_2022": 2022}


def encode_shipment(e):
    c = e["corridor"]
    out = f_bytes(1, e["eventId"]) + f_bytes(2, e["shipmentId"]) + f_varint(3, ENUMS[e["eventClass"]])
    out += f_bytes(4, e["eventTypeCode"]) + f_varint(5, ENUMS[e["eventClassifier"]])
    out += f_bytes(6, timestamp(e["eventTime"]))
    out += f_bytes(8, f_bytes(1, c["originCountry"]) + f_bytes(2, c["destinationCountry"]) +
                   f_bytes(3, c["portOfEntry"]))
    if "facilityType" in e:
        out += f_bytes(9, e["facilityType"])
    for g in e["goods"]:
        gl = f_bytes(1, g["hsCode"])
        if "hsVersion" in g:
            gl += f_varint(2, ENUMS[g["hsVersion"]])
        gl += f_double(3, float(g["quantity"])) + f_bytes(4, g["unit"]) + f_double(5, float(g["grossWeightKg"]))
        gl += f_double(6, float(g["declaredValue"])) + f_bytes(7, g["currency"])
        out += f_bytes(12, gl)
    return out


# --- the expected totals: {(group, corridor): {csv column: int}}.
def fixed(v, scale):
    return int((v * scale).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def expected_totals(shipments, customs):
    rows = defaultdict(lambda: defaultdict(int))
    for e in shipments:
        c = e["corridor"]
        corridor = "%s-%s-%s" % (c["originCountry"], c["destinationCountry"], c["portOfEntry"])
        per_group = defaultdict(list)
        for g in e["goods"]:
            for group in GROUPS[g["hsCode"]]:
                per_group[group].append(g)
        for group, goods in per_group.items():
            for key in ((group, corridor), (group, "*")):
                r = rows[key]
                r["shipments"] += 1
                for g in goods:
                    unit, factor = UNITS[g["unit"]]
                    r["goods_lines"] += 1
                    r["quantity_%s_e3" % unit] += fixed(Decimal(str(g["quantity"])) * factor, 1000)
                    r["gross_weight_g"] += fixed(Decimal(str(g["grossWeightKg"])), 1000)
                    r["declared_value_e4"] += fixed(Decimal(str(g["declaredValue"])) * RATES[g["currency"]], 10000)
    for e in customs:
        c = e["corridor"]
        corridor = "%s-%s-%s" % (c["originCountry"], c["destinationCountry"], c["portOfEntry"])
        status = e["status"].replace("CUSTOMS_STATUS_", "").lower()
        for group in {grp for g in e["goods"] for grp in GROUPS[g["hsCode"]]}:
            for key in ((group, corridor), (group, "*")):
                rows[key]["customs_" + status] += 1
    columns = (["shipments", "goods_lines", "gross_weight_g", "declared_value_e4"] +
               ["quantity_%s_e3" % u for u in CANONICAL_UNITS] + ["customs_" + s for s in STATUSES])
    return {k: {col: v.get(col, 0) for col in columns} for k, v in rows.items()}


def read_csv(path):
    """run --totals-csv (exact decimals) in the fixed-point columns expected_totals() uses."""
    rename = {"gross_weight_kg": "gross_weight_g", "declared_value_usd": "declared_value_e4"}
    out = {}
    for (group, corridor), row in read_totals(path, {}).items():
        out[(group, corridor)] = {rename.get(k, k + "_e3" if k.startswith("quantity_") else k): v
                                  for k, v in row.items()}
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("shortfall")
    p.add_argument("bootstrap_file")
    a = p.parse_args()
    bootstrap = open(a.bootstrap_file).read().strip()
    app = "json%d-%d" % (os.getpid(), int(time.time()))
    topics = topic_names(app)
    create_topics(bootstrap, [topics["shipments"], topics["customs"]], 1)

    JSON = "application/json"
    shipments = [  # (key, value bytes, content-type or None)
        ("SHP-J1", json.dumps(S1).encode(), JSON),
        ("SHP-J2", S2_TEXT.encode(), None),
        ("SHP-B3", encode_shipment(S3), None),
        ("SHP-J4", json.dumps(S4).encode(), JSON),
        ("SHP-BAD", BAD_OBJECT.encode(), JSON),
        ("SHP-BAD2", BAD_SYNTAX.encode(), None),
        ("SHP-J6", BAD_UNIT.encode(), None),
        ("SHP-J7", json.dumps(S7).encode(), "application/json; charset=utf-8"),
    ]
    customs = [("D-1", json.dumps(C1).encode(), JSON)]
    want_dlq = {4: "unparseable", 5: "unparseable", 6: "unknown_unit"}  # shipments offset -> reason
    assert json.loads(S2_TEXT)["goods"][1]["quantity"] == S2["goods"][1]["quantity"]  # S2 describes S2_TEXT

    tmp = tempfile.mkdtemp(prefix="shortfall-json-")
    run = None
    t_start = time.time()
    try:
        for topic, recs in ((topics["shipments"], shipments), (topics["customs"], customs)):
            for key, value, ctype in recs:
                kcat_produce(bootstrap, topic, 0, key, value, [("content-type", ctype)] if ctype else [], tmp)

        totals_csv = os.path.join(tmp, "run.csv")
        cmd = [a.shortfall, "run", "--brokers", bootstrap, "--until-idle", "--totals-csv", totals_csv
               ] + run_settings(app, topics, os.path.join(tmp, "state"), 2)
        logged_run = LoggedRun("run", cmd, tmp)
        run = logged_run.proc
        try:
            run.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pass
        err = logged_run.log()

        problems = []
        if run.returncode != 0:
            problems.append("shortfall run exited %s" % run.returncode)
        c = run_counts(err)
        counts = (c["records"], c["accepted"], c["invalid"], c["late"]) if c else None
        if counts != (9, 6, 3, 0):
            problems.append("run counted (records, accepted, invalid, late) %s, want (9, 6, 3, 0)" % (counts,))

        want = expected_totals([S1, S2, S3, S7], [C1])
        got = read_csv(totals_csv) if os.path.exists(totals_csv) else {}
        for key in sorted(set(want) | set(got)):
            w, g = want.get(key), got.get(key)
            if w != g:
                problems.append("%s: {column: (run, expected)} %s" % (key, column_diff(w or {}, g or {})))

        seen = {}
        for rec, h in kcat_json(bootstrap, topics["dlq"]):
            where = (h.get("shortfall.source.topic"), h.get("shortfall.source.partition"))
            if where != (topics["shipments"], "0"):
                problems.append("DLQ record from %s: %s" % (where, rec))
                continue
            offset = int(h.get("shortfall.source.offset", "-1"))
            if offset in seen:
                problems.append("DLQ holds shipments offset %d twice" % offset)
            seen[offset] = h.get("shortfall.reason")
            if 0 <= offset < len(shipments):
                key, value, ctype = shipments[offset]
                if rec.get("key") != key or rec.get("payload") != value.decode():
                    problems.append("DLQ record of offset %d has key %r value %r, sent %r %r"
                                    % (offset, rec.get("key"), rec.get("payload"), key, value.decode()))
                if h.get("content-type") != ctype:
                    problems.append("DLQ record of offset %d has content-type %r, sent %r"
                                    % (offset, h.get("content-type"), ctype))
                if not h.get("shortfall.detail"):
                    problems.append("DLQ record of offset %d has no shortfall.detail" % offset)
        if seen != want_dlq:
            problems.append("DLQ {shipments offset: reason} %s, want %s" % (seen, want_dlq))

        if problems:
            print("\n".join(problems))
            print("--- shortfall run\n" + err[-3000:])
            return 1
        print("JSON input counted exactly: %d series, DLQ %s; %.0f s" % (len(want), seen, time.time() - t_start))
        return 0
    finally:
        if run is not None and run.poll() is None:
            run.kill()
            run.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
