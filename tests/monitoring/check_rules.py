#!/usr/bin/env python3
"""monitoring/prometheus/ passes promtool, and its rules are complete.

1. `promtool check config prometheus.yml`: the config is valid and its
   rule_files globs resolve to the rule files in rules/ (each one named in
   promtool's output with its rule count).
2. `promtool check rules` on every rule file.
3. `promtool test rules` on every unit test file in tests/.
4. Conventions the unit tests cannot see: every alert has a `severity`
   label (critical|warning|info) and `summary` and `description`
   annotations; every alert has a test case where it fires and one where it
   does not; every metric a rule reads is a family that
   pipeline/runtime_probe.h declares (histograms: _bucket/_sum/_count), a
   series Prometheus writes itself (up), or a recording rule defined here.

Usage: check_rules.py REPO_DIR
"""
import glob
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import promql_names  # noqa: E402


def promtool(*args):
    r = subprocess.run(["promtool"] + list(args), capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def declared_families(repo):
    """Sample names of the families runtime_probe.h documents ("//   shortfall_x{labels}   type")."""
    names = set()
    text = open(os.path.join(repo, "pipeline", "runtime_probe.h")).read()
    for line in text.splitlines():
        m = re.match(r"^//\s+(shortfall_\w+)(?:\{[^}]*\})?(?:,\s*(shortfall_\w+))?\s+(counter|gauge|histogram)", line)
        if not m:
            continue
        for name in filter(None, m.group(1, 2)):
            if m.group(3) == "histogram":
                names.update(name + s for s in ("_bucket", "_sum", "_count"))
            else:
                names.add(name)
    return names


def alert_blocks(path):
    """{alert name: its YAML text} (up to the next rule item)."""
    text = open(path).read()
    blocks = {}
    for m in re.finditer(r"^(\s*)-\s+alert:\s*(\S+)\s*\n(.*?)(?=^\1-\s|\Z)", text, re.M | re.S):
        blocks[m.group(2)] = m.group(3)
    return blocks


def test_cases(paths):
    """{alertname: set of "fires" / "quiet"} over the unit test files."""
    cases = {}
    for path in paths:
        lines = open(path).read().splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^\s*alertname:\s*(\S+)\s*$", line)
            if not m:
                continue
            for follow in lines[i + 1:i + 4]:
                e = re.match(r"^\s*exp_alerts:\s*(.*)$", follow)
                if e:
                    kind = "quiet" if e.group(1).strip() == "[]" else "fires"
                    cases.setdefault(m.group(1), set()).add(kind)
                    break
    return cases


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    if shutil.which("promtool") is None:
        print("promtool not found: install the Debian package prometheus (tools/install-deps.sh does)")
        return 1
    repo = os.path.abspath(sys.argv[1])
    prom = os.path.join(repo, "monitoring", "prometheus")
    config = os.path.join(prom, "prometheus.yml")
    rule_files = sorted(glob.glob(os.path.join(prom, "rules", "*.yml")))
    test_files = sorted(glob.glob(os.path.join(prom, "tests", "*.test.yml")))
    problems = []
    if not rule_files:
        problems.append("no rule files in %s/rules" % prom)
    if not test_files:
        problems.append("no unit test files in %s/tests" % prom)

    # 1. The config, and that its rule_files find every rule file.
    rc, out = promtool("check", "config", config)
    if rc != 0:
        problems.append("promtool check config failed:\n" + out)
    m = re.search(r"SUCCESS: (\d+) rule files found", out)
    if not m or int(m.group(1)) != len(rule_files):
        problems.append("prometheus.yml's rule_files resolve to %s rule files, want %d (%s):\n%s"
                        % (m.group(1) if m else "no", len(rule_files), ", ".join(rule_files), out))
    for f in rule_files:
        if os.path.relpath(f, prom) not in out and f not in out:
            problems.append("promtool check config did not load %s:\n%s" % (f, out))

    # 2. Each rule file, and that our reader sees as many rules as promtool.
    declared = declared_families(repo)
    if len(declared) < 20:
        problems.append("read only %d metric names from pipeline/runtime_probe.h" % len(declared))
    recorded, alerts = set(), {}
    all_rules = []
    for f in rule_files:
        rc, out = promtool("check", "rules", f)
        if rc != 0:
            problems.append("promtool check rules %s failed:\n%s" % (f, out))
        parsed = promql_names.rules(f)
        all_rules += parsed
        m = re.search(r"SUCCESS: (\d+) rules found", out)
        if m and int(m.group(1)) != len(parsed):
            problems.append("%s: promtool found %s rules, promql_names.rules() %d" % (f, m.group(1), len(parsed)))
        recorded |= {r["name"] for r in parsed if r["kind"] == "record"}
        for name, block in alert_blocks(f).items():
            alerts[name] = (f, block)
    for r in all_rules:
        if not r["expr"]:
            problems.append("%s %s: no expr read" % (r["kind"], r["name"]))
            continue
        for name in sorted(promql_names.metric_names(r["expr"])):
            if name not in declared and name not in recorded and name not in promql_names.PROMETHEUS_SERIES:
                problems.append("%s %s reads %s: not a family of pipeline/runtime_probe.h, a series Prometheus "
                                "writes, or a recording rule" % (r["kind"], r["name"], name))

    # 3. The unit tests.
    for f in test_files:
        rc, out = promtool("test", "rules", f)
        if rc != 0:
            problems.append("promtool test rules %s failed:\n%s" % (f, out))

    # 4. Alert conventions and test coverage.
    cases = test_cases(test_files)
    if not alerts:
        problems.append("no alerting rules found")
    for name, (f, block) in sorted(alerts.items()):
        if not re.search(r"^\s+severity:\s*['\"]?(critical|warning|info)['\"]?\s*$", block, re.M):
            problems.append("alert %s: no severity label critical|warning|info" % name)
        for annotation in ("summary", "description"):
            if not re.search(r"^\s+%s:\s*\S" % annotation, block, re.M):
                problems.append("alert %s: no %s annotation" % (name, annotation))
        got = cases.get(name, set())
        for kind in ("fires", "quiet"):
            if kind not in got:
                problems.append("alert %s: no unit test case where it %s"
                                % (name, "fires" if kind == "fires" else "does not fire"))

    if problems:
        print("\n".join(problems))
        return 1
    print("monitoring rules: config loads %d rule file(s), %d rules (%d recording, %d alerting) pass promtool, "
          "%d unit test file(s) pass, every alert labelled, annotated and tested both ways"
          % (len(rule_files), len(all_rules), len(recorded), len(alerts), len(test_files)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
