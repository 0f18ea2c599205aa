// ShortageDetection: every detector of a stage-two task and the alert
// lifecycle they feed, behind one call per batch of closed windows. Replay
// (VolumePipeline) and the Kafka runtime both hold one, so a detector added
// here runs in both.
//
//   ShortageDetection detection(options, windows, group_names, &corridors);
//   aggregator.AdvanceTo(watermark, &reports);
//   detection.Detect(reports, &alerts);        // alert records to publish
//   detection.Flush(&batch);  store.Commit(batch, checkpoint);
//
// Detectors so far: VolumeDropDetector (volume_drop), CustomsHoldDetector
// (customs_hold), UnitValueDetector (unit_value) and DwellDetector (dwell),
// over the same reports. Their signals go
// through one AlertLifecycle, which owns alert ids, revisions and states.
// OriginConcentrationDetector (origin_concentration) reads each batch of
// reports whole: the shares of a group's origins need every corridor
// series of the group at one bucket close.
//
// Top contributors. A volume drop of a group's total names the corridors
// whose shortfall against their own baselines makes up most of it (up to
// three, with their shares of the summed shortfall): every series of a group
// is in the task (the runtime keys the repartition topic by group), and the
// reports of one bucket close come together.
//
// Thread-safety: not thread-safe; one per task.
// Failure: Detect never fails; Restore passes on the parts' errors and then
// holds nothing.
#ifndef SHORTFALL_OPERATORS_SHORTAGE_DETECTION_H_
#define SHORTFALL_OPERATORS_SHORTAGE_DETECTION_H_

#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "operators/alert_lifecycle.h"
#include "operators/corridor.h"
#include "operators/customs_hold_detector.h"
#include "operators/origin_concentration_detector.h"
#include "operators/dwell_detector.h"
#include "operators/dwell_join.h"
#include "operators/state_store.h"
#include "operators/unit_value_detector.h"
#include "operators/volume_aggregator.h"
#include "operators/volume_drop_detector.h"
#include "shortfall/v1/shortage_alert.pb.h"

namespace shortfall::operators {

// The detectors and the alert lifecycle (config keys detection.*).
struct DetectionOptions {
  VolumeDropOptions volume_drop;
  // First match wins; see VolumeDropOverride.
  std::vector<VolumeDropOverride> volume_drop_overrides;
  CustomsHoldOptions customs_hold;
  UnitValueOptions unit_value;
  OriginConcentrationOptions origin_concentration;
  // First match wins; see OriginConcentrationOverride.
  std::vector<OriginConcentrationOverride> origin_concentration_overrides;
  DwellOptions dwell;
  // The border-dwell join feeding the dwell samples (detection.dwell.time_bound).
  DwellJoinOptions dwell_join;
  LifecycleOptions lifecycle;

  // Everything but the overrides' group names (which need the catalog).
  Status Validate(const WindowOptions& windows) const;
  // Validate(), and the overrides against `group_names`.
  Status Validate(const WindowOptions& windows, const std::vector<std::string>& group_names) const;
};

class ShortageDetection {
 public:
  // REQUIRES: options.Validate(windows, group_names).ok(). `corridors` must
  // outlive this (the task's table, shared with its aggregator).
  ShortageDetection(const DetectionOptions& options, const WindowOptions& windows,
                    const std::vector<std::string>& group_names, CorridorTable* corridors);

  // Runs every detector over `reports` (in the order the windows closed)
  // and appends the alert records their signals cause.
  void Detect(const std::vector<WindowReport>& reports, std::vector<v1::ShortageAlert>* alerts);

  void Flush(StateWriteBatch* batch);
  Status Restore(const StateView& state);

  // Off by default. On, each Detect call also keeps, for reports[i], the
  // volume-drop detector's reading of that report's series right after it
  // (readings()[i]; nullopt for a series it does not watch), for
  // `shortfall replay --report`. It costs a lookup and a copy per report.
  void KeepReadings(bool keep) { keep_readings_ = keep; }
  const std::vector<std::optional<VolumeDropReading>>& readings() const { return readings_; }

  const VolumeDropDetector& volume_drop() const { return volume_drop_; }
  const CustomsHoldDetector& customs_hold() const { return customs_hold_; }
  const UnitValueDetector& unit_value() const { return unit_value_; }
  const OriginConcentrationDetector& origin_concentration() const { return origin_concentration_; }
  const DwellDetector& dwell() const { return dwell_; }
  const AlertLifecycle& lifecycle() const { return lifecycle_; }

 private:
  // Fills the top contributors of volume-drop signals on group totals.
  void AddContributors(const std::vector<WindowReport>& reports);

  size_t drop_window_index_;  // of the volume-drop window in WindowOptions::rolling
  std::vector<std::string> group_names_;
  const CorridorTable* corridors_;
  VolumeDropDetector volume_drop_;
  CustomsHoldDetector customs_hold_;
  UnitValueDetector unit_value_;
  OriginConcentrationDetector origin_concentration_;
  DwellDetector dwell_;
  AlertLifecycle lifecycle_;
  std::vector<Signal> signals_;  // scratch, reused
  // Scratch: the volume-drop expectation of each report of a Detect call, as
  // of that report (the same however many windows one call closes).
  std::vector<std::optional<double>> expected_;
  bool keep_readings_ = false;
  std::vector<std::optional<VolumeDropReading>> readings_;  // of the last Detect call, when kept
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_SHORTAGE_DETECTION_H_
