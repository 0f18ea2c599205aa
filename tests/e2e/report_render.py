#!/usr/bin/env python3
"""The replay report renders in a real browser (headless Chromium).

  shortfall gen --scenario sudden_drop --out F --truth T
  shortfall replay --input F --report R --truth T --alerts-json A --print bucket
  chromium --headless --dump-dom file://R      (the DOM as the browser built it)
  chromium --headless --screenshot file://R    (a PNG of the top of the page)

Checks, on the DOM Chromium built (not the file's text):
  - one chart <svg> per series the replay judged: every (group, corridor)
    that `--print bucket` printed at a close up to the last judged close the
    page's header names, and no other;
  - one alert marker per alert record of --alerts-json, on the chart of the
    record's series, its <title> naming the record's kind, severity and state;
  - the truth window shaded on the series the truth entry names;
  - nothing that loads from outside the page (no script, link, img, iframe,
    no "http" in any attribute).
And on the screenshot: not blank (many distinct colours), with the alert
marker's red and the band's blue in it. The PNG is decoded with zlib and
struct only.

Chromium is required: without it the test fails and says how to install it
(tools/install-deps.sh installs Debian's `chromium`).

usage: report_render.py SHORTFALL [--keep DIR]
"""
import argparse
import html.parser
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

CHROMIUM_TIMEOUT = 120  # seconds per browser run
ALERT_RED = (0xDC, 0x26, 0x26)             # .critical fill: the OPEN marker of a critical alert
BAND_BLUE = (206, 229, 254)                # .band: #93c5fd at 45% over white
KIND_PREFIX, SEVERITY_PREFIX, STATE_PREFIX = "ALERT_KIND_", "SEVERITY_", "ALERT_STATE_"


def fail(message, detail=""):
    print("FAIL: " + message)
    if detail:
        print(detail)
    sys.exit(1)


def run(cmd, timeout=300):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        fail("%s exited %d" % (" ".join(cmd), r.returncode), r.stderr[-2000:])
    return r


def find_chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    fail("chromium is not installed: this test renders the report in headless Chromium. "
         "Install it with tools/install-deps.sh (Debian package `chromium`), "
         "or `apt-get install -y chromium`.")


class Dom(html.parser.HTMLParser):
    """The parts of the dumped DOM the checks read."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []             # open elements: (tag, attrs)
        self.charts = []            # per chart svg: {"title": h3 text, "alerts": [...], "truth": [classes]}
        self.svg_total = 0
        self.outside = []           # elements or attributes that would load something
        self.h3 = None              # text of the last <h3>
        self.header_rows = {}       # <th> -> <td> text of the page's first table
        self.tables = 0
        self._text_target = None
        self._th = None
        self._alert = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "link", "img", "iframe", "object", "embed", "image", "use"):
            self.outside.append(tag)
        for name, value in attrs:
            if value and ("http" in value.lower() and name != "xmlns" or value.strip().lower().startswith("//")):
                self.outside.append("%s=%s" % (name, value))
        if tag == "svg":
            self.svg_total += 1
            if "chart" in a.get("class", "").split():
                self.charts.append({"title": self.h3, "alerts": [], "truth": []})
        classes = a.get("class", "").split()
        in_chart = bool(self.charts) and any(t == "svg" and "chart" in (c.get("class") or "").split()
                                             for t, c in self.stack)
        if in_chart and tag == "g" and "alert" in classes and "data-kind" in a:
            self._alert = {"classes": classes, "kind": a["data-kind"], "title": ""}
            self.charts[-1]["alerts"].append(self._alert)
        if in_chart and tag == "rect" and "truth" in classes:
            self.charts[-1]["truth"].append(" ".join(classes))
        if tag == "h3":
            self.h3 = ""
            self._text_target = "h3"
        if tag == "title" and self._alert is not None:
            self._text_target = "alert_title"
        if tag == "table":
            self.tables += 1
        if tag == "th" and self.tables == 1:
            self._th = ""
            self._text_target = "th"
        if tag == "td" and self._th is not None and self.tables == 1:
            self.header_rows[self._th] = ""
            self._text_target = "td"
        if tag not in ("meta", "br", "hr", "input", "circle", "path", "line", "rect"):
            self.stack.append((tag, a))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag in ("h3", "title", "th", "td"):
            if tag == "td":
                self._th = None
            self._text_target = None
        if tag == "g":
            self._alert = None
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        if self._text_target == "h3":
            self.h3 += data
        elif self._text_target == "alert_title":
            self._alert["title"] += data
        elif self._text_target == "th":
            self._th += data
        elif self._text_target == "td":
            self.header_rows[self._th] += data


def png_pixels(path):
    """(width, height, rows of RGB tuples) of an 8-bit RGB or RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail("%s is not a PNG" % path)
    pos, idat, width, height, depth, colour = 8, b"", 0, 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    if depth != 8 or colour not in (2, 6):
        fail("unexpected PNG format: bit depth %d, colour type %d" % (depth, colour))
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, previous, at = [], bytearray(stride), 0
    for _ in range(height):
        filter_type = raw[at]
        line = bytearray(raw[at + 1:at + 1 + stride])
        at += 1 + stride
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = previous[i]
            upper_left = previous[i - bpp] if i >= bpp else 0
            if filter_type == 1:
                line[i] = (line[i] + left) & 0xFF
            elif filter_type == 2:
                line[i] = (line[i] + up) & 0xFF
            elif filter_type == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif filter_type == 4:
                p = left + up - upper_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upper_left)
                predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else upper_left)
                line[i] = (line[i] + predictor) & 0xFF
        rows.append([tuple(line[i:i + 3]) for i in range(0, stride, bpp)])
        previous = line
    return width, height, rows


