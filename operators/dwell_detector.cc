#include "operators/dwell_detector.h"

namespace shortfall::operators {

DwellOptions::DwellOptions() {
  min_samples = 10;
  min_reference_samples = 20;
  sample_sd = 1.0;
  relative_floor = 0.05;
  cusum_threshold = 6.0;
  min_ratio = 1.5;
  max_held = 14 * kMsPerDay;
}

const LevelRiseProfile& DwellProfile() {
  static const LevelRiseProfile kProfile{
      .kind = v1::ALERT_KIND_DWELL_TIME_RISE,
      .name = "dwell",
      .measure = "dwell_seconds",
      .min_samples_name = "min_releases",
      .min_reference_samples_name = "min_reference_releases",
      .sample_sd_name = "dwell_sd",
      .sums = [](const VolumeDelta& v) -> const std::vector<PriceSum>& { return v.dwell; },
      .level_evidence = true,
      .level_offset = kDwellOffsetSeconds,
  };
  return kProfile;
}

Status DwellOptions::Validate(const WindowOptions& windows) const {
  return ValidateLevelRise(*this, windows, DwellProfile());
}

}  // namespace shortfall::operators
