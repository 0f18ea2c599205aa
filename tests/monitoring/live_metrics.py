#!/usr/bin/env python3
"""monitoring/ against a live `shortfall run` on a real Kafka broker.

Both modes generate the `demo` scenario (seeded, with injected shortages)
to a file, count its records per input topic from the file, produce the
same records to fresh 4-partition topics (retention.ms=-1: the scenario's
timestamps are months old) with `gen --to-kafka --keep-partitions`, and run
`shortfall run` on them (fresh application id and topics via --set, state in
a temp dir, metrics.bind=127.0.0.1:0; the port comes from its log line
"shortfall run: metrics on http://127.0.0.1:PORT/metrics"). "Consumed
everything" means: shortfall_records_consumed_total of each input topic
equals the file's count, every consumer lag sample is 0 and the event-time
watermark has not moved for 3 s.

--mode queries (ctest monitoring_dashboard_queries)
    Events are produced before shortfall starts. Once it has consumed
    everything, its /metrics must pass `promtool check metrics`, and every
    metric name that a PromQL expression of the dashboard JSON or of the rule
    files reads must have samples in it (histograms through _bucket, _sum,
    _count; a recording rule's name counts as defined; up and ALERTS are
    Prometheus' own). Each label a selector matches on must be a label of
    that metric, and each literal value it matches with = must occur, unless
    a healthy run legitimately has none (commits_total{result="failed"}).
    Missing names and labels are printed.

--mode e2e (ctest monitoring_prometheus_e2e)
    shortfall starts on empty topics; then a real `prometheus` server starts
    on a free loopback port with a temp storage dir, a generated config
    scraping that shortfall every second and evaluating
    monitoring/prometheus/rules/*.yml every second. Once the target is up,
    the events are produced. Through the HTTP API (/api/v1/query,
    /api/v1/query_range, /api/v1/rules, /api/v1/alerts):
    - shortfall_records_consumed_total of the shipments topic equals the
      number of shipment-topic records in the scenario file (and customs);
    - sum(rate(shortfall_records_consumed_total[5s])) over the input topics
      is > 0 at some time between the first record produced and the end,
      and the recording rule job:shortfall_input_records_consumed:rate5m is
      > 0 at the end;
    - at the event-time watermark T that Prometheus holds
      (shortfall_event_time_watermark_seconds), shortfall_volume of every
      group total (corridor "*"), both windows and all three measures equals
      what `shortfall replay --print bucket` prints for the bucket ending at
      T — in particular semiconductors/*/7d/shipments — and equals the value
      on /metrics directly;
    - every rule group evaluates without error; the only active alert is
      ShortfallWatermarkLagHigh, pending (the scenario is months old), and
      none fires.

Usage: live_metrics.py SHORTFALL BOOTSTRAP_FILE --mode queries|e2e [--events N] [--seed S]
"""
import argparse
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import promql_names  # noqa: E402
from kafka_testlib import (LoggedRun, create_topics, event_file_records, parse_metrics, produce_args,  # noqa: E402
                           run_settings, sh, terminate, topic_names, wait_for_metrics_base, wire_fields)

DASHBOARD = os.path.join(REPO, "monitoring", "grafana", "dashboards", "shortfall.json")
RULE_FILES = sorted(glob.glob(os.path.join(REPO, "monitoring", "prometheus", "rules", "*.yml")))
# Series a healthy run has no sample for, which queries may still match.
ABSENT_WHEN_HEALTHY = {("shortfall_commits_total", "result", "failed")}
# Labels Prometheus attaches at scrape time.
TARGET_LABELS = {"job", "instance"}
MEASURES = {"shipments": "shipments", "gross_kg": "gross_weight_kg", "value_usd": "declared_value_usd"}


