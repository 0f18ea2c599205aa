#!/usr/bin/env python3
"""The pieces bench/delay_floor.py's numbers rest on, on hand-made input.

  - hourly counts come back exactly from the 24 h windows `replay --print
    bucket` prints, including a series that starts mid-day;
  - B - A x count equals the negative-binomial log likelihood ratio computed
    from the probability mass function itself, for several counts, and the
    oracle delay is ln(ARL) / KL;
  - the CUSUM restarts after a crossing, and the calibrated threshold holds
    the false-alarm budget it is given, as does the quiet column's (the
    lowest that does);
  - only a shortage's truth entry takes a series out of the quiet column's
    count, and a port's entry covers its group's total.

usage: tests/e2e/delay_floor_test.py
"""
import datetime
import math
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import delay_floor as df  # noqa: E402


def nb_log_pmf(x, mean, phi):
    r = 1 / phi
    return (math.lgamma(x + r) - math.lgamma(r) - math.lgamma(x + 1) + r * math.log(r / (r + mean))
            + x * math.log(mean / (r + mean)))


def bucket_lines(first_hour, hourly):
    """`replay --print bucket` lines for one series with these hourly counts."""
    lines = []
    for i in range(len(hourly)):
        window = sum(hourly[max(0, i - 23):i + 1])
        stamp = datetime.datetime.fromtimestamp((first_hour + i) * 3600, datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        lines.append("%s  ppe  MX-US-2304  [24h] shipments=%d gross_kg=0.000 value_usd=0.0000  "
                     "[7d] shipments=0 gross_kg=0.000 value_usd=0.0000" % (stamp, window))
    return "\n".join(lines)


class DelayFloorTest(unittest.TestCase):
    def test_hourly_counts_reconstruct_from_24h_windows(self):
        rng = random.Random(7)
        hourly = [rng.randrange(0, 9) for _ in range(24 * 9 + 5)]
        first_hour = 492_000 + 13  # not a midnight
        text = bucket_lines(first_hour, hourly) + "\n2026-02-02T00:00:00Z  unclassified  *  [24h] shipments=3"
        series = df.hourly_series(text)
        self.assertEqual(list(series), [("ppe", "MX-US-2304")])
        lo, windows, counts = series[("ppe", "MX-US-2304")]
        self.assertEqual(lo, first_hour)
        self.assertEqual(counts, hourly)
        self.assertEqual(windows[30], sum(hourly[7:31]))

    def test_coefficients_are_the_negative_binomial_likelihood_ratio(self):
        for level, rho, phi in ((17.0, 0.25, 0.045), (400.0, 0.5, 0.01), (6.0, 0.8, 0.2)):
            a, b = df.coefficients(level, rho, phi)
            self.assertGreater(a, 0)
            self.assertGreater(b, 0)
            for x in (0, 1, 4, 17, 60):
                direct = nb_log_pmf(x, rho * level, phi) - nb_log_pmf(x, level, phi)
                self.assertAlmostEqual(b - a * x, direct, places=9, msg=(level, rho, phi, x))

    def test_oracle_delay_is_ln_arl_over_kl(self):
        # Poisson: 50 a day dropping 30% is about 3 days at this ARL (the example).
        kl = 35 * math.log(35 / 50) - 35 + 50
        self.assertAlmostEqual(df.oracle_hours(50, 35), math.log(df.ARL) / kl * 24, places=9)
        self.assertAlmostEqual(df.oracle_hours(50, 35) / 24, 3.0, delta=0.5)
        # Negative binomial tends to Poisson as phi goes to 0, and more noise is slower.
        self.assertAlmostEqual(df.oracle_hours(50, 35, 1e-9), df.oracle_hours(50, 35), places=3)
        self.assertGreater(df.oracle_hours(50, 35, 0.045), 1.5 * df.oracle_hours(50, 35))
        # Its negative-binomial KL is B - A x of the likelihood ratio at the mean after the drop.
        a, b = df.coefficients(50, 35 / 50, 0.045)
        self.assertAlmostEqual(df.oracle_hours(50, 35, 0.045), math.log(df.ARL) / (b - a * 35) * 24, places=9)
        # A flow that stops: KL is l0 (Poisson), r ln((r + l0) / r) (negative binomial).
        self.assertAlmostEqual(df.oracle_hours(50, 0), math.log(df.ARL) / 50 * 24, places=9)
        r = 1 / 0.045
        self.assertAlmostEqual(df.oracle_hours(50, 0, 0.045), math.log(df.ARL) / (r * math.log((r + 50) / r)) * 24,
                               places=9)
        # No drop, no oracle.
        self.assertIsNone(df.oracle_hours(50, 50))

    def test_cusum_restarts_after_each_crossing(self):
        path = [(h, g) for h, g in enumerate([1, 1, 1, -5, 2, 2, -0.5, 1])]
        self.assertEqual(df.crossing_hours(path, 3), [2, 5])
        self.assertEqual(df.crossing_hours(path, 10), [])

    def test_calibrated_threshold_holds_the_budget(self):
        rng = random.Random(3)
        paths = [[(h, rng.gauss(-0.3, 1.0)) for h in range(df.ARL)] for _ in range(20)]
        hours = sum(len(p) for p in paths)
        threshold = df.calibrated_threshold(paths, hours)
        crossings = sum(len(df.crossing_hours(p, threshold)) for p in paths)
        self.assertLessEqual(crossings, hours / df.ARL)
        below = sum(len(df.crossing_hours(p, threshold - 0.25)) for p in paths)
        self.assertGreater(below, hours / df.ARL)  # the lowest such threshold, not any

    def test_budget_threshold_is_the_lowest_within_the_budget(self):
        rng = random.Random(5)
        paths = [[(h, rng.gauss(-0.4, 1.2)) for h in range(3000)] for _ in range(10)]
        for budget in (0, 3, 12):
            threshold = df.budget_threshold(paths, budget)
            self.assertLessEqual(sum(len(df.crossing_hours(p, threshold)) for p in paths), budget)
            self.assertGreater(sum(len(df.crossing_hours(p, threshold - 0.25)) for p in paths), budget)
        # Silent paths need no more than the lowest threshold tried.
        self.assertEqual(df.budget_threshold([[(0, -1.0), (1, 0.5)]], 0), 1.0)

    def test_only_shortages_take_a_series_out_of_the_count(self):
        holiday = {"group": "*", "port": "", "shortage": False}
        laredo_chips = {"group": "semiconductors", "port": "2304", "shortage": True}
        run = {"truth": [holiday, laredo_chips]}
        self.assertTrue(df.touched(("ppe", "CA-US-0901"), run))
        self.assertFalse(df.touched(("ppe", "CA-US-0901"), run, shortages_only=True))
        self.assertTrue(df.touched(("semiconductors", "MX-US-2304"), run, shortages_only=True))
        self.assertTrue(df.touched(("semiconductors", "*"), run, shortages_only=True))
        self.assertFalse(df.touched(("semiconductors", "MX-US-2402"), run, shortages_only=True))


if __name__ == "__main__":
    unittest.main()
