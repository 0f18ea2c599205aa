#!/usr/bin/env python3
"""How fast can a detector find the suite's volume drops? CUSUMs run on the replays, against detection_quality.py's oracle.

detection_quality.py divides shortfall's detection delay by ln(ARL) / KL, the
approximate delay of a Poisson oracle CUSUM that knows the rates before (l0)
and after (l1) a drop, ARL being one false alarm per quarter of hourly
evaluations. That formula is an approximation; this runs CUSUMs on the
replayed data instead. For every volume drop of the drop scenarios it
prints, in hours from the drop's start:
  poisson     ln(ARL) / KL, KL Poisson (detection_quality.py's oracle)
  nb          the same with negative-binomial KL, variance l + PHI l^2 (the
              generator's day-to-day variation; port-specific drops only, as
              a group total sums independent corridors)
  baseline    a likelihood-ratio CUSUM run on the data that knows l1 / l0
              and PHI but, like a detector, takes the level from the median
              of the same hours of past weeks and each hour's share of its
              day from those weeks. Hourly steps B x share - A x count: the
              negative-binomial log likelihood ratio of a window's count is
              linear in it. Its threshold is the lowest (in steps of 0.25)
              that crosses at most once per ARL judged hours on the
              noise-only series (every watched series of the no-shortage
              scenarios that no truth entry touches, with the same ratio
              and PHI): the oracles' false-alarm budget, held on real data.
              Port-specific drops only (it needs PHI)
  design      what a detector that knows neither the drop's size nor PHI
              could do: the same CUSUM with a fixed design ratio RHO and PHI
              estimated per series at each close from its past weeks (the
              24 h counts at each of the last 168 hours' positions one to
              three weeks back: pooled sample variance minus mean over
              mean^2, at least PHI_FLOOR), at threshold THRESHOLD
  quiet       the CUSUM of `baseline` (the drop's size known; PHI known for a
              port's drop, estimated as `design` does for a group total),
              held to the precision aim instead of the ARL: its threshold is
              the lowest (steps of 0.25) at which it raises at most
              FALSE_BUDGET crossings over every series of every scenario
              that no shortage touches (each run's copy counts, as each is
              an alert detection_quality.py would score). The default
              budget is what precision 0.95 allows when every shortage of
              the truth raises one alert: 5/95 of their number
  shortfall   the first matching OPEN alert of the same replay (any detector)
then each column's median over the Poisson oracle's delay, and how often the
design crosses its threshold on every series of the no-shortage scenarios
(holidays, surges, late bursts and an idle partition included). It is a
study, not a test: it exits 0 whatever the numbers.

usage: bench/delay_floor.py SHORTFALL [--seeds 1,2,3,4,5] [--jobs 2] [--design RHO,THRESHOLD]
                                      [--false-budget N]
"""
import argparse
import concurrent.futures
import math
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import detection_quality as dq  # noqa: E402  (the test's matching rules, shared)

HOUR_MS = dq.HOUR_MS
WEEK = 168                      # hourly buckets a week
BASELINE_WEEKS = 4              # the volume-drop detector's default
MIN_EXPECTED = 5                # its min_expected_shipments
ARL = 90 * 24                   # detection_quality.py's false-alarm budget, hourly evaluations
PHI = 0.2 ** 2 + 0.07 ** 2      # the generator's overdispersion of a corridor's daily counts (see detection_quality.py's nb50)
PHI_FLOOR = 0.01                # relative_floor^2
DROP_SCENARIOS = ["demo", "sudden_drop", "gradual_decline"]  # those with a volume-drop shortage
CLEAN_SCENARIOS = ["holiday_dip", "demand_surge", "low_volume_noise", "late_burst", "idle_partition"]