def count_topics(path):
    """{topic: records} of a length-delimited EventRecord file (field 1: topic)."""
    counts = {}
    for record in event_file_records(path):
        topic = next((value.decode() for number, value in wire_fields(record) if number == 1), None)
        counts[topic] = counts.get(topic, 0) + 1
    return counts


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, base):
        self.base = base

    def api(self, path, **params):
        url = "%s/api/v1/%s" % (self.base, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            body = json.loads(http_get(url))
        except urllib.error.HTTPError as e:
            raise RuntimeError("%s: HTTP %d %s" % (url, e.code, e.read().decode(errors="replace")))
        if body.get("status") != "success":
            raise RuntimeError("%s: %s" % (url, body))
        return body["data"]

    def query(self, expr, at=None):
        params = {"query": expr}
        if at is not None:
            params["time"] = "%.3f" % at
        return self.api("query", **params)["result"]


def selectors(expr):
    """[(metric, [(label, op, value)])] of the selectors with label matchers in an expression."""
    out = []
    for m in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)\s*\{([^{}]*)\}", expr):
        matchers = re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:\\.|[^"\\])*)"', m.group(2))
        out.append((m.group(1), matchers))
    return out


def all_expressions():
    exprs = [(w, e) for w, e in promql_names.dashboard_queries(DASHBOARD)]
    recorded = set()
    for f in RULE_FILES:
        for r in promql_names.rules(f):
            exprs.append(("%s %s (%s)" % (r["kind"], r["name"], os.path.basename(f)), r["expr"] or ""))
            if r["kind"] == "record":
                recorded.add(r["name"])
    return exprs, recorded


def check_queries_against(samples, problems):
    """The dashboard's and rules' metric names, labels and values against live samples."""
    by_name = {}
    for name, labels, _ in samples:
        by_name.setdefault(name, []).append(labels)
    exprs, recorded = all_expressions()
    used, missing = set(), {}
    for where, expr in exprs:
        for name in promql_names.metric_names(expr):
            used.add(name)
            if name in recorded or name in promql_names.PROMETHEUS_SERIES:
                continue
            if name not in by_name:
                missing.setdefault(name, []).append(where)
        for name, matchers in selectors(expr):
            if name not in by_name:
                continue
            label_names = set().union(*(set(l) for l in by_name[name]))
            for label, op, value in matchers:
                if label in TARGET_LABELS or label == "__name__":
                    continue
                if label not in label_names:
                    problems.append("%s: %s has no label %r (labels: %s)"
                                    % (where, name, label, sorted(label_names)))
                elif op == "=" and "$" not in value and (name, label, value) not in ABSENT_WHEN_HEALTHY \
                        and not any(l.get(label) == value for l in by_name[name]):
                    problems.append("%s: no %s sample has %s=%r (values: %s)"
                                    % (where, name, label, value,
                                       sorted({l.get(label) for l in by_name[name]})))
        # Labels grouped or matched on must exist on some metric the expression reads.
        names = promql_names.metric_names(expr)
        if names and not names & (recorded | promql_names.PROMETHEUS_SERIES) and names <= set(by_name):
            have = set(TARGET_LABELS) | {"le"}
            for name in names:
                for labels in by_name[name]:
                    have |= set(labels)
            for clause in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)",
                                     expr):
                for label in re.findall(r"\w+", clause):
                    if label not in have:
                        problems.append("%s: groups or matches on %r, a label none of %s has"
                                        % (where, label, sorted(names)))
    for name, wheres in sorted(missing.items()):
        problems.append("MISSING %s: read by %s; not in shortfall's /metrics" % (name, "; ".join(wheres)))
    return used, recorded, len(exprs)


def replay_group_windows(shortfall, events):
    """{(bucket end, group): {(window, measure): value}} for the group totals, from replay --print bucket."""
    out = sh([shortfall, "replay", "--input", events, "--print", "bucket", "--series", "groups"],
             timeout=120).stdout
    table = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+Z)  (\S+)  \*  (.*)$", line)
        if not m:
            continue
        values = {}
        for window, body in re.findall(r"\[(\w+)\] ([^\[]*)", m.group(3)):
            for key, value in re.findall(r"(\w+)=([\d.]+)", body):
                values[(window, MEASURES[key])] = float(value)
        table[(m.group(1), m.group(2))] = values
    return table


