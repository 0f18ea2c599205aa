"""The PromQL in monitoring/: where it is, and which metric names it reads.

Shared by the monitoring tests (stdlib only, no PyYAML):

- rules(path): the recording and alerting rules of a Prometheus rule file
  written in the style of monitoring/prometheus/rules/ ("- record:" or
  "- alert:" items, "expr:" on one line or as a block scalar "|" / ">-").
  The caller compares the count with promtool's, so a rule this reader
  misses cannot go unchecked.
- dashboard_queries(path): every PromQL expression of a Grafana dashboard
  JSON (panel targets, rows' nested panels, template variable queries,
  label_values(...) reduced to its selector).
- metric_names(expr): the metric names an expression reads. Strings, label
  matchers, ranges, grouping clauses and Grafana variables are removed
  first; what is left that looks like an identifier and is not followed by
  "(" (a function or aggregation) and is not a PromQL keyword is a metric
  name (or a recording rule's name).
- substitute_grafana(expr): the expression with Grafana's variables
  replaced by valid PromQL, for promtool to parse.
"""
import json
import re

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
            "and", "or", "unless", "atan2", "inf", "nan"}
# Series Prometheus writes itself, not the scraped program.
PROMETHEUS_SERIES = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped",
                     "scrape_samples_post_metric_relabeling", "scrape_series_added"}

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:.])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])(?!\s*\()")
_LABEL_VALUES = re.compile(r"^\s*label_values\s*\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", re.S)


def metric_names(expr):
    s = re.sub(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]", " ", expr)  # Grafana variables
    s = _STRING.sub('""', s)
    s = re.sub(r"#[^\n]*", " ", s)  # comments
    s = re.sub(r"\{[^{}]*\}", "{}", s)  # label matchers
    s = re.sub(r"\[[^\[\]]*\]", "[]", s)  # ranges and subqueries
    s = re.sub(r"@\s*[\d.]+", " ", s)  # @ timestamps
    s = _GROUPING.sub(" ", s)
    return {m.group(1) for m in _IDENT.finditer(s) if m.group(1).lower() not in KEYWORDS}


def variable_query(query):
    """A template variable's query as PromQL, or None (label_values(label) has no selector)."""
    if isinstance(query, dict):
        query = query.get("query", "")
    query = query or ""
    m = _LABEL_VALUES.match(query)
    if m:
        return m.group(1).strip()
    m = re.match(r"^\s*query_result\s*\((.*)\)\s*$", query, re.S)
    if m:
        return m.group(1)
    if re.match(r"^\s*(label_values|label_names|metrics)\s*\(", query):
        return None
    return query or None


def dashboard_queries(path):
    """[(where, expr)] for every PromQL expression in a Grafana dashboard JSON."""
    with open(path) as f:
        dash = json.load(f)
    out = []

    def walk(panels):
        for p in panels or []:
            for t in p.get("targets") or []:
                if t.get("expr"):
                    out.append(("panel %r target %s" % (p.get("title"), t.get("refId")), t["expr"]))
            walk(p.get("panels"))

    walk(dash.get("panels"))
    for v in (dash.get("templating") or {}).get("list") or []:
        if v.get("type") == "query":
            q = variable_query(v.get("query") or v.get("definition"))
            if q:
                out.append(("variable %r" % v.get("name"), q))
    return out


def rules(path):
    """[{"kind": "record"|"alert", "name": ..., "expr": ...}] from a rule file in monitoring/'s style."""
    lines = open(path).read().splitlines()
    out = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)-\s+(record|alert):\s*(\S+)\s*$", lines[i])
        if not m:
            i += 1
            continue
        item_indent = len(m.group(1))
        rule = {"kind": m.group(2), "name": m.group(3).strip("'\""), "expr": None}
        i += 1
        while i < len(lines):
            line = lines[i]
            if line.strip() and (len(line) - len(line.lstrip())) <= item_indent:
                break  # next item or group
            e = re.match(r"^(\s*)expr:\s*(.*)$", line)
            if e:
                key_indent, value = len(e.group(1)), e.group(2).strip()
                if value in ("|", "|-", ">", ">-"):
                    body = []
                    i += 1
                    while i < len(lines) and (not lines[i].strip() or
                                              len(lines[i]) - len(lines[i].lstrip()) > key_indent):
                        body.append(lines[i].strip())
                        i += 1
                    rule["expr"] = "\n".join(body).strip()
                    continue
                if value[:1] in "'\"" and value[-1:] == value[:1]:
                    value = value[1:-1]
                rule["expr"] = value
            i += 1
        out.append(rule)
    return out


def substitute_grafana(expr):
    """Grafana's variables replaced with valid PromQL, for promtool to parse."""
    s = expr
    for name, value in (("__rate_interval", "5m"), ("__range_ms", "3600000"), ("__range_s", "3600"),
                        ("__interval", "1m"), ("__range", "1h")):  # longer names first
        s = s.replace("${%s}" % name, value).replace("$" + name, value)
    return re.sub(r"\$\{[^}]*\}|\$\w+", "x", s)
