// DwellDetector: a LevelRiseDetector (operators/level_rise_detector.h) over
// border dwell: it raises a Signal (ALERT_KIND_DWELL_TIME_RISE) when
// shipments of a series — a (group, corridor) pair or a group's total — take
// clearly longer from their arrival at the border to their customs release
// than just before: congestion, an enforcement wave, a slowdown at a port,
// which delay goods before any volume falls.
//
//   DwellDetector detector(options, windows, group_names, &corridors);
//   for (const WindowReport& r : reports) detector.Observe(r, &signals);
//
// What it measures. The dwell samples DwellJoin adds to the windows
// (VolumeDelta::dwell: per corridor, ln(dwell seconds + 60)); a sample
// counts in the bucket its release (or its arrival, if later) falls in. The
// statistic is the unit-value one, keyed by corridor instead of goods code:
// each window shipment's log dwell against the mean log dwell of its
// corridor in the reference span, so a group's total compares each port
// with its own past whatever the mix of ports. Evidence: measure
// "dwell_seconds" (alerts print it in hours), observed the window's
// geometric-mean dwell (exp of the mean of ln(seconds + 60), less 60 s),
// expected the reference's over the same corridors; the index observed /
// expected of the text is exp(d) of the header of level_rise_detector.h.
// A log scale because dwell is skewed: most shipments clear in minutes, a
// few inspected ones take hours to days; the mean of logs follows the
// typical shipment, and a rise in the share of long stays moves it too.
//
// Config names (detection.dwell.*): min_releases, min_reference_releases
// (min_samples, min_reference_samples: shipments released), dwell_sd
// (sample_sd), and the join's time_bound (DwellJoinOptions).
//
// Tuning (defaults below; 1 h buckets, 24 h window, 7 d reference).
// Measured on the scenario generator's data (`shortfall gen`, every named
// scenario, seeds 1 to 3 and each scenario's own, replayed with
// min_ratio 1 and the threshold raised step by step until no series but
// the ones a scenario slows down fired): see DwellOptions::cusum_threshold.
// Dwell in the generator has no weekly or daily pattern of its own (a
// release follows its arrival by minutes, or hours when inspected, at any
// hour), so the reference of the six days before needs no seasonal
// matching; real ports with night or weekend closures would show one.
//
// Persistence, namespace "dwell" (as LevelRiseDetector).
// Thread-safety: not thread-safe; one detector per task.
#ifndef SHORTFALL_OPERATORS_DWELL_DETECTOR_H_
#define SHORTFALL_OPERATORS_DWELL_DETECTOR_H_

#include <string>
#include <vector>

#include "base/status.h"
#include "operators/level_rise_detector.h"

namespace shortfall::operators {

struct DwellOptions : LevelRiseOptions {
  // Defaults where they differ from LevelRiseOptions': 10 shipments released
  // in the window and 20 in the reference; dwell_sd 1.0 (log dwell scatters
  // more than log prices: minutes for most, hours for the inspected few);
  // relative_floor 0.05; min_ratio 1.5 (the typical stay half as long again);
  // max_held 14 d (a port slow for two weeks is its new normal); and the
  // threshold measured (see the header).
  DwellOptions();
  // kInvalidArgument naming the field ("dwell.min_releases: 0 (want >= 1)").
  Status Validate(const WindowOptions& windows) const;
};

// The dwell profile: ALERT_KIND_DWELL_TIME_RISE over VolumeDelta::dwell.
const LevelRiseProfile& DwellProfile();

class DwellDetector : public LevelRiseDetector {
 public:
  // REQUIRES: options.Validate(windows).ok() (aborts otherwise).
  DwellDetector(const DwellOptions& options, const WindowOptions& windows, std::vector<std::string> group_names,
                CorridorTable* corridors)
      : LevelRiseDetector(DwellProfile(), options, windows, std::move(group_names), corridors) {}
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_DWELL_DETECTOR_H_
