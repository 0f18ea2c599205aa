#!/usr/bin/env python3
"""Checks `shortfall replay` against an independent count of the same events.

Generates a JSON-lines scenario with `shortfall gen`, replays it, and recounts
the per-(group, corridor) totals here in plain Python, sharing no code with
the operators: its own catalog reader (per-group longest prefix), its own
checks for the malformations the generator makes, its own watermarks. Then
compares every total and the invalid and late counts.

Usage: independent_count.py SHORTFALL_BINARY CATALOG_CSV [EVENTS] [SEED]
Exit 0 when everything matches; prints each mismatch otherwise.
"""
import csv
import datetime
from decimal import Decimal
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict

HOUR_MS = 3600 * 1000
LATENESS_MS = 6 * HOUR_MS
MAX_FUTURE_SKEW_MS = HOUR_MS
UNITS = {  # UN/ECE Rec 20 code -> (canonical unit, factor)
    "KGM": ("kg", 1.0), "GRM": ("kg", 0.001), "LBR": ("kg", 0.45359237), "TNE": ("kg", 1000.0),
    "NAR": ("pcs", 1.0), "PCE": ("pcs", 1.0), "C62": ("pcs", 1.0), "H87": ("pcs", 1.0),
    "DZN": ("pcs", 12.0), "PR": ("pairs", 1.0), "NPR": ("pairs", 1.0), "LTR": ("l", 1.0),
    "MLT": ("l", 0.001), "MTQ": ("m3", 1.0), "FTQ": ("m3", 0.028316846592),
}
RATES = {"USD": 1.0, "MXN": 0.055, "CAD": 0.73, "EUR": 1.08, "GBP": 1.27, "CNY": 0.14,
         "JPY": 0.0067, "KRW": 0.00074, "TWD": 0.031, "CHF": 1.12}
# The generator's corridors only involve these countries.
COUNTRIES = {"MX", "US", "CA"}
STATUSES = ["FILED", "ACCEPTED", "HOLD", "HOLD_RELEASED", "EXAM_SELECTED", "RELEASED", "REFUSED"]
EVENT_CODES = {
    "EVENT_CLASS_TRANSPORT": {"ARRI", "DEPA"},
    "EVENT_CLASS_EQUIPMENT": {"LOAD", "DISC", "GTIN", "GTOT", "STUF", "STRP", "PICK", "DROP", "INSP",
                              "RSEA", "RMVD", "AVPU", "AVDO", "CUSS", "CUSI", "CUSR", "WAYP"},
    "EVENT_CLASS_SHIPMENT": {"RECE", "DRFT", "PENA", "PENU", "PENC", "REJE", "APPR", "ISSU", "SURR",
                             "SUBM", "VOID", "CONF", "REQS", "CMPL", "HOLD", "RELS", "CANC"},
}


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def parse_time(text):
    """RFC 3339 to whole milliseconds, truncating finer digits."""
    t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    delta = t - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def load_catalog(path):
    rules = defaultdict(list)  # group -> [(prefix, revision, include)]
    with open(path, newline="") as f:
        rows = csv.reader(line for line in f if line.strip() and not line.startswith("#"))
        header = next(rows)
        assert header == ["group", "hs_prefix", "hs_revision", "rule", "note"], header
        for group, prefix, revision, rule, _note in rows:
            rules[group].append((prefix, revision, rule == "include"))
    return rules


def classify(rules, hs6, revision):
    def groups_for(rev):
        out = set()
        for group, group_rules in rules.items():
            best = None
            for prefix, r, include in group_rules:
                if (r == "any" or r == rev) and hs6.startswith(prefix):
                    if best is None or len(prefix) > len(best[0]):
                        best = (prefix, include)
            if best and best[1]:
                out.add(group)
        return out
    if revision == "HS_VERSION_2017":
        return groups_for("2017")
    if revision == "HS_VERSION_2022":
        return groups_for("2022")
    return groups_for("2022") or groups_for("2017")


def fixed(value, scale):
    """Rounds half away from zero, like llround; amounts here are >= 0."""
    return math.floor(value * scale + 0.5)


