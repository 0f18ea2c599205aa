#!/usr/bin/env python3
"""monitoring/grafana/ holds a well-formed provisioned dashboard.

Without Grafana (not installable here), checks what a provisioning Grafana
relies on:

- dashboards/shortfall.json: uid "shortfall", schemaVersion >= 36, a
  `datasource` template variable DS_PROMETHEUS of type prometheus that every
  panel and target uses ("${DS_PROMETHEUS}"), unique panel ids, panels that
  do not overlap on the 24-column grid, rows "Pipeline health" and
  "Commodities", template variables `group` and `corridor` filled by
  label_values(shortfall_volume...), and every variable a query uses
  defined;
- every PromQL expression (targets and variable queries, Grafana variables
  substituted) parses: promtool check rules over a generated rule file;
- every metric name read is a family pipeline/runtime_probe.h declares, a
  series Prometheus writes itself (up), or a recording rule of
  monitoring/prometheus/rules/ (the kafka test monitoring_dashboard_queries
  checks the same names against a live shortfall);
- provisioning/: a dashboards provider of type file reading
  /var/lib/grafana/dashboards, and a prometheus datasource.

Usage: check_dashboard.py REPO_DIR
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import promql_names  # noqa: E402
from check_rules import declared_families  # noqa: E402

BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms",
                     "__all", "__name", "__dashboard", "__from", "__to", "__user", "__org", "timeFilter"}


def walk_panels(panels):
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels"))


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    if shutil.which("promtool") is None:
        print("promtool not found: install the Debian package prometheus (tools/install-deps.sh does)")
        return 1
    repo = os.path.abspath(sys.argv[1])
    graf = os.path.join(repo, "monitoring", "grafana")
    path = os.path.join(graf, "dashboards", "shortfall.json")
    problems = []
    with open(path) as f:
        dash = json.load(f)

    if dash.get("uid") != "shortfall":
        problems.append("uid is %r, want 'shortfall'" % dash.get("uid"))
    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
        problems.append("schemaVersion %r, want >= 36" % dash.get("schemaVersion"))
    if "id" in dash and dash["id"] is not None:
        problems.append("a provisioned dashboard should carry no numeric id (got %r)" % dash["id"])

    variables = {v.get("name"): v for v in (dash.get("templating") or {}).get("list") or []}
    ds = variables.get("DS_PROMETHEUS")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append("no template variable DS_PROMETHEUS of type datasource, query prometheus")
    for name in ("group", "corridor"):
        v = variables.get(name)
        q = v and promql_names.variable_query(v.get("query"))
        raw = v and (v.get("query", {}).get("query") if isinstance(v.get("query"), dict) else v.get("query"))
        if not v or v.get("type") != "query" or not re.match(r"^\s*label_values\(\s*shortfall_volume\b", raw or "") \
                or not re.search(r",\s*%s\s*\)\s*$" % name, raw or ""):
            problems.append("template variable %s: want a query label_values(shortfall_volume..., %s), got %r"
                            % (name, name, raw))
        elif not q:
            problems.append("template variable %s: no selector read from %r" % (name, raw))

    want_ds = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    ids, cells, rows = set(), {}, []
    for p in walk_panels(dash.get("panels")):
        title = p.get("title")
        if p.get("id") in ids:
            problems.append("panel id %r used twice" % p.get("id"))
        ids.add(p.get("id"))
        if p.get("type") == "row":
            rows.append(title)
        else:
            if p.get("datasource") != want_ds:
                problems.append("panel %r: datasource %r, want %r" % (title, p.get("datasource"), want_ds))
            for t in p.get("targets") or []:
                if t.get("datasource") != want_ds:
                    problems.append("panel %r target %s: datasource %r" % (title, t.get("refId"), t.get("datasource")))
                if not t.get("expr"):
                    problems.append("panel %r target %s: no expr" % (title, t.get("refId")))
            if not p.get("targets"):
                problems.append("panel %r has no query" % title)
        g = p.get("gridPos") or {}
        if g.get("x", 0) + g.get("w", 0) > 24:
            problems.append("panel %r is wider than the grid: %r" % (title, g))
        for dx in range(g.get("w", 0)):
            for dy in range(g.get("h", 0)):
                cell = (g.get("x", 0) + dx, g.get("y", 0) + dy)
                if cell in cells:
                    problems.append("panels %r and %r overlap at %r" % (cells[cell], title, cell))
                    break
                cells[cell] = title
            else:
                continue
            break
    for want in ("Pipeline health", "Commodities"):
        if want not in rows:
            problems.append("no row %r (rows: %s)" % (want, rows))

    queries = promql_names.dashboard_queries(path)
    if len(queries) < 20:
        problems.append("only %d PromQL expressions found in the dashboard" % len(queries))
    # Variables used must exist.
    texts = [e for _, e in queries] + [p.get("title") or "" for p in walk_panels(dash.get("panels"))]
    for text in texts:
        for name in re.findall(r"\$\{?(\w+)", text):
            if name not in variables and name not in BUILTIN_VARIABLES:
                problems.append("%r uses undefined variable $%s" % (text, name))

    # Every expression parses.
    with tempfile.TemporaryDirectory() as tmp:
        rules = os.path.join(tmp, "dashboard.rules.yml")
        with open(rules, "w") as f:
            f.write("groups:\n  - name: dashboard\n    rules:\n")
            for i, (_, expr) in enumerate(queries):
                f.write("      - record: dashboard_query_%d\n        expr: %s\n"
                        % (i, json.dumps(promql_names.substitute_grafana(expr))))
        r = subprocess.run(["promtool", "check", "rules", rules], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            out = r.stdout + r.stderr
            for m in re.finditer(r"dashboard_query_(\d+)", out):
                where, expr = queries[int(m.group(1))]
                problems.append("%s does not parse: %s" % (where, expr))
            problems.append("promtool check rules on the dashboard's queries failed:\n" + out)

    # Every name is exported (per the probe's header), Prometheus' own, or recorded.
    declared = declared_families(repo)
    recorded = set()
    for f in glob.glob(os.path.join(repo, "monitoring", "prometheus", "rules", "*.yml")):
        recorded |= {r["name"] for r in promql_names.rules(f) if r["kind"] == "record"}
    used = set()
    for where, expr in queries:
        for name in promql_names.metric_names(expr):
            used.add(name)
            if name not in declared and name not in recorded and name not in promql_names.PROMETHEUS_SERIES:
                problems.append("%s reads %s: not a family of pipeline/runtime_probe.h, a series Prometheus "
                                "writes, or a recording rule" % (where, name))
    for must in ("shortfall_volume", "shortfall_volume_baseline", "shortfall_open_alerts", "shortfall_alerts_total",
                 "shortfall_consumer_lag_records", "shortfall_commit_duration_seconds_bucket",
                 "shortfall_processing_latency_seconds_bucket", "shortfall_records_invalid_total",
                 "shortfall_records_late_total", "shortfall_tasks", "shortfall_state_bytes", "shortfall_ready"):
        if must not in used:
            problems.append("the dashboard never reads %s" % must)

    # Provisioning.
    prov = os.path.join(graf, "provisioning")
    dash_prov = " ".join(open(f).read() for f in glob.glob(os.path.join(prov, "dashboards", "*.y*ml")))
    if not re.search(r"type:\s*file", dash_prov) or "/var/lib/grafana/dashboards" not in dash_prov:
        problems.append("provisioning/dashboards: no file provider reading /var/lib/grafana/dashboards")
    ds_prov = " ".join(open(f).read() for f in glob.glob(os.path.join(prov, "datasources", "*.y*ml")))
    if not re.search(r"type:\s*prometheus", ds_prov) or not re.search(r"url:\s*\S", ds_prov):
        problems.append("provisioning/datasources: no prometheus datasource with a url")

    if problems:
        print("\n".join(problems))
        return 1
    print("dashboard: uid shortfall, schemaVersion %d, %d panels in rows %s, %d PromQL expressions parse, "
          "%d metric names all declared, exported by Prometheus or recorded"
          % (dash["schemaVersion"], len(ids), rows, len(queries), len(used)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
