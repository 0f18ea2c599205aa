// VolumeDropDetector: raises a Signal when the flow of a series — a
// (group, corridor) pair or a group's all-corridors total — stays well below
// what the same hours of past weeks saw. It reads the WindowReports of a
// VolumeAggregator and writes Signals for an AlertLifecycle.
//
//   VolumeDropDetector detector(options, overrides, windows, group_names, &corridors);
//   for (const WindowReport& r : reports) detector.Observe(r, &signals);
//   for (const Signal& s : signals) lifecycle.Apply(s, &alerts);
//   detector.Flush(&batch);  store.Commit(batch, checkpoint);
//
// What it measures. At each bucket close T, the series' rolling window of
// length `window` ending at T (default 24 h) in three measures: shipments,
// gross weight (kg) and declared value (USD), named in evidence
// "shipments", "gross_weight_kg", "declared_value_usd".
//
// Baseline (seasonal, weekly, robust). For every series the detector keeps
// the measures at each bucket close of the last `baseline_weeks` weeks, a
// ring of (7 d / bucket) x baseline_weeks slots; a slot remembers its bucket
// end, so one left from an older week is recognised as stale. Expected at T
// is the median of the values at T - k x 7 d, k = 1..baseline_weeks, that
// are present: the same hours of the same weekdays, so weekends and nights
// compare with weekends and nights, and one odd week (a holiday, an earlier
// drop) moves the median little. Scale = max(1.4826 x MAD of those values,
// relative_floor x expected), and for shipments at least
// sqrt(expected + (relative_floor x expected)^2): Poisson noise plus day-to-day
// variation of relative_floor (counts of trucks are overdispersed);
// z = (observed - expected) / scale. Only the measures in `measures` are
// evaluated (default: shipments).
//
// Test (sustained shift). One-sided lower CUSUM per measure,
//   S = max(0, S + (-z - cusum_slack) x bucket / window).
// Consecutive 24 h windows overlap by 23 h, so each hour's z repeats 95% of
// the last one's evidence; the bucket / window factor makes one window's
// worth of evidence count about once. S is in "window-lengths of z beyond
// the slack". The series is
//   - firing    when S >= cusum_threshold on some measure; the evidence names
//               the measure with the largest S;
//   - recovered when z >= recover_z on every measure evaluated; S is then
//               reset to 0 (the drop is over; without the reset S would
//               drain at only `slack` per window, 8 days from S = 4, and the
//               alert would neither resolve nor stay quiet after a cooldown);
//   - otherwise in between.
// Severity while firing: CRITICAL when the strongest measure's observed is
// at most half its expected, or S >= 2 x cusum_threshold; else WARNING. Once
// CRITICAL, a firing episode stays CRITICAL until it stops firing, so a
// ratio wobbling around one half does not flood UPDATED records.
//
// Tuning (measured with slack 0.5, relative_floor 0.1 and threshold 4; the
// default threshold is 5, which these numbers led to) on
// the tests' series (Poisson arrivals, 1,000 shipments per weekday, half at
// weekends, nights low; 1 h buckets, 24 h window), where the scale is the
// 10% floor, so z = -1 means "10% below the same hours of past weeks":
//   - a sustained 60% drop: z falls to about -6 as the window fills with the
//     drop (24 h), S is about 2.6 then and grows about 0.25 per hour; the
//     series fires 30 h after the drop starts (29 to 36 h over other seeds
//     and 300 to 5,000 shipments a day), CRITICAL from the start (observed
//     is 0.36 of expected by then). A flow that stops fires after 25 h;
//   - a one-day 40% dip, then back to normal: z reaches -4, S peaks at 3.0
//     42 h after the dip starts and the series never fires. That is 75% of
//     the threshold: over 24 seeds and volumes the peak ranged 2.0 to 4.1,
//     and one noisy 300-a-day corridor did fire. Hence the default
//     threshold 5: it keeps every such dip quiet and fires on the 60% drop
//     after 34 to 41 h;
//   - a surge (x3) never moves S: the test is one-sided;
//   - two quiet weeks of evaluation peak at S = 0.0 (0.0 to 1.0 over seeds).
// After the flow returns, the alert resolves 44 to 66 h later (z back above
// recover_z once the window is about 90% normal, then resolve_after 24 h);
// noise that dips one measure below recover_z restarts that wait.
// A higher threshold or slack ignores longer or deeper dips and fires later
// on a real drop; relative_floor bounds how small a change can look large on
// a very regular series. Because S is reset on recovery, it accumulates only
// while z stays below recover_z: a shallow drop whose z hovers near
// recover_z (10 to 15% at the floor) keeps resetting it and will rarely
// fire (reasoned, not measured).
//
// Baseline freeze. A close inside a drop episode (from the first firing
// signal until the series has been recovered for a whole `window`, so one
// noisy hour does not end it) is marked anomalous, and the
// baseline skips anomalous weeks while at least min_history_weeks clean
// ones remain: otherwise a drop lasting two of four baseline weeks moves
// the median and inflates the MAD until the drop reads as normal and the
// alert resolves in the middle of the shortage. Once fewer clean weeks
// remain, every week counts again: a drop that lasts longer than
// baseline_weeks - min_history_weeks + 1 weeks (three, by default) becomes
// the new normal.
//
// What is not evaluated (and emits no Signal at all, so an open alert is
// neither resolved nor updated from it): a series with fewer than
// `min_history_weeks` lagged values (warm-up: at least two weeks by default),
// and a thin series whose expected shipments are below
// `min_expected_shipments` (noisy low-volume corridors must not alert). A
// measure whose expected value is 0 (e.g. no declared values in the data) is
// left out. Every other report yields exactly one Signal.
//
// Cost: O(baseline_weeks) per report and no allocation once the series'
// ring exists, apart from the Signal written out (its strings and evidence).
// Memory: 32 bytes per slot, 672 slots (21 KB) per series with the defaults.
//
// Thread-safety: not thread-safe; one detector per task.
// Failure: Observe never fails. Restore returns kFailedPrecondition for
// state built with another bucket, window or baseline_weeks (naming both),
// or naming a group the catalog lacks; kDataLoss for state it cannot read;
// on any error it leaves the detector empty.
#ifndef SHORTFALL_OPERATORS_VOLUME_DROP_DETECTOR_H_
#define SHORTFALL_OPERATORS_VOLUME_DROP_DETECTOR_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "operators/alert_lifecycle.h"
#include "operators/corridor.h"
#include "operators/seasonal_series.h"
#include "operators/state_store.h"
#include "operators/volume_aggregator.h"