def check_lines(goods):
    """Returns (reason, lines) for the goods lines."""
    lines = []
    for g in goods:
        code = g.get("hsCode", "")
        if not code:
            return "missing_hs_code", None
        digits = code.replace(".", "")
        if not digits.isdigit() or not 6 <= len(digits) <= 10:
            return "malformed_hs_code", None
        if g.get("unit", "") not in UNITS:
            return "unknown_unit", None
        q, kg, v = float(g.get("quantity", 0)), float(g.get("grossWeightKg", 0)), float(g.get("declaredValue", 0))
        if q <= 0 or kg < 0 or v < 0:
            return "negative_quantity", None
        currency = g.get("currency", "")
        rate = 0.0
        if currency or v > 0:
            if currency not in RATES:
                return "unknown_currency", None
            rate = RATES[currency]
        if q > 1e9 or kg > 1e9 or v * rate > 1e11:
            return "absurd_quantity", None
        unit, factor = UNITS[g["unit"]]
        # Amounts are rounded once per line to shortfall's fixed point
        # (1/1000 unit, grams, 1/10000 USD; operators/volume.h) and summed as
        # integers, so the totals must match exactly.
        lines.append((digits[:6], g.get("hsVersion", ""), unit, fixed(q * factor, 1000),
                      fixed(kg, 1000), fixed(v * rate, 10000)))
    return None, lines


def check_common(event, id_field, actual):
    if not event.get(id_field):
        return "missing_id", None
    if "eventTime" not in event:
        return "missing_event_time", None
    t = parse_time(event["eventTime"])
    if not parse_time("2000-01-01T00:00:00Z") <= t < parse_time("2100-01-01T00:00:00Z"):
        return "absurd_timestamp", None
    if actual and "publishTime" in event and t > parse_time(event["publishTime"]) + MAX_FUTURE_SKEW_MS:
        return "future_timestamp", None
    return None, t


def check_corridor(event):
    c = event.get("corridor", {})
    if c.get("originCountry") not in COUNTRIES or c.get("destinationCountry") not in COUNTRIES:
        return "unknown_country", None
    port = c.get("portOfEntry", "")
    if not (re.fullmatch(r"\d{4}", port) or re.fullmatch(r"[A-Z]{2}[A-Z2-9]{3}", port)):
        return "malformed_port", None
    return None, "%s-%s-%s" % (c["originCountry"], c["destinationCountry"], port)


def recount(events_path, rules):
    totals = defaultdict(lambda: defaultdict(int))
    invalid = defaultdict(int)
    counts = {"records": 0, "accepted": 0, "late": 0}
    partition_max = {}
    closed_until = None
    with open(events_path) as f:
        for line in f:
            counts["records"] += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                invalid["unparseable"] += 1
                continue
            if "rawValue" in record:
                invalid["unparseable"] += 1  # the generator's garbage values
                continue
            is_customs = "customs" in record
            event = record["customs"] if is_customs else record["shipment"]
            actual = is_customs or event.get("eventClassifier") == "EVENT_CLASSIFIER_ACTUAL"
            reason, t = check_common(event, "declarationId" if is_customs else "shipmentId", actual)
            if not reason and not is_customs:
                if event.get("eventTypeCode") not in EVENT_CODES.get(event.get("eventClass"), ()):
                    reason = "unknown_event_code"
            if not reason and is_customs and event.get("status", "").replace("CUSTOMS_STATUS_", "") not in STATUSES:
                reason = "unknown_customs_status"
            corridor = None
            if not reason:
                reason, corridor = check_corridor(event)
            lines = None
            if not reason:
                reason, lines = check_lines(event.get("goods", []))
            counts_volume = (not is_customs and actual and event.get("eventClass") == "EVENT_CLASS_TRANSPORT"
                             and event.get("eventTypeCode") == "ARRI"
                             and event.get("facilityType", "BOCR") in ("", "BOCR"))
            if not reason and (is_customs or counts_volume) and not lines:
                reason = "no_goods"
            if reason:
                invalid[reason] += 1
                continue
            key = (is_customs, record.get("partition", 0))
            if actual:
                pmax = partition_max.get(key)
                late = (pmax is not None and t < pmax - LATENESS_MS) or (
                    closed_until is not None and t < closed_until)
                if late:
                    counts["late"] += 1
                    continue
                partition_max[key] = t if pmax is None else max(pmax, t)
                watermark = min(partition_max.values()) - LATENESS_MS
                aligned = watermark - watermark % HOUR_MS
                closed_until = aligned if closed_until is None else max(closed_until, aligned)
            counts["accepted"] += 1
            groups_of_lines = [classify(rules, hs6, rev) or {"unclassified"} for hs6, rev, *_ in lines]
            for series in (corridor, "*"):
                if is_customs:
                    status = "customs_" + event["status"].replace("CUSTOMS_STATUS_", "").lower()
                    for group in set().union(*groups_of_lines):
                        totals[(group, series)][status] += 1
                elif counts_volume:
                    seen = set()
                    for (hs6, rev, unit, q, kg, usd), groups in zip(lines, groups_of_lines):
                        for group in groups:
                            tot = totals[(group, series)]
                            if group not in seen:
                                tot["shipments"] += 1
                                seen.add(group)
                            tot["goods_lines"] += 1
                            tot["quantity_" + unit] += Decimal(q) / 1000
                            tot["gross_weight_kg"] += Decimal(kg) / 1000
                            tot["declared_value_usd"] += Decimal(usd) / 10000
    return totals, invalid, counts