def near(colour, target, tolerance=3):
    return all(abs(c - t) <= tolerance for c, t in zip(colour, target))


def series_title(group, corridor):
    return "%s \u00b7 %s" % (group, "all corridors" if corridor == "*" else corridor)


def alert_title(record):
    corridor = record.get("corridor") or {}
    if not any(corridor.get(k) for k in ("originCountry", "destinationCountry", "portOfEntry")):
        return series_title(record["commodityGroup"], "*")
    part = lambda k: corridor.get(k) or "*"
    return series_title(record["commodityGroup"], "-".join(
        part(k) for k in ("originCountry", "destinationCountry", "portOfEntry")))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shortfall")
    parser.add_argument("--keep", default="", help="keep the files in this directory")
    args = parser.parse_args()
    chromium = find_chromium()
    started = time.monotonic()

    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or tmp
        os.makedirs(work, exist_ok=True)
        events, truth = os.path.join(work, "sudden_drop.pb"), os.path.join(work, "sudden_drop.truth.csv")
        report, alerts_path = os.path.join(work, "report.html"), os.path.join(work, "alerts.jsonl")
        run([args.shortfall, "gen", "--scenario", "sudden_drop", "--out", events, "--truth", truth])
        replay = run([args.shortfall, "replay", "--input", events, "--report", report, "--truth", truth,
                      "--alerts-json", alerts_path, "--print", "bucket"])
        size = os.path.getsize(report)
        print("report: %s, %d bytes" % (report, size))
        with open(alerts_path) as f:
            records = [json.loads(line) for line in f if line.strip()]
        if not any(r.get("state") == "ALERT_STATE_OPEN" for r in records):
            fail("the sudden_drop replay raised no alert: nothing to mark", replay.stdout[-2000:])

        browser_started = time.monotonic()
        profile = os.path.join(tmp, "chromium-profile")
        common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + profile,
                  "--no-first-run", "--hide-scrollbars"]
        dom_text = run(common + ["--dump-dom", "file://" + report], timeout=CHROMIUM_TIMEOUT).stdout
        screenshot = os.path.join(work, "report.png")
        run(common + ["--window-size=1100,1600", "--screenshot=" + screenshot, "file://" + report],
            timeout=CHROMIUM_TIMEOUT)
        browser_seconds = time.monotonic() - browser_started

        dom = Dom()
        dom.feed(dom_text)
        problems = []

        # One chart per judged series: every series printed at a close up to the last judged one.
        judged = dom.header_rows.get("bucket closes judged", "")
        m = re.search(r"to (\d{4}-\d\d-\d\d) (\d\d:\d\d) UTC", judged)
        if not m:
            fail("the page's header names no judged closes: %r" % judged)
        last_judged = "%sT%s:00Z" % m.groups()
        printed = set()
        for line in replay.stdout.splitlines():
            parts = line.split("  ")
            if len(parts) >= 3 and re.match(r"\d{4}-\d\d-\d\dT", parts[0]) and parts[0] <= last_judged:
                printed.add(series_title(parts[1], parts[2]))
        charts = {c["title"]: c for c in dom.charts}
        if len(dom.charts) != len(printed) or set(charts) != printed:
            problems.append("%d chart <svg> elements for %d series judged; missing %s, extra %s" % (
                len(dom.charts), len(printed), sorted(printed - set(charts))[:5], sorted(set(charts) - printed)[:5]))
        if dom.header_rows.get("series", "").strip() != str(len(printed)):
            problems.append("the header says %r series, the replay judged %d" % (dom.header_rows.get("series"),
                                                                                  len(printed)))

        # One marker per alert record, on its series' chart, its tooltip naming kind, severity and state.
        markers = sum(len(c["alerts"]) for c in dom.charts)
        if markers != len(records):
            problems.append("%d alert markers for %d alert records" % (markers, len(records)))
        for r in records:
            chart = charts.get(alert_title(r))
            kind = r["kind"][len(KIND_PREFIX):].lower()
            severity = r.get("severity", "SEVERITY_UNSPECIFIED")[len(SEVERITY_PREFIX):].lower()
            state = r["state"][len(STATE_PREFIX):].lower()
            want = "%s \u00b7 %s \u00b7 %s" % (kind, severity, state)
            if chart is None or not any(a["kind"] == kind and a["title"].startswith(want) and state in a["classes"]
                                        for a in chart["alerts"]):
                problems.append("no marker '%s' on the chart of %s" % (want, alert_title(r)))

        # The truth window on the series it names (sudden_drop: one port of one group).
        with open(truth) as f:
            header, entry = f.readline().strip().split(","), f.readline().strip().split(",")
        group, port = entry[header.index("group")], entry[header.index("port_of_entry")]
        shaded = [t for t, c in charts.items() if any(x == "truth shortage" for x in c["truth"])]
        if not shaded or any(not t.startswith(group + " \u00b7 ") or not t.endswith("-" + port) for t in shaded):
            problems.append("truth %s at %s shaded on %s" % (group, port, shaded))
        if not any("in-total" in x for x in charts.get(series_title(group, "*"), {}).get("truth", [])):
            problems.append("the %s total does not show the port's truth window" % group)

        if dom.outside:
            problems.append("the page loads from outside: %s" % dom.outside[:5])

        # The screenshot: not blank, with the alert's red and the band's blue.
        width, height, rows = png_pixels(screenshot)
        colours = set()
        for row in rows:
            colours.update(row)
        red = any(near(p, ALERT_RED) for row in rows for p in row)
        blue = any(near(p, BAND_BLUE) for row in rows for p in row)
        print("screenshot: %dx%d, %d distinct colours, alert red %s, band blue %s" % (
            width, height, len(colours), "yes" if red else "no", "yes" if blue else "no"))
        if len(colours) < 50:
            problems.append("the screenshot looks blank: %d distinct colours" % len(colours))
        if not red:
            problems.append("no alert marker red %s in the screenshot" % (ALERT_RED,))
        if not blue:
            problems.append("no band blue %s in the screenshot" % (BAND_BLUE,))

        print("DOM: %d <svg> (%d charts), %d alert markers for %d records, truth shaded on %s" % (
            dom.svg_total, len(dom.charts), markers, len(records), ", ".join(shaded)))
        print("times: %.1f s in all, %.1f s in Chromium" % (time.monotonic() - started, browser_seconds))
        if problems:
            print("FAILED:")
            for p in problems:
                print("  " + p)
            return 1
    print("the report renders: all checks hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
