// LevelRiseDetector: the statistic shared by the unit-value detector
// (operators/unit_value_detector.h) and the dwell-time detector
// (operators/dwell_detector.h): is the typical level of a log-scale measure
// in a series' recent window clearly above its level just before?
//
// Both measures reach it as keyed log sums in VolumeDelta (PriceSum: per key
// a count, the sum and the sum of squares of the log of each sample): unit
// prices keyed by goods code, border dwell keyed by corridor. A profile
// (LevelRiseProfile) says which sums to read, the alert kind, the measure
// named in the evidence, the config prefix (also the state namespace) and
// the names of the three options whose meaning depends on the measure.
//
// Statistic. At each bucket close T, over the rolling window W = [T -
// window, T) and the reference span R = [T - baseline_window, T - window),
// over the keys present in both: each window sample's log minus its key's
// mean log in the reference, averaged over the n matched samples: d. The
// index is exp(d) (1 when every key is at its reference level, 1.8 when all
// are 80% higher, whatever the mix of keys). Its standard error
//   se = sqrt(s^2 (1 / n + sum_c n_c^2 / (n^2 r_c)) + relative_floor^2),
// n_c and r_c being key c's samples in W and R and s^2 the scatter of logs
// within a key, pooled over R's keys and shrunk towards sample_sd^2 as if 10
// samples had shown it; z = d / se; an upper one-sided CUSUM scaled for
// overlapping windows as in VolumeDropDetector:
//   S = max(0, S + (z - cusum_slack) x bucket / window).
// Firing when S >= cusum_threshold and index >= min_ratio; recovered when
// z <= recover_z (S is then reset). Severity while firing: CRITICAL when
// index >= 2 or S >= 2 x cusum_threshold, WARNING otherwise; once CRITICAL,
// an episode stays so until it stops firing.
//
// The reference in use is a copy of R taken once a window and used from the
// next, held while an episode lasts (up to max_held, then the live R takes
// over: a lasting level is the new normal); unit_value_detector.h says why.
//
// Not evaluated (no Signal): the "unclassified" group; a series with less
// than baseline_window of history; a window or reference with fewer matched
// samples than min_samples / min_reference_samples (S stays as it was).
//
// Persistence, namespace profile.name: a layout key and one key per series
// (group '\0' corridor code, internal::UnitValueState), written when it
// changes.
//
// Thread-safety: not thread-safe; one detector per task.
// Failure: Observe never fails. Restore returns kFailedPrecondition for
// state built with another window or baseline_window, or naming a group the
// catalog lacks, kDataLoss for state it cannot read; on any error it leaves
// the detector empty.
#ifndef SHORTFALL_OPERATORS_LEVEL_RISE_DETECTOR_H_
#define SHORTFALL_OPERATORS_LEVEL_RISE_DETECTOR_H_

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "operators/alert_lifecycle.h"
#include "operators/corridor.h"
#include "operators/state_store.h"
#include "operators/volume.h"
#include "operators/volume_aggregator.h"