def main():
    p = argparse.ArgumentParser()
    p.add_argument("shortfall")
    p.add_argument("bootstrap_file")
    p.add_argument("--mode", choices=("queries", "e2e"), required=True)
    p.add_argument("--events", type=int, default=150000)
    p.add_argument("--seed", default="5")
    a = p.parse_args()
    needed = ["promtool"] + (["prometheus"] if a.mode == "e2e" else [])
    absent = [tool for tool in needed if shutil.which(tool) is None]
    if absent:
        print("%s not found: install the Debian package prometheus (tools/install-deps.sh does)" % " and ".join(absent))
        return 1
    t_start = time.time()
    bootstrap = open(a.bootstrap_file).read().strip()
    app = "mon%s%d-%d" % (a.mode[0], os.getpid(), int(time.time()))
    topics = topic_names(app)
    create_topics(bootstrap, [topics["shipments"], topics["customs"]], 4, timeout=120)

    tmp = tempfile.mkdtemp(prefix="shortfall-monitoring-")
    children = []
    runs = {}

    def log_text(name):
        return runs[name].log() if name in runs else ""

    try:
        events = os.path.join(tmp, "events.pb")
        gen = [a.shortfall, "gen", "--scenario", "demo", "--seed", a.seed, "--events", str(a.events),
               "--partitions", "4"]
        sh(gen + ["--out", events], timeout=120)
        in_file = count_topics(events)
        want = {topics["shipments"]: in_file.get("shipments.events.v1", 0),
                topics["customs"]: in_file.get("customs.events.v1", 0)}
        if sum(want.values()) != a.events or not all(want.values()):
            print("the scenario file holds %s, want %d records on both input topics" % (in_file, a.events))
            return 1

        def produce():
            out = sh(produce_args(gen, bootstrap, topics), timeout=300)
            m = re.search(r"(\d+) delivered, (\d+) failed", out.stderr + out.stdout)
            if not m or int(m.group(1)) != a.events or int(m.group(2)):
                raise RuntimeError("gen --to-kafka: " + out.stderr)

        def start(name, args):
            runs[name] = LoggedRun(name, args, tmp, children)
            return runs[name].proc

        if a.mode == "queries":
            produce()
        run = start("shortfall", [a.shortfall, "run", "--brokers", bootstrap] +
                    run_settings(app, topics, os.path.join(tmp, "state")))
        base = wait_for_metrics_base(runs["shortfall"], 30)
        if base is None:
            print("shortfall run printed no metrics URL (exit %s):\n%s" % (run.poll(), log_text("shortfall")[-3000:]))
            return 1
        metrics_url = base + "/metrics"
        hostport = base.split("://", 1)[1]

        prom = None
        if a.mode == "e2e":
            config = os.path.join(tmp, "prometheus.yml")
            with open(config, "w") as f:
                f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
                        "rule_files:\n%s"
                        "scrape_configs:\n  - job_name: shortfall\n    static_configs:\n"
                        "      - targets: [%s]\n"
                        % ("".join("  - %s\n" % json.dumps(r) for r in RULE_FILES), json.dumps(hostport)))
            for attempt in range(3):
                port = free_port()
                proc = start("prometheus%d" % attempt, [
                    "prometheus", "--config.file=" + config,
                    "--storage.tsdb.path=" + os.path.join(tmp, "tsdb%d" % attempt),
                    "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"])
                prom = Prometheus("http://127.0.0.1:%d" % port)
                up = False
                deadline = time.time() + 30
                while time.time() < deadline and proc.poll() is None and not up:
                    try:
                        targets = prom.api("targets")["activeTargets"]
                        up = any(t.get("health") == "up" for t in targets)
                    except Exception:  # not listening yet
                        pass
                    time.sleep(0.2)
                if up:
                    break
                if proc.poll() is None:
                    print("prometheus: target %s not up after 30 s:\n%s"
                          % (hostport, log_text("prometheus%d" % attempt)[-3000:]))
                    return 1
                prom = None  # exited: the port was taken in between; try another
            if prom is None:
                print("prometheus would not start:\n" + log_text("prometheus2")[-3000:])
                return 1
            t_produce = time.time()
            produce()

        # Until shortfall has consumed everything and its watermark stands still.
        deadline = time.time() + 90
        last_watermark, still_since, text, done = None, None, "", False
        while time.time() < deadline and run.poll() is None:
            text = http_get(metrics_url)
            s = parse_metrics(text)
            consumed = {l.get("topic"): v for n, l, v in s if n == "shortfall_records_consumed_total"}
            lags = [v for n, _, v in s if n == "shortfall_consumer_lag_records"]
            wm = [v for n, _, v in s if n == "shortfall_event_time_watermark_seconds"]
            caught_up = all(consumed.get(t) == n for t, n in want.items()) and lags and not any(lags) and wm
            if caught_up and wm[0] == last_watermark:
                if time.time() - still_since >= 3:
                    done = True
                    break
            else:
                last_watermark, still_since = (wm[0] if wm else None), time.time()
            time.sleep(0.5)
        t_done = time.time()
        if not done:
            print("shortfall did not consume everything within 90 s (exit %s); want %s; its metrics:\n%s\n%s"
                  % (run.poll(), want, "\n".join(l for l in text.splitlines() if "consumed" in l or "lag" in l),
                     log_text("shortfall")[-3000:]))
            return 1

        problems = []
        final = parse_metrics(text)
        late2 = [v for n, l, v in final if n == "shortfall_records_late_total" and l.get("stage") == "repartition"]
        if late2 != [0.0]:
            problems.append("stage two counted late contributions %s: volumes cannot match replay" % late2)

        if a.mode == "queries":
            metrics_file = os.path.join(tmp, "metrics.txt")
            with open(metrics_file, "w") as f:
                f.write(text)
            with open(metrics_file) as f:
                r = subprocess.run(["promtool", "check", "metrics"], stdin=f, capture_output=True, text=True,
                                   timeout=60)
            if r.returncode != 0:
                problems.append("promtool check metrics failed (exit %d):\n%s" % (r.returncode, r.stdout + r.stderr))
            used, recorded, n_exprs = check_queries_against(final, problems)
            declared = set(re.findall(r"^# TYPE (\S+)", text, re.M))
            exported = {n for n, _, _ in final}
            empty = sorted(d for d in declared if not any(e == d or e.startswith(d + "_") for e in exported))
            if problems:
                print("\n".join(problems))
                print("families declared without samples: %s" % empty)
                return 1
            print("dashboard queries: %d expressions read %d names (%d recorded); every other one has samples in "
                  "a live shortfall's /metrics (%d samples, promtool check metrics clean) after it consumed %s; "
                  "families without samples: %s; %.0f s in all"
                  % (n_exprs, len(used), len(used & recorded), len(final), want, empty or "none",
                     time.time() - t_start))
            return 0

        # --- e2e: what Prometheus holds.
        shipments_topic = topics["shipments"]

        def scalar(expr, at=None):
            r = prom.query(expr, at)
            return float(r[0]["value"][1]) if len(r) == 1 else r

        deadline = time.time() + 20
        while time.time() < deadline:  # a scrape after the end
            got = {t: scalar('shortfall_records_consumed_total{job="shortfall",topic="%s"}' % t) for t in want}
            if got == {t: float(n) for t, n in want.items()}:
                break
            time.sleep(0.5)
        for t, n in want.items():
            if got.get(t) != float(n):
                problems.append("Prometheus has shortfall_records_consumed_total{topic=%r} = %s, the scenario "
                                "file has %d records for it" % (t, got.get(t), n))

        # A regex inside a PromQL string: its backslashes escaped once more.
        inputs = "|".join(re.escape(t) for t in want).replace("\\", "\\\\")
        series = prom.api("query_range", query='sum(rate(shortfall_records_consumed_total{job="shortfall",'
                                                'topic=~"%s"}[5s]))' % inputs,
                          start="%.3f" % (t_produce - 2), end="%.3f" % (time.time()), step="1")["result"]
        rates = [(float(ts), float(v)) for ts, v in (series[0]["values"] if series else [])]
        peak = max(rates, key=lambda x: x[1]) if rates else (None, 0.0)
        if not peak[1] > 0:
            problems.append("rate(shortfall_records_consumed_total[5s]) over the input topics was never > 0 "
                            "during the run: %s" % rates)
        recorded_rate = scalar('job:shortfall_input_records_consumed:rate5m{job="shortfall"}')
        if not isinstance(recorded_rate, float) or not recorded_rate > 0:
            problems.append("recording rule job:shortfall_input_records_consumed:rate5m: %r, want > 0" % recorded_rate)

        # Volumes at the watermark Prometheus holds, against replay and /metrics.
        direct = {tuple(sorted(l.items())): v for n, l, v in parse_metrics(http_get(metrics_url))
                  if n in ("shortfall_volume", "shortfall_event_time_watermark_seconds")}
        at = time.time()
        watermark = scalar('shortfall_event_time_watermark_seconds{job="shortfall"}', at)
        volumes = prom.query('shortfall_volume{job="shortfall",corridor="*"}', at)
        replay = replay_group_windows(a.shortfall, events)
        semis = None
        if not isinstance(watermark, float):
            problems.append("no event-time watermark in Prometheus: %r" % watermark)
        else:
            bucket_end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(watermark))
            if direct.get(()) != watermark:
                problems.append("watermark: Prometheus %s, /metrics %s" % (watermark, direct.get(())))
            compared = 0
            for v in volumes:
                labels, value = v["metric"], float(v["value"][1])
                key = (labels["window"], labels["measure"])
                want_v = replay.get((bucket_end, labels["group"]), {}).get(key)
                if want_v is None or abs(value - want_v) > 1e-9 * max(1.0, abs(want_v)):
                    problems.append("shortfall_volume{group=%s,corridor=*,window=%s,measure=%s} = %r in Prometheus, "
                                    "replay prints %r for the bucket ending %s"
                                    % (labels["group"], key[0], key[1], value, want_v, bucket_end))
                mine = {k: labels[k] for k in ("corridor", "group", "measure", "window")}
                if direct.get(tuple(sorted(mine.items()))) != value:
                    problems.append("shortfall_volume%s: Prometheus %r, /metrics %r"
                                    % (mine, value, direct.get(tuple(sorted(mine.items())))))
                if labels["group"] == "semiconductors" and key == ("7d", "shipments"):
                    semis = value
                compared += 1
            if semis is None or not semis > 0:
                problems.append("shortfall_volume{group=semiconductors,corridor=*,window=7d,measure=shipments}: %r"
                                % semis)
            groups = {g for (_, g) in replay}
            if compared != len(groups) * 6:
                problems.append("compared %d group-total volume series, want %d groups x 2 windows x 3 measures"
                                % (compared, len(groups)))

        # The rules run on real data without errors, and alert as expected.
        for group in prom.api("rules")["groups"]:
            for rule in group["rules"]:
                if rule.get("health") != "ok" or rule.get("lastError"):
                    problems.append("rule %s: health %s, error %r"
                                    % (rule["name"], rule.get("health"), rule.get("lastError")))
        active = {(x["labels"]["alertname"], x["state"]) for x in prom.api("alerts")["alerts"]}
        if ("ShortfallWatermarkLagHigh", "pending") not in active:
            problems.append("ShortfallWatermarkLagHigh is not pending (the scenario's watermark is months old): %s"
                            % sorted(active))
        firing = sorted(n for n, s in active if s == "firing")
        if firing:
            problems.append("alerts firing on a healthy run: %s" % firing)

        if problems:
            print("\n".join(problems))
            print("--- shortfall\n" + log_text("shortfall")[-2000:])
            return 1
        print("prometheus e2e: consumed %s (= the scenario file), rate peaked at %.0f records/s %.1f s after "
              "production began, %d group-total volumes at watermark %s equal replay and /metrics "
              "(semiconductors/*/7d shipments = %d), rules healthy, active alerts %s; consumed in %.1f s, "
              "%.0f s in all"
              % (want, peak[1], peak[0] - t_produce, compared, bucket_end, semis, sorted(active),
                 t_done - t_produce, time.time() - t_start))
        return 0
    finally:
        for proc in reversed(children):
            if proc.poll() is None:
                terminate(proc, 30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