def hourly_series(replay_stdout):
    """{(group, corridor): (first hour, 24 h counts, hourly counts)} from `replay --print bucket`.

    The hourly count of the bucket closing at hour i is W(i) - W(i - 1) + n(i - 24): the 24 h
    window gains that bucket and loses the one a day older (W and n are 0 before a series'
    first close)."""
    windows = {}
    for line in replay_stdout.splitlines():
        p = line.split()
        if len(p) < 5 or p[3] != "[24h]" or p[1] == "unclassified":
            continue
        windows.setdefault((p[1], p[2]), {})[dq.parse_time(p[0]) // HOUR_MS] = int(p[4].split("=")[1])
    out = {}
    for key, by_hour in windows.items():
        lo, hi = min(by_hour), max(by_hour)
        w = [by_hour.get(t, 0) for t in range(lo, hi + 1)]
        n = []
        for i in range(len(w)):
            n.append(w[i] - (w[i - 1] if i else 0) + (n[i - 24] if i >= 24 else 0))
        if min(n) < 0:
            raise RuntimeError("%s: hourly counts do not reconstruct (a gap in the printed closes)" % (key,))
        out[key] = (lo, w, n)
    return out


def run_one(binary, name, seed, workdir):
    base = os.path.join(workdir, "%s.%d" % (name, seed))
    dq.run([binary, "gen", "--scenario", name, "--seed", str(seed), "--out", base + ".pb", "--truth",
            base + ".truth.csv"])
    replay = dq.run([binary, "replay", "--input", base + ".pb", "--print", "bucket", "--alerts-json",
                     base + ".alerts.jsonl"])
    result = {"name": name, "seed": seed, "series": hourly_series(replay.stdout),
              "truth": dq.load_truth(base + ".truth.csv"), "alerts": dq.load_alerts(base + ".alerts.jsonl")}
    os.remove(base + ".pb")
    return result


def coefficients(level, rho, phi):
    """(A, B): a window's negative-binomial log likelihood ratio, drop to rho x level against
    level, is B - A x count (variance l + phi l^2)."""
    l0, l1, r = level, rho * level, 1 / phi
    return math.log(l0 * (r + l1) / (l1 * (r + l0))), r * math.log((r + l0) / (r + l1))


def oracle_hours(l0, l1, phi=0.0):
    """ln(ARL) / KL in hours, KL per day of daily counts l1 against l0 (detection_quality.py's
    oracle): Poisson when phi is 0, else negative binomial with variance l + phi l^2. None when
    KL is not positive (no drop). l1 may be 0 (the flow stopped)."""
    if phi == 0:
        kl = (l1 * math.log(l1 / l0) if l1 > 0 else 0.0) - l1 + l0
    else:
        r = 1 / phi
        kl = r * math.log((r + l0) / (r + l1)) + (l1 * math.log(l1 * (r + l0) / (l0 * (r + l1))) if l1 > 0 else 0.0)
    return math.log(ARL) / kl * 24 if kl > 0 else None


def steps(series, rho, phi=None):
    """[(hour, B x share - A x count)] at every close a detector could judge.

    phi None: estimated at each close from the ring, pooled over the 168 hours up to it: the
    24 h counts at each hour's position 1 to 3 weeks back give (sample variance - mean) and
    mean^2; phi = their sums' ratio, at least PHI_FLOOR."""
    lo, w, n = series
    out = []
    terms = []
    excess = square = 0.0
    for i in range(len(w)):
        if phi is None:
            vals = [w[i - WEEK * k] for k in range(1, BASELINE_WEEKS) if i - WEEK * k >= 24]
            t = (0.0, 0.0)
            if len(vals) >= 2:
                m = sum(vals) / len(vals)
                t = (sum((x - m) ** 2 for x in vals) / (len(vals) - 1) - m, m * m)
            terms.append(t)
            excess += t[0] - (terms[i - WEEK][0] if i >= WEEK else 0.0)
            square += t[1] - (terms[i - WEEK][1] if i >= WEEK else 0.0)
        lagged = [i - WEEK * k for k in range(1, BASELINE_WEEKS + 1) if i - WEEK * k >= 24]
        if len(lagged) < 2:
            continue
        level = statistics.median(w[j] for j in lagged)
        total = sum(w[j] for j in lagged)
        if level < MIN_EXPECTED or total <= 0:
            continue
        share = sum(n[j] for j in lagged) / total
        p = phi if phi is not None else max(PHI_FLOOR, excess / square if square > 0 else 0.0)
        a, b = coefficients(level, rho, p)
        out.append((lo + i, b * share - a * n[i]))
    return out


def crossing_hours(path, threshold):
    """The hours at which the CUSUM over `path` reaches `threshold`, restarting at 0 after each.

    A step may be a tuple, one per CUSUM of a bank: the bank crosses when any of them does, and
    all restart."""
    s, out = None, []
    for hour, g in path:
        g = g if isinstance(g, tuple) else (g,)
        s = [max(0.0, (s[j] if s else 0.0) + x) for j, x in enumerate(g)]
        if max(s) >= threshold:
            out.append(hour)
            s = None
    return out


def bank_steps(series, rhos, phi=None):
    """steps() for each design ratio of a bank, zipped: [(hour, (g per ratio))]."""
    paths = [steps(series, rho, phi) for rho in rhos]
    return [(p[0][0], tuple(x[1] for x in p)) for p in zip(*paths)]




def touches(key, e):
    """Does truth entry e cover series key (a group's total counts for a port's entry too)?"""
    group, corridor = key
    return e["group"] in (group, "*") and (not e["port"] or corridor.endswith("-" + e["port"]) or corridor == "*")


def touched(key, result, shortages_only=False):
    return any(touches(key, e) for e in result["truth"] if e["shortage"] or not shortages_only)


def budget_threshold(paths, budget):
    """The lowest threshold (steps of 0.25, at most 100) at which the CUSUMs over `paths` cross at
    most `budget` times in all. Crossings fall as the threshold rises (a restart can move a later
    crossing, so not strictly): a bisection over the steps."""
    lo, hi = 4, 400  # quarter nats
    while lo < hi:
        mid = (lo + hi) // 2
        if sum(len(crossing_hours(p, mid / 4)) for p in paths) <= budget:
            hi = mid
        else:
            lo = mid + 1
    return lo / 4


def calibrated_threshold(clean_paths, hours):
    """The lowest threshold (steps of 0.25) crossed at most once per ARL hours on the clean paths."""
    return budget_threshold(clean_paths, hours / ARL)


def daily_mean(series, start_hour, end_hour):
    lo, w, _ = series
    vals = [w[h - lo] for h in range(start_hour, end_hour) if h % 24 == 0 and 0 <= h - lo < len(w)]
    return sum(vals) / len(vals) if vals else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--seeds", default="1,2,3,4,5", help="comma-separated seeds (default 1,2,3,4,5)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--design", default="0.25,10",
                        help="RHO[+RHO...],THRESHOLD of the design tried: one CUSUM, or a bank that fires when "
                             "any of its CUSUMs does (default 0.25,10)")
    parser.add_argument("--false-budget", type=float,
                        help="crossings the quiet column may raise on the series no shortage touches (default: "
                             "5/95 of the shortages in the runs' truth, precision 0.95's allowance)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s]
    design_ratios, design_threshold = args.design.split(",")
    rho_design, threshold_design = tuple(float(x) for x in design_ratios.split("+")), float(design_threshold)

    with tempfile.TemporaryDirectory() as tmp:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            jobs = [(n, s) for n in dq.scenario_names(args.binary) for s in seeds]
            results = list(pool.map(lambda j: run_one(args.binary, j[0], j[1], tmp), jobs))

    # Noise only (the oracles' false-alarm budget), and everything without a shortage (holidays,
    # surges, late bursts, an idle partition: what a detector must also stay quiet on).
    noise, clean, seen = [], [], set()
    for r in results:
        if r["name"] not in CLEAN_SCENARIOS:
            continue
        for key, series in r["series"].items():
            ident = (r["seed"], key, tuple(series[2]))
            if ident in seen:
                continue
            seen.add(ident)
            clean.append(series)
            if not touched(key, r):
                noise.append(series)
    # Every series of every run that no shortage touches: an alert on any is a false one.
    background = [s for r in results for key, s in r["series"].items() if not touched(key, r, shortages_only=True)]
    shortages = sum(1 for r in results for e in r["truth"] if e["shortage"])
    false_budget = args.false_budget if args.false_budget is not None else math.floor(shortages * 5 / 95)
    quiet_thresholds = {}

    def quiet_threshold(rho, phi):
        if (rho, phi) not in quiet_thresholds:
            quiet_thresholds[(rho, phi)] = budget_threshold([steps(s, rho, phi) for s in background], false_budget)
        return quiet_thresholds[(rho, phi)]

    noise_hours = sum(len(steps(s, 0.5, PHI)) for s in noise)
    clean_hours = sum(len(steps(s, 0.5, PHI)) for s in clean)
    design_false = sum(len(crossing_hours(bank_steps(s, rho_design), threshold_design)) for s in clean)

    print("noise-only series %d (%.1f series-quarters of judged hours); series without a shortage %d (%.1f)" % (
        len(noise), noise_hours / ARL, len(clean), clean_hours / ARL))
    print("%d runs, %d series no shortage touches, %d shortages in the truth: the quiet column may cross %g times" % (
        len(results), len(background), shortages, false_budget))
    print("%-15s %4s %-15s %5s %5s %8s %4s %8s %9s %6s %6s %6s %9s" % (
        "scenario", "seed", "series", "l0", "l1", "poisson", "nb", "baseline", "threshold", "design", "quiet",
        "q_thr", "shortfall"))
    ratios = {"nb": [], "baseline": [], "design": [], "quiet": [], "shortfall": []}
    fmt = lambda v, spec="%.0f": "-" if v is None else spec % v  # noqa: E731
    for r in results:
        if r["name"] not in DROP_SCENARIOS:
            continue
        for e in r["truth"]:
            if not (e["shortage"] and e["kind"] == "volume_drop"):
                continue
            if e["port"]:
                keys = [k for k in r["series"] if k[0] == e["group"] and k[1].endswith("-" + e["port"])]
            else:
                keys = [(e["group"], "*")] if (e["group"], "*") in r["series"] else []
            if len(keys) != 1:
                continue
            series = r["series"][keys[0]]
            start = e["start"] // HOUR_MS
            l0 = daily_mean(series, start - 168, start)
            l1 = daily_mean(series, start + 48, start + 216)
            if not l0 or not l1 or l1 >= l0:
                continue
            rho = l1 / l0
            poisson = oracle_hours(l0, l1)

            def delay(path, threshold):
                hits = [h for h in crossing_hours(path, threshold) if start <= h < e["end"] // HOUR_MS + 72]
                return hits[0] - start if hits else None

            nb = baseline = threshold = None
            if e["port"]:  # PHI is a corridor's; a group total sums independent corridors
                nb = oracle_hours(l0, l1, PHI)
                threshold = calibrated_threshold([steps(s, rho, PHI) for s in noise], noise_hours)
                baseline = delay(steps(series, rho, PHI), threshold)
            design = delay(bank_steps(series, rho_design), threshold_design)
            # The quiet column's ratio on a grid of 0.05, so that drops share their thresholds.
            rho_grid = max(0.05, round(rho / 0.05) * 0.05)
            phi = PHI if e["port"] else None
            q_threshold = quiet_threshold(rho_grid, phi)
            quiet = delay(steps(series, rho_grid, phi), q_threshold)
            hits = sorted(a["window_end"] for a in r["alerts"] if dq.matches(a, e))
            shortfall = (hits[0] - e["start"]) / HOUR_MS if hits else None
            for name, value in (("nb", nb), ("baseline", baseline), ("design", design), ("quiet", quiet),
                                ("shortfall", shortfall)):
                if value is not None:
                    ratios[name].append(value / poisson)
            print("%-15s %4d %-15s %5.1f %5.1f %8.0f %4s %8s %9s %6s %6s %6s %9s" % (
                r["name"], r["seed"], "%s %s" % (e["group"][:10], e["port"] or "*"), l0, l1, poisson, fmt(nb),
                fmt(baseline), fmt(threshold, "%.2f"), fmt(design), fmt(quiet), fmt(q_threshold, "%.2f"),
                fmt(shortfall)))
    print("median over the Poisson oracle (drops counted): " + ", ".join(
        "%s %s (%d)" % (k, fmt(statistics.median(v) if v else None, "%.2f"), len(v)) for k, v in ratios.items()))
    print("baseline is held to the oracle's ARL, quiet to precision 0.95's allowance (%g crossings in %d runs)" % (
        false_budget, len(results)))
    print("design rho %s threshold %.2f: %d crossings on the series without a shortage" % (
        "+".join("%.2f" % r for r in rho_design), threshold_design, design_false))
    return 0


if __name__ == "__main__":
    sys.exit(main())
