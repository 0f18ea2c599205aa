#!/usr/bin/env python3
"""Measures the detectors on every named scenario against its ground truth.

For each scenario `shortfall gen --help` lists (but NOT_SCORED):
  shortfall gen --scenario NAME --out F --truth T
  shortfall replay --input F --print none --alerts-json A
and scores the OPEN alert records of A against the truth entries of T.

Matching. An OPEN record matches a truth entry when
  - its kind is the entry's alert_kind (ALERT_KIND_VOLUME_DROP ~ volume_drop),
  - its group is the entry's group (an entry's group "*" matches any group),
  - its corridor's port is the entry's port_of_entry, or the entry's port is
    empty (any corridor, or the group total, matches), and
  - its window_end is in [start, end + 3 days).
A shortage entry (shortage=true) is detected by its first matching record;
the delay is that record's window_end minus the entry's start. A false alarm
is an OPEN record that matches no shortage entry (matching a shortage=false
entry, such as a holiday, is still a false alarm), with one exception: a
record on a group's total (all corridors) whose kind, group and window match
a port-specific shortage is that shortage seen in the total, not a false
alarm; it is counted apart ("echoes") and detects nothing.

Kinds no detector implements yet: a kind that appears in no scenario's
alerts at all is "not implemented"; its entries are reported as such, not
as missed, and fail nothing. Once any scenario shows that kind, its entries
must be detected like the rest.

Windows. Replay closes every window at the end of its input, so the
watermark's own progress is read from a second replay that stops one record
short (--max-records): its last closed window must be within a day of the
full replay's. A partition that goes idle and stalls the watermark fails
this (idle_partition), whatever the detectors do.

Assertions, checked after the table is printed:
  - no false alarm in holiday_dip, demand_surge, low_volume_noise,
    late_burst, idle_partition;
  - no false origin_concentration alert in any scenario: natural
    concentration is high, so that detector must speak of changes only
    (a port closure tilts the shares too, and is a volume drop: see the
    port_closure truth);
  - every shortage of an implemented kind detected within its truth entry's
    detect_within_hours (96 h, or longer for a slow decline);
  - late_burst: replay's records line accounts for every generated record
    (records = generated = accepted + invalid + late);
  - every scenario: windows keep closing (see above).

Usage: detection_quality.py SHORTFALL_BINARY [--jobs N] [--only NAME,...] [--keep DIR]
Exit 0 when every assertion holds.
"""
import argparse
import concurrent.futures
import csv
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS
GRACE_MS = 3 * DAY_MS           # a record may match until truth end + this
MAX_WATERMARK_LAG_MS = DAY_MS   # windows closed by the watermark vs the data's end
NO_FALSE_ALARMS = ["holiday_dip", "demand_surge", "low_volume_noise", "late_burst", "idle_partition"]
NO_FALSE_ALARMS_OF_KIND = ["origin_concentration"]  # in any scenario
KIND_PREFIX = "ALERT_KIND_"
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def parse_time(text):
    """RFC 3339 to milliseconds."""
    t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int((t - EPOCH).total_seconds() * 1000)


