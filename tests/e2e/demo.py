#!/usr/bin/env python3
"""`shortfall demo` plays its scenario end to end and finds the shortages in it.

Run 1 (no flags but a free metrics port): the demo must exit 0 within a
minute, print an OPEN volume_drop alert for semiconductors via Laredo
(MX-US-2304) and one for PPE, raise no alert outside the two injected
shortages (every OPEN alert is on semiconductors via Laredo or the
semiconductors total, or on PPE), and account for every event it produced
(accepted + invalid + late = events).

Run 2 (--follow): while following, /metrics serves shortfall_* families with
the scenario's records counted, /healthz and /readyz answer 200, and SIGTERM
stops it with exit 0.

usage: demo.py SHORTFALL
"""
import re
import signal
import subprocess
import sys
import time
import urllib.request

DEMO_TIMEOUT = 90  # seconds; the demo should take a few


def fail(msg, output=""):
    print("FAIL: " + msg)
    if output:
        print("---- output ----\n" + output)
    sys.exit(1)


def check_run(shortfall):
    start = time.monotonic()
    r = subprocess.run([shortfall, "demo", "--metrics-bind", "127.0.0.1:0"], capture_output=True, text=True,
                       timeout=DEMO_TIMEOUT)
    took = time.monotonic() - start
    out = r.stdout + r.stderr
    print(r.stdout)
    if r.returncode != 0:
        fail("demo exited %d" % r.returncode, out)
    if took > 60:
        fail("demo took %.0f s (want about a minute at most)" % took)
    opens = [l for l in r.stdout.splitlines() if " OPEN " in l]
    alerts = [re.search(r" OPEN \w+ (\w+) (\w+) (\S+( corridors)?):", l) for l in opens]
    if any(a is None for a in alerts):
        fail("an OPEN line does not parse", "\n".join(opens))
    found = [(a.group(1), a.group(2), a.group(3)) for a in alerts]
    if ("volume_drop", "semiconductors", "MX-US-2304") not in found:
        fail("no OPEN volume_drop alert for semiconductors MX-US-2304", out)
    if not any(k == "volume_drop" and g == "ppe" for k, g, _ in found):
        fail("no OPEN volume_drop alert for ppe", out)
    false_alarms = [f for f in found
                    if not (f[1] == "ppe" or (f[1] == "semiconductors" and f[2] in ("MX-US-2304", "all corridors")))]
    if false_alarms:
        fail("alerts outside the injected shortages: %s" % false_alarms, out)
    m = re.search(r"produced (\d+) events", r.stdout)
    s = re.search(r": (\d+) events in [\d.]+ s: (\d+) accepted, (\d+) invalid and (\d+) late", r.stdout)
    if not m or not s:
        fail("no produced/summary line", out)
    produced, seen, accepted, invalid, late = int(m.group(1)), *(int(x) for x in s.groups())
    if seen != produced or accepted + invalid + late != produced:
        fail("events not accounted for: produced %d, read %d = %d accepted + %d invalid + %d late"
             % (produced, seen, accepted, invalid, late))
    print("demo: %.1f s, %d OPEN alerts, all on the injected shortages" % (took, len(found)))


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def check_follow(shortfall):
    proc = subprocess.Popen([shortfall, "demo", "--follow", "--metrics-bind", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        url = None
        deadline = time.monotonic() + DEMO_TIMEOUT
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"metrics on (http://\S+)/metrics", line)
            if m:
                url = m.group(1)
            if "following;" in line:
                break
        if url is None or not lines or "following;" not in lines[-1]:
            fail("demo --follow did not reach following", "".join(lines))
        # The scenario is read in a few seconds; wait until the metrics show it all.
        produced = int(re.search(r"produced (\d+) events", "".join(lines)).group(1))
        consumed = 0
        while time.monotonic() < deadline:
            status, text = get(url + "/metrics")
            if status != 200:
                fail("/metrics answered %d" % status, text)
            consumed = sum(float(v) for v in re.findall(
                r'^shortfall_records_consumed_total\{topic="(?:shipments|customs)\.events\.v1"\} (\S+)$',
                text, re.M))
            if consumed == produced:
                break
            time.sleep(0.5)
        if consumed != produced:
            fail("metrics count %d records consumed, the demo produced %d" % (consumed, produced))
        for path in ("/healthz", "/readyz"):
            status, text = get(url + path)
            if status != 200:
                fail("%s answered %d: %s" % (path, status, text))
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            fail("demo --follow did not stop within 30 s of SIGTERM")
        if proc.returncode != 0:
            fail("demo --follow exited %d after SIGTERM" % proc.returncode, proc.stderr.read())
        print("demo --follow: %d records in metrics, /healthz and /readyz 200, clean stop" % consumed)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main():
    shortfall = sys.argv[1]
    check_run(shortfall)
    check_follow(shortfall)
    print("PASS")


if __name__ == "__main__":
    main()
