#include "operators/shortage_detection.h"

#include <algorithm>

namespace shortfall::operators {

Status DetectionOptions::Validate(const WindowOptions& windows) const {
  SHORTFALL_RETURN_IF_ERROR(volume_drop.Validate(windows));
  SHORTFALL_RETURN_IF_ERROR(customs_hold.Validate(windows));
  SHORTFALL_RETURN_IF_ERROR(unit_value.Validate(windows));
  SHORTFALL_RETURN_IF_ERROR(origin_concentration.Validate(windows));
  SHORTFALL_RETURN_IF_ERROR(dwell.Validate(windows));
  SHORTFALL_RETURN_IF_ERROR(dwell_join.Validate());
  return lifecycle.Validate();
}

Status DetectionOptions::Validate(const WindowOptions& windows, const std::vector<std::string>& group_names) const {
  SHORTFALL_RETURN_IF_ERROR(Validate(windows));
  SHORTFALL_RETURN_IF_ERROR(ValidateOriginConcentrationOverrides(origin_concentration_overrides, group_names));
  return ValidateVolumeDropOverrides(volume_drop_overrides, group_names);
}

ShortageDetection::ShortageDetection(const DetectionOptions& options, const WindowOptions& windows,
                                     const std::vector<std::string>& group_names, CorridorTable* corridors)
    : drop_window_index_(windows.RollingIndex(options.volume_drop.window)),
      group_names_(group_names),
      corridors_(corridors),
      volume_drop_(options.volume_drop, options.volume_drop_overrides, windows, group_names, corridors),
      customs_hold_(options.customs_hold, windows, group_names, corridors),
      unit_value_(options.unit_value, windows, group_names, corridors),
      origin_concentration_(options.origin_concentration, options.origin_concentration_overrides, windows,
                            group_names, corridors),
      dwell_(options.dwell, windows, group_names, corridors),
      lifecycle_(options.lifecycle) {}

void ShortageDetection::Detect(const std::vector<WindowReport>& reports, std::vector<v1::ShortageAlert>* alerts) {
  if (reports.empty()) return;
  signals_.clear();
  expected_.clear();
  readings_.clear();
  for (const WindowReport& report : reports) {
    volume_drop_.Observe(report, &signals_);
    // Now, not later: a series' expectation moves on with each of its reports.
    expected_.push_back(volume_drop_.ExpectedShipments(report.series));
    if (keep_readings_) readings_.push_back(volume_drop_.Reading(report.series));
  }
  AddContributors(reports);
  // After AddContributors, which reads only volume-drop signals.
  for (const WindowReport& report : reports) {
    customs_hold_.Observe(report, &signals_);
    unit_value_.Observe(report, &signals_);
    dwell_.Observe(report, &signals_);
  }
  origin_concentration_.Observe(reports, &signals_);
  for (const Signal& signal : signals_) lifecycle_.Apply(signal, alerts);
}

void ShortageDetection::AddContributors(const std::vector<WindowReport>& reports) {
  for (Signal& signal : signals_) {
    if (!signal.firing || signal.corridor != kAllCorridorsCode || signal.evidence.measure() != "shipments") continue;
    // The group's corridors closed at the same time, by their shortfall
    // against their own expected shipments.
    std::vector<std::pair<double, const WindowReport*>> shortfalls;
    double total = 0;
    for (size_t i = 0; i < reports.size(); ++i) {
      const WindowReport& r = reports[i];
      if (r.bucket_end != signal.window_end || r.series.corridor == kAllCorridors ||
          group_names_[r.series.group] != signal.group) {
        continue;
      }
      const std::optional<double>& expected = expected_[i];
      if (!expected) continue;
      const double shortfall = *expected - static_cast<double>(r.rolling[drop_window_index_].shipments);
      if (shortfall <= 0) continue;
      shortfalls.emplace_back(shortfall, &r);
      total += shortfall;
    }
    std::sort(shortfalls.begin(), shortfalls.end(), [&](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first
                                : corridors_->Code(a.second->series.corridor) < corridors_->Code(b.second->series.corridor);
    });
    for (const auto& [shortfall, report] : shortfalls) {
      if (signal.evidence.top_contributors_size() == 3 || shortfall < 0.05 * total) break;
      v1::Contributor* c = signal.evidence.add_top_contributors();
      SetCorridorFromCode(corridors_->Code(report->series.corridor), c->mutable_corridor());
      c->set_share(shortfall / total);
    }
  }
}

void ShortageDetection::Flush(StateWriteBatch* batch) {
  volume_drop_.Flush(batch);
  customs_hold_.Flush(batch);
  unit_value_.Flush(batch);
  origin_concentration_.Flush(batch);
  dwell_.Flush(batch);
  lifecycle_.Flush(batch);
}

Status ShortageDetection::Restore(const StateView& state) {
  SHORTFALL_RETURN_IF_ERROR(volume_drop_.Restore(state));
  SHORTFALL_RETURN_IF_ERROR(customs_hold_.Restore(state));
  SHORTFALL_RETURN_IF_ERROR(unit_value_.Restore(state));
  SHORTFALL_RETURN_IF_ERROR(origin_concentration_.Restore(state));
  SHORTFALL_RETURN_IF_ERROR(dwell_.Restore(state));
  return lifecycle_.Restore(state);
}

}  // namespace shortfall::operators