def format_time(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


# Named scenarios for sizing state, not for detection (bench/state_scale.sh
# loads them): millions of records, nothing to find, minutes of replay.
NOT_SCORED = {"state_scale"}


def scenario_names(binary):
    """The named scenarios `shortfall gen --help` lists, but NOT_SCORED."""
    help_text = subprocess.run([binary, "gen", "--help"], check=True, capture_output=True, text=True).stdout
    m = re.search(r"start from a named scenario \(([^)]*)\)", help_text)
    if not m:
        raise SystemExit("`shortfall gen --help` lists no named scenarios")
    names = [name.strip() for name in m.group(1).split(",") if name.strip()]
    return [name for name in names if name not in NOT_SCORED]


def load_truth(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    truth = []
    for r in rows:
        truth.append({
            "group": r["group"],
            "port": r["port_of_entry"],
            "start": parse_time(r["start"]),
            "end": parse_time(r["end"]),
            "shortage": r["shortage"] == "true",
            "kind": r["alert_kind"],
            "what": r["what"],
            "within_ms": int(r["detect_within_hours"]) * HOUR_MS,
        })
    return truth


def load_alerts(path):
    alerts = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            a = json.loads(line)
            if a.get("state") != "ALERT_STATE_OPEN":
                continue
            kind = a.get("kind", "")
            alerts.append({
                "kind": kind[len(KIND_PREFIX):].lower() if kind.startswith(KIND_PREFIX) else kind.lower(),
                "group": a.get("commodityGroup", ""),
                "port": a.get("corridor", {}).get("portOfEntry", ""),
                "total": not a.get("corridor"),  # all corridors: no corridor field set
                "window_end": parse_time(a["windowEnd"]),
                "summary": a.get("summary", ""),
            })
    return alerts


def in_window(alert, entry):
    return entry["start"] <= alert["window_end"] < entry["end"] + GRACE_MS


def same_subject(alert, entry):
    return alert["kind"] == entry["kind"] and entry["group"] in ("*", alert["group"])


def matches(alert, entry):
    return (same_subject(alert, entry) and (entry["port"] == "" or alert["port"] == entry["port"])
            and in_window(alert, entry))


def is_echo(alert, entries):
    """A group-total record during a port-specific shortage of that group."""
    return alert["total"] and any(e["shortage"] and e["port"] != "" and same_subject(alert, e) and in_window(alert, e)
                                  for e in entries)


def last_windows_end(report):
    m = re.search(r"last windows end (\S+)\)", report)
    return parse_time(m.group(1)) if m else None


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    return p


def run_scenario(binary, name, workdir, sets=()):
    started = time.monotonic()
    events = os.path.join(workdir, name + ".pb")
    truth_path = os.path.join(workdir, name + ".truth.csv")
    alerts_path = os.path.join(workdir, name + ".alerts.jsonl")
    gen = run([binary, "gen", "--scenario", name, "--out", events, "--truth", truth_path])
    m = re.search(r"wrote (\d+) records", gen.stderr)
    generated = int(m.group(1)) if m else None
    extra = [arg for kv in sets for arg in ("--set", kv)]
    replay = run([binary, "replay", "--input", events, "--print", "none", "--alerts-json", alerts_path] + extra)
    counts = re.search(r"^records (\d+)  accepted (\d+)  invalid (\d+)  late (\d+)$", replay.stdout, re.M)
    counts = dict(zip(["records", "accepted", "invalid", "late"], map(int, counts.groups()))) if counts else None
    data_end = last_windows_end(replay.stdout)
    watermark_end = None
    if generated and generated > 1:
        short = run([binary, "replay", "--input", events, "--print", "none", "--max-records", str(generated - 1)]
                    + extra)
        watermark_end = last_windows_end(short.stdout)
    return {
        "name": name,
        "truth": load_truth(truth_path),
        "alerts": load_alerts(alerts_path),
        "generated": generated,
        "counts": counts,
        "data_end": data_end,
        "watermark_end": watermark_end,
        "seconds": time.monotonic() - started,
    }


def score(result, implemented):
    truth, alerts = result["truth"], result["alerts"]
    shortages = [e for e in truth if e["shortage"]]
    rows = []
    for e in shortages:
        hits = sorted(a["window_end"] for a in alerts if matches(a, e))
        rows.append({
            "entry": e,
            "implemented": e["kind"] in implemented,
            "delay_ms": hits[0] - e["start"] if hits else None,
        })
    false_alarms, echoes = [], []
    for a in alerts:
        if any(matches(a, e) for e in shortages):
            continue
        (echoes if is_echo(a, truth) else false_alarms).append(a)
    return rows, false_alarms, echoes


def hours(ms):
    return "%.0f" % (ms / HOUR_MS)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--jobs", type=int, default=2, help="scenarios run at once (default 2)")
    parser.add_argument("--only", default="", help="comma-separated scenario names (default: all)")
    parser.add_argument("--keep", default="", help="keep events, truth and alerts in this directory")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to replay as --set (try detector settings); repeatable")
    args = parser.parse_args()

    started = time.monotonic()
    names = scenario_names(args.binary)
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise SystemExit("no such scenario: %s (have %s)" % (", ".join(unknown), ", ".join(names)))
        names = [n for n in names if n in wanted]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or tmp
        os.makedirs(workdir, exist_ok=True)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(lambda n: run_scenario(args.binary, n, workdir, args.set), names))

    implemented = {a["kind"] for r in results for a in r["alerts"]}
    problems = []
    table = []
    details = []
    totals = {"shortages": 0, "detected": 0, "missed": 0, "not_impl": 0, "false": 0, "echoes": 0}
    for r in results:
        rows, false_alarms, echoes = score(r, implemented)
        impl_rows = [x for x in rows if x["implemented"]]
        detected = [x for x in impl_rows if x["delay_ms"] is not None]
        missed = [x for x in impl_rows if x["delay_ms"] is None]
        not_impl = [x for x in rows if not x["implemented"]]
        delays = ",".join(hours(x["delay_ms"]) for x in detected) or "-"
        lag = (r["data_end"] - r["watermark_end"]) if r["data_end"] is not None and r["watermark_end"] is not None else None
        windows = "-" if lag is None else ("ok" if lag <= MAX_WATERMARK_LAG_MS else "stalled %s" % format_time(r["watermark_end"]))
        table.append((r["name"], len(rows), len(detected), len(missed), len(not_impl), delays, len(false_alarms),
                      len(echoes), windows, "%.1f" % r["seconds"]))
        totals["shortages"] += len(rows)
        totals["detected"] += len(detected)
        totals["missed"] += len(missed)
        totals["not_impl"] += len(not_impl)
        totals["false"] += len(false_alarms)
        totals["echoes"] += len(echoes)

        for x in rows:
            e = x["entry"]
            where = "%s @%s" % (e["group"], e["port"] or "every port")
            if not x["implemented"]:
                status = "NOT IMPLEMENTED (no %s alert in any scenario)" % e["kind"]
            elif x["delay_ms"] is None:
                status = "MISSED"
            else:
                status = "detected after %s h" % hours(x["delay_ms"])
            details.append("  %s: %s %s from %s: %s -- %s" % (r["name"], e["kind"], where, format_time(e["start"]),
                                                             e["what"], status))
            if x["implemented"] and (x["delay_ms"] is None or x["delay_ms"] > e["within_ms"]):
                problems.append("%s: %s %s %s (want detection within %s h)" % (
                    r["name"], e["kind"], where, status, hours(e["within_ms"])))
        for a in false_alarms:
            details.append("  %s: FALSE ALARM %s %s" % (r["name"], format_time(a["window_end"]), a["summary"]))
        for a in echoes:
            details.append("  %s: echo in the group total %s %s" % (r["name"], format_time(a["window_end"]),
                                                                    a["summary"]))
        if r["name"] in NO_FALSE_ALARMS and false_alarms:
            problems.append("%s: %d false alarm(s) where nothing may alert" % (r["name"], len(false_alarms)))
        for kind in NO_FALSE_ALARMS_OF_KIND:
            n = sum(1 for a in false_alarms if a["kind"] == kind)
            if n:
                problems.append("%s: %d false %s alarm(s)" % (r["name"], n, kind))
        if lag is None or lag > MAX_WATERMARK_LAG_MS:
            problems.append("%s: windows stopped closing: the watermark closed windows to %s, the data runs to %s" % (
                r["name"], format_time(r["watermark_end"]) if r["watermark_end"] else "nowhere",
                format_time(r["data_end"]) if r["data_end"] else "?"))
        if r["name"] == "late_burst":
            c = r["counts"]
            if c is None or r["generated"] is None:
                problems.append("late_burst: no records line from replay or gen")
            elif not (c["records"] == r["generated"] == c["accepted"] + c["invalid"] + c["late"]):
                problems.append("late_burst: records lost: generated %d, replay records %d = accepted %d + invalid %d "
                                "+ late %d = %d" % (r["generated"], c["records"], c["accepted"], c["invalid"], c["late"],
                                                    c["accepted"] + c["invalid"] + c["late"]))
            else:
                details.append("  late_burst: all %d records accounted for (accepted %d, invalid %d, late %d)" % (
                    c["records"], c["accepted"], c["invalid"], c["late"]))

    header = ("scenario", "shortages", "detected", "missed", "not_impl", "delay_h", "false_alarms", "echoes",
              "windows", "secs")
    widths = [max(len(str(row[i])) for row in table + [header]) for i in range(len(header))]
    line = lambda row: "  ".join(str(v).ljust(w) if i in (0, 5, 8) else str(v).rjust(w)
                                 for i, (v, w) in enumerate(zip(row, widths)))
    print("detection quality: OPEN alerts vs ground truth (match: kind, group, port, window_end in "
          "[start, end + 3 d))")
    print(line(header))
    for row in table:
        print(line(row))
    print(line(("total", totals["shortages"], totals["detected"], totals["missed"], totals["not_impl"], "",
                totals["false"], totals["echoes"], "", "%.1f" % (time.monotonic() - started))))
    kinds = sorted(implemented) or ["none"]
    not_implemented = sorted({e["kind"] for r in results for e in r["truth"] if e["shortage"]} - implemented)
    print("alert kinds seen (implemented): %s" % ", ".join(kinds))
    if not_implemented:
        print("NOT IMPLEMENTED (no alert of this kind in any scenario; entries reported, not failed): %s"
              % ", ".join(not_implemented))
    print("details:")
    print("\n".join(details) if details else "  (none)")
    if problems:
        print("FAILED:")
        for p in problems:
            print("  " + p)
        return 1
    print("all assertions hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