namespace shortfall::internal {
class VolumeDropSlotState;
}  // namespace shortfall::internal

namespace shortfall::operators {

struct VolumeDropOptions {
  // Whether series are watched at all. Default on; an override can switch
  // single groups or corridors off (or on, when this is off).
  bool enabled = true;
  // The rolling window measured; must be one of WindowOptions::rolling.
  // Default 24 h: a longer window is steadier and sees a drop later.
  DurationMs window = 24 * kMsPerHour;
  // Weeks of history the baseline is the median of (1 to 12). Default 4:
  // more weeks resist a past anomaly better and cost memory (ring slots) and
  // adapt more slowly to a new normal.
  int baseline_weeks = 4;
  // Lagged weeks needed before a series is evaluated (1 to baseline_weeks).
  // Default 2: a baseline of one week is one draw of noise.
  int min_history_weeks = 2;
  // Expected shipments per window below which a series is not evaluated.
  // Default 5: Poisson noise on fewer shipments swamps any drop.
  double min_expected_shipments = 5;
  // Measures that can fire: any of "shipments", "gross_weight_kg",
  // "declared_value_usd" (at least one). Default shipments only: weight and
  // value are dominated by a few heavy or dear shipments, so one truck more
  // or less swings them by tens of percent and they raise false alarms on
  // all but the busiest corridors; enable them where flows are large.
  std::vector<std::string> measures = {"shipments"};
  // Floor of the scale as a fraction of expected (> 0). Default 0.1: a drop
  // counts in z only in steps of 10% of expected however regular the series.
  double relative_floor = 0.1;
  // CUSUM slack in z units (>= 0). Default 0.5: a z of -0.5 adds nothing.
  double cusum_slack = 0.5;
  // CUSUM threshold (> 0). Default 5.0; see the tuning notes above (4.0
  // fires about 5 h sooner on a real drop and lets some one-day dips through).
  double cusum_threshold = 5.0;
  // z at or above which a measure is back in its normal band. Default -1.0.
  double recover_z = -1.0;

  // kInvalidArgument naming the field, e.g. "volume_drop.window: 12h is not
  // one of the rolling windows (24h, 7d)" (or the error of windows.Validate()).
  Status Validate(const WindowOptions& windows) const;
};

// Per group and per corridor configuration: the first override whose group
// and corridor match ("*" matches any; corridor "*" also matches the
// all-corridors series) replaces the fields it sets. The "unclassified"
// group (goods outside the catalog) is not watched unless an override names
// it ("unclassified/*: enabled=true"); group "*" does not match it.
struct VolumeDropOverride {
  std::string group = "*";
  std::string corridor = "*";
  std::optional<double> cusum_threshold;
  std::optional<double> cusum_slack;
  std::optional<double> min_expected_shipments;
  std::optional<bool> enabled;
};

// What the detector made of a series' latest report, for the shipments
// measure: the numbers a plot needs to show why a series fired or did not
// (`shortfall replay --report`). The normal band of the shipments measure
// is [expected + recover_z x scale, +inf): the test is one-sided, and a
// close at or above its lower edge counts as recovered.
struct VolumeDropReading {
  TimestampMs bucket_end = kMinTimestamp;  // of the report read
  // The baseline median; nullopt while the series warms up.
  std::optional<double> expected;
  // Whether shipments were tested at that close: false while warming up, on
  // a thin series (expected below min_expected_shipments), when expected is
  // 0, or when "shipments" is not among the measures.
  bool evaluated = false;
  double scale = 0;      // z = (observed - expected) / scale; 0 unless evaluated
  double cusum = 0;      // the shipments CUSUM S after that close
  double threshold = 0;  // cusum_threshold after the series' override
};

// kInvalidArgument naming the override and field, e.g.
// "volume_drop.overrides[1].group: 'chip' is not a commodity group".
// `group_names` as given to the detector.
Status ValidateVolumeDropOverrides(const std::vector<VolumeDropOverride>& overrides,
                                   const std::vector<std::string>& group_names);

class VolumeDropDetector {
 public:
  // `group_names[id]` names group id, as for the VolumeAggregator.
  // REQUIRES: options.Validate(windows).ok() and
  // ValidateVolumeDropOverrides(overrides, group_names).ok() (aborts
  // otherwise). `corridors` must outlive this; Restore interns the corridor
  // codes it reads into it.
  VolumeDropDetector(VolumeDropOptions options, std::vector<VolumeDropOverride> overrides,
                     const WindowOptions& windows, std::vector<std::string> group_names,
                     CorridorTable* corridors);
  // Not copyable or movable: the series table points at group_names_.
  VolumeDropDetector(const VolumeDropDetector&) = delete;
  VolumeDropDetector& operator=(const VolumeDropDetector&) = delete;

