// UnitValueDetector: a LevelRiseDetector (operators/level_rise_detector.h,
// the statistic in general) over unit prices. It raises a Signal when the goods of a series — a (group,
// corridor) pair or a group's all-corridors total — are declared at clearly
// higher prices per unit than just before: scarcity pricing, which often
// shows before the volumes fall. It reads the WindowReports of a
// VolumeAggregator (the same reports as the other detectors) and writes
// Signals for an AlertLifecycle.
//
//   UnitValueDetector detector(options, windows, group_names, &corridors);
//   for (const WindowReport& r : reports) detector.Observe(r, &signals);
//   detector.Flush(&batch);  store.Commit(batch, checkpoint);
//
// What it measures. Like with like: a group's value per unit mixes goods
// priced cents apiece (diodes) with goods priced hundreds of dollars
// (battery modules), and on the scenario generator's data the batteries'
// value per piece swings between 5.6 and 66 USD from one day to the next
// with no price change at all, as the mix of goods moves. So the detector
// prices each goods code (HS-6 code, HS revision, canonical unit: see
// PriceSum in operators/volume.h) on its own. At each bucket close T, over
// the rolling window W = [T - window, T) and the reference span
// R = [T - baseline_window, T - window) (the two rolling windows' prices
// subtracted, so no extra state), over the goods codes present in both,
// each window line's unit price is set against the mean of its code's
// prices in the reference:
//   index = exp(mean over the window's lines of ln(price) - mean ln(price)
//           of the line's code in the reference)
// (evidence measure "unit_value_index", expected 1). It is 1 when every
// code sells at its reference prices and 1.8 when all cost 80% more,
// whatever the mix. Codes without a reference (new goods) are left out.
//
// Statistic. Each window line's log price minus its code's mean log price
// in R, averaged over the n matched lines: d = ln(index), the index being
// the geometric mean of the lines' price relatives (every line counts once:
// one huge consignment does not outweigh the rest). Its standard error is
//   se = sqrt(s^2 (1 / n + sum_c n_c^2 / (n^2 r_c)) + relative_floor^2),
// where n_c and r_c are code c's lines in W and R and s^2 is the scatter of
// log prices within a code, pooled over R's codes and shrunk towards
// price_sd^2 as if 10 lines had shown it; the floor bounds the precision a
// busy series can claim (prices also drift). z = d / se, and an upper
// one-sided CUSUM scaled for overlapping windows as in VolumeDropDetector:
//   S = max(0, S + (z - cusum_slack) x bucket / window).
// The series is firing when S >= cusum_threshold and index >= min_ratio
// (a busy corridor can be significantly but harmlessly a few percent
// dearer); recovered when z <= recover_z (S is then reset); in between
// otherwise. Severity while firing: CRITICAL when index >= 2 or S >= 2 x
// cusum_threshold, WARNING otherwise; once CRITICAL, an episode stays so
// until it stops firing.
//
// The reference. R ends a window before T, so one window into a price rise
// R starts to hold the rise itself, and a rise that lasts would become its
// own reference and hide itself. So the reference in use is not the live R
// but a copy of it taken a window or two before: a copy is taken once a
// window and used from the next. A rise has had at least a window in W
// before it can reach the reference in use. (Taking the copy when S leaves
// 0 instead biased it: S rises when the reference happens to be low, and a
// low reference held kept S rising on clean data.) When an alert opens, the
// reference in use is held until the episode is over (recovered for a whole
// window) and S is 0; a rise that lasts longer than max_held is accepted as
// the new level: the live R takes over, the index falls back to about 1 and
// the alert resolves.
//
// Tuning (defaults; 1 h buckets, 24 h window, 7 d reference). Measured on
// the scenario generator's data (`shortfall gen`, 11 named scenarios, seeds
// 1 to 3 and each scenario's own, replayed with every series' S logged):
//   - clean data (every series but price_spike's batteries, 44 runs): S
//     peaked at 4.4, and at 3.0 or less in 43 of them; hence threshold 5;
//   - price_spike (batteries x1.8 on every corridor): the group total fires
//     35 to 47 h in over five seeds; the busiest corridors (10 to 30 battery
//     lines a day) two to five days in;
//   - the group's value per piece swings 5.6 to 66 USD from day to day on
//     price_spike before the spike (the mix of modules and cells), the
//     geometric index per code about 8%.
// What is not evaluated (and emits no Signal): the "unclassified" group;
// a series with less than baseline_window of history (warm-up); a window or
// reference with fewer priced lines than min_lines / min_reference_lines
// among the matched codes (S stays as it was). Every other report yields
// exactly one Signal.
//
// Config names: min_lines and min_reference_lines (LevelRiseOptions::
// min_samples, min_reference_samples: priced goods lines) and price_sd
// (sample_sd).
//
// Persistence, namespace "unit_value": a layout key, and one key per series
// (group '\0' corridor code) holding its detector state and its two
// references, written when that state changes (a series at rest, S = 0,
// writes once a window, when it takes a reference).
//
// Cost: O(codes in the windows) per report; a reference copied once a
// window.
//
// Thread-safety: not thread-safe; one detector per task.
// Failure: Observe never fails. Restore returns kFailedPrecondition for state
// built with another window or baseline_window (naming both) or naming a
// group the catalog lacks, kDataLoss for state it cannot read; on any error
// it leaves the detector empty.
#ifndef SHORTFALL_OPERATORS_UNIT_VALUE_DETECTOR_H_
#define SHORTFALL_OPERATORS_UNIT_VALUE_DETECTOR_H_

#include <string>
#include <vector>

#include "base/status.h"
#include "operators/level_rise_detector.h"

namespace shortfall::operators {

// Defaults (LevelRiseOptions'): window 24 h, baseline_window 7 d (the six
// days before the window), min_lines 10 (fewer give an index that one odd
// consignment moves), min_reference_lines 20, price_sd 0.5, relative_floor
// 0.03 (about 3%), cusum_slack 1, cusum_threshold 5 (see Tuning), recover_z
// 1, min_ratio 1.25 (prices up a quarter), max_held 21 d (prices that stay
// up three weeks are the new normal).
struct UnitValueOptions : LevelRiseOptions {
  // kInvalidArgument naming the field ("unit_value.window: 12h is not one of
  // the rolling windows (24h, 7d)").
  Status Validate(const WindowOptions& windows) const;
};

// The unit-value profile: ALERT_KIND_UNIT_VALUE_SPIKE over VolumeDelta::prices.
const LevelRiseProfile& UnitValueProfile();

class UnitValueDetector : public LevelRiseDetector {
 public:
  // REQUIRES: options.Validate(windows).ok() (aborts otherwise).
  UnitValueDetector(const UnitValueOptions& options, const WindowOptions& windows,
                    std::vector<std::string> group_names, CorridorTable* corridors)
      : LevelRiseDetector(UnitValueProfile(), options, windows, std::move(group_names), corridors) {}
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_UNIT_VALUE_DETECTOR_H_