def main():
    binary, catalog = sys.argv[1], sys.argv[2]
    events = sys.argv[3] if len(sys.argv) > 3 else "60000"
    seed = sys.argv[4] if len(sys.argv) > 4 else "11"
    with tempfile.TemporaryDirectory() as tmp:
        events_path = os.path.join(tmp, "events.jsonl")
        totals_path = os.path.join(tmp, "totals.csv")
        gen = subprocess.run([binary, "gen", "--seed", seed, "--events", events, "--format", "json",
                              "--malformed-rate", "0.01", "--late-rate", "0.005", "--out", events_path],
                             check=True, capture_output=True, text=True)
        replay = subprocess.run([binary, "replay", "--input", events_path, "--format", "json",
                                 "--print", "none", "--totals-csv", totals_path],
                                check=True, capture_output=True, text=True)
        expected, invalid, counts = recount(events_path, load_catalog(catalog))
        with open(totals_path, newline="") as f:
            got = {(r["group"], r["corridor"]): r for r in csv.DictReader(f)}

    problems = []
    for key in sorted(set(expected) | set(got)):
        if key not in got:
            problems.append("missing from replay: %s %s" % key)
            continue
        if key not in expected:
            # A series with only zero totals cannot appear in replay either.
            problems.append("replay has an unexpected series: %s %s" % key)
            continue
        for column, value in got[key].items():
            if column in ("group", "corridor"):
                continue
            want = expected[key].get(column, 0)
            if Decimal(value) != want:
                problems.append("%s %s %s: replay %s, independent %s" % (key + (column, value, want)))
    report = replay.stdout
    m = re.search(r"records (\d+)  accepted (\d+)  invalid (\d+)  late (\d+)", report)
    if not m:
        problems.append("replay printed no record counts")
    else:
        got_counts = dict(zip(["records", "accepted", "invalid", "late"], map(int, m.groups())))
        want_counts = dict(counts, invalid=sum(invalid.values()))
        if got_counts != want_counts:
            problems.append("record counts: replay %s, independent %s" % (got_counts, want_counts))
    got_invalid = dict((k, int(v)) for k, v in re.findall(r"^  ([a-z_]+) (\d+)$", report, re.M))
    if got_invalid != dict(invalid):
        problems.append("invalid by reason: replay %s, independent %s" % (got_invalid, dict(invalid)))
    if counts["late"] == 0 or not invalid or len(expected) < 20:
        problems.append("the scenario is too tame to test anything: late=%d invalid=%s series=%d"
                        % (counts["late"], dict(invalid), len(expected)))
    if problems:
        print("\n".join(problems[:50]))
        print("%d mismatches" % len(problems))
        return 1
    print("independent count matches replay: %d series, %d records (%d accepted, %d invalid, %d late); %s"
          % (len(expected), counts["records"], counts["accepted"], sum(invalid.values()), counts["late"],
             gen.stderr.strip().splitlines()[-1] if gen.stderr.strip() else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