  // Records the report's window in its series' baseline and appends at most
  // one Signal (kind ALERT_KIND_VOLUME_DROP) to *out. REQUIRES: reports of
  // one series come in order of bucket_end (as VolumeAggregator reports
  // them); reports of different series may interleave in any order. A
  // report not newer than its series' last one is ignored.
  void Observe(const WindowReport& report, std::vector<Signal>* out);

  // Persistence, namespace "volume_drop": one key per series and ring slot
  // (group '\0' corridor code '\0' slot), overwritten in place a ring later.
  // Flush writes the slots closed since the last Flush (one per series per
  // close), the newest carrying the CUSUM state, never the whole ring, and
  // deletes the keys of series whose every slot has gone stale; if the
  // Commit of that batch fails, Restore before going on. Restore refuses
  // state of another layout (kFailedPrecondition naming both).
  void Flush(StateWriteBatch* batch);
  Status Restore(const StateView& state);

  // The expected shipments per window at the series' latest report, for
  // metrics; nullopt while it warms up, or for a series never seen.
  std::optional<double> ExpectedShipments(SeriesKey series) const;

  // The reading of the series' latest report; nullopt for a series never
  // seen or not watched (disabled by the options or an override). Cheap
  // (a lookup), for callers that want it after every report.
  std::optional<VolumeDropReading> Reading(SeriesKey series) const;

  size_t series_count() const { return table_.size(); }
  const VolumeDropOptions& options() const { return options_; }

 private:
  static constexpr size_t kMeasures = 3;  // shipments, gross weight, declared value
  // The measures' fixed-point amounts at one bucket close (see volume.h).
  struct Slot {
    TimestampMs end = kMinTimestamp;  // kMinTimestamp: never written
    uint64_t shipments = 0;
    int64_t gross_weight = 0;
    int64_t declared_value = 0;
    bool anomalous = false;  // closed inside a drop episode
  };
  // Options after the series' override.
  struct Tuning {
    bool enabled = true;
    double cusum_threshold = 0;
    double cusum_slack = 0;
    double min_expected_shipments = 0;
  };
  struct Series {
    SeriesKey key;
    Tuning tuning;
    std::vector<Slot> ring;  // one slot per bucket close of baseline_weeks weeks, once it has a report
    std::array<double, kMeasures> cusum{};
    bool critical = false;                // this firing episode has been critical
    bool in_episode = false;              // fired, and not recovered for a window since
    TimestampMs recovered_since = kMinTimestamp;  // current run of recovered closes; kMinTimestamp: none
    std::optional<double> expected_shipments;
    double shipments_scale = 0;  // at the latest report; 0 when shipments were not tested
    TimestampMs last_end = kMinTimestamp;     // newest report
    TimestampMs flushed_end = kMinTimestamp;  // newest report written by Flush

    // For SeasonalSeriesTable (persistence).
    bool watched() const { return tuning.enabled; }
    void SaveSlot(const Slot& slot, bool newest, internal::VolumeDropSlotState* out) const;
    void LoadSlot(size_t index, const internal::VolumeDropSlotState& in);
    bool LoadState(const internal::VolumeDropSlotState& in);
    // Forgets the detector state (the slots stay).
    void ResetState();
  };

  Tuning TuningFor(SeriesKey key) const;
  void Evaluate(const WindowReport& report, Series* s, std::vector<Signal>* out);

  VolumeDropOptions options_;
  std::vector<VolumeDropOverride> overrides_;
  size_t window_index_;  // of options_.window in WindowOptions::rolling
  std::array<bool, kMeasures> measure_enabled_{};  // per options_.measures
  std::vector<std::string> group_names_;
  CorridorTable* corridors_;
  SeasonalSeriesTable<Series, internal::VolumeDropSlotState> table_;  // after group_names_, corridors_
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_VOLUME_DROP_DETECTOR_H_
