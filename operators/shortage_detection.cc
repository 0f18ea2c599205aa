#include "operators/shortage_detection.h"

namespace shortfall::operators {

Status DetectionOptions::Validate(const WindowOptions& windows) const {
  SHORTFALL_RETURN_IF_ERROR(volume_drop.Validate(windows));
  return lifecycle.Validate();
}

Status DetectionOptions::Validate(const WindowOptions& windows, const std::vector<std::string>& group_names) const {
  SHORTFALL_RETURN_IF_ERROR(Validate(windows));
  return ValidateVolumeDropOverrides(volume_drop_overrides, group_names);
}

ShortageDetection::ShortageDetection(const DetectionOptions& options, const WindowOptions& windows,
                                     const std::vector<std::string>& group_names, CorridorTable* corridors)
    : volume_drop_(options.volume_drop, options.volume_drop_overrides, windows, group_names, corridors),
      lifecycle_(options.lifecycle) {}

void ShortageDetection::Detect(const std::vector<WindowReport>& reports, std::vector<v1::ShortageAlert>* alerts) {
  if (reports.empty()) return;
  signals_.clear();
  for (const WindowReport& report : reports) volume_drop_.Observe(report, &signals_);
  for (const Signal& signal : signals_) lifecycle_.Apply(signal, alerts);
}

void ShortageDetection::Flush(StateWriteBatch* batch) {
  volume_drop_.Flush(batch);
  lifecycle_.Flush(batch);
}

Status ShortageDetection::Restore(const StateView& state) {
  SHORTFALL_RETURN_IF_ERROR(volume_drop_.Restore(state));
  return lifecycle_.Restore(state);
}

}  // namespace shortfall::operators