namespace shortfall::operators {

// The options of both detectors; each sets its own defaults (see
// UnitValueOptions, DwellOptions) and names the measure-specific fields.
struct LevelRiseOptions {
  bool enabled = true;
  // The rolling window judged; one of WindowOptions::rolling.
  DurationMs window = 24 * kMsPerHour;
  // The reference is the span of this rolling window before `window`; one of
  // WindowOptions::rolling, longer than `window`.
  DurationMs baseline_window = 7 * kMsPerDay;
  double min_samples = 10;            // matched samples needed in the window (>= 1)
  double min_reference_samples = 20;  // ... and in the reference span (>= 1)
  double sample_sd = 0.5;             // assumed scatter of one sample's log about its key's mean (> 0)
  double relative_floor = 0.03;       // least standard error of the mean log relative (>= 0)
  double cusum_slack = 1.0;           // in z units (>= 0)
  double cusum_threshold = 5.0;       // in window-lengths of z beyond the slack (> 0)
  double recover_z = 1.0;             // z at or below which the series is back to normal
  double min_ratio = 1.25;            // least index that fires (>= 1)
  DurationMs max_held = 21 * kMsPerDay;  // how long a held reference is kept (>= window)
  friend bool operator==(const LevelRiseOptions&, const LevelRiseOptions&) = default;
};

struct LevelRiseProfile {
  v1::AlertKind kind;
  // Config prefix under detection., and the state namespace ("unit_value").
  std::string_view name;
  // Evidence measure ("unit_value_index", "dwell_seconds").
  std::string_view measure;
  // Config names of min_samples, min_reference_samples and sample_sd.
  std::string_view min_samples_name;
  std::string_view min_reference_samples_name;
  std::string_view sample_sd_name;
  // The sums read from a window.
  const std::vector<PriceSum>& (*sums)(const VolumeDelta&);
  // Evidence: false, observed = the index and expected = 1; true, observed =
  // exp(mean log of the window) - level_offset and expected = the same of
  // the reference over the window's mix of keys (a level in the measure's
  // units, e.g. seconds).
  bool level_evidence = false;
  double level_offset = 0;
};

// kInvalidArgument naming the field as configured ("unit_value.min_lines: 0
// (want >= 1)").
Status ValidateLevelRise(const LevelRiseOptions& options, const WindowOptions& windows,
                         const LevelRiseProfile& profile);

class LevelRiseDetector {
 public:
  // `group_names[id]` names group id, as for the VolumeAggregator.
  // REQUIRES: ValidateLevelRise(options, windows, profile).ok() (aborts
  // otherwise). `corridors` must outlive this; Restore interns the codes it
  // reads. `profile` is copied; its strings must be static.
  LevelRiseDetector(const LevelRiseProfile& profile, const LevelRiseOptions& options, const WindowOptions& windows,
                    std::vector<std::string> group_names, CorridorTable* corridors);
  LevelRiseDetector(const LevelRiseDetector&) = delete;
  LevelRiseDetector& operator=(const LevelRiseDetector&) = delete;

  // Evaluates the report's windows and appends at most one Signal (kind
  // profile.kind) to *out. REQUIRES: reports of one series come in order of
  // bucket_end; a report not newer than its series' last one is ignored.
  void Observe(const WindowReport& report, std::vector<Signal>* out);

  void Flush(StateWriteBatch* batch);
  Status Restore(const StateView& state);

  // The index at the series' latest evaluated report; nullopt while it warms
  // up, when thin, or for a series never seen.
  std::optional<double> Index(SeriesKey series) const;

  size_t series_count() const { return series_.size(); }
  const LevelRiseOptions& options() const { return options_; }

 private:
  struct Series {
    SeriesKey key{};
    bool enabled = true;
    TimestampMs first_end = kMinTimestamp;  // first report (for the warm-up)
    TimestampMs last_end = kMinTimestamp;   // not persisted: reports only move forward
    double cusum = 0;
    bool critical = false;
    bool in_episode = false;
    TimestampMs recovered_since = kMinTimestamp;
    // References: the live one taken once a window, and the one before it,
    // in use; an episode holds the one in use from held_since.
    std::vector<PriceSum> taken;
    TimestampMs taken_at = kMinTimestamp;
    std::vector<PriceSum> in_use;
    TimestampMs in_use_at = kMinTimestamp;
    TimestampMs held_since = kMinTimestamp;
    std::optional<double> index;
    bool dirty = false;  // persisted state changed since the last Flush
  };
  static uint64_t Pack(SeriesKey k) { return (uint64_t{k.group} << 32) | k.corridor; }
  Series& SeriesFor(SeriesKey key);
  void Evaluate(const WindowReport& report, Series* s, std::vector<Signal>* out);
  std::string Layout() const;  // "window=24h baseline_window=7d"
  std::string Key(const Series& s) const;
  Status RestoreFrom(const StateView& state);

  LevelRiseProfile profile_;
  LevelRiseOptions options_;
  DurationMs bucket_;
  size_t window_index_;    // of options_.window in WindowOptions::rolling
  size_t baseline_index_;  // of options_.baseline_window
  std::vector<std::string> group_names_;
  CorridorTable* corridors_;
  std::unordered_map<uint64_t, Series> series_;
  bool layout_persisted_ = false;
  std::vector<PriceSum> reference_;  // scratch: the live reference span
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_LEVEL_RISE_DETECTOR_H_
