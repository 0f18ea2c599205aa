#include "operators/unit_value_detector.h"

namespace shortfall::operators {

const LevelRiseProfile& UnitValueProfile() {
  static const LevelRiseProfile kProfile{
      .kind = v1::ALERT_KIND_UNIT_VALUE_SPIKE,
      .name = "unit_value",
      .measure = "unit_value_index",
      .min_samples_name = "min_lines",
      .min_reference_samples_name = "min_reference_lines",
      .sample_sd_name = "price_sd",
      .sums = [](const VolumeDelta& v) -> const std::vector<PriceSum>& { return v.prices; },
  };
  return kProfile;
}

Status UnitValueOptions::Validate(const WindowOptions& windows) const {
  return ValidateLevelRise(*this, windows, UnitValueProfile());
}

}  // namespace shortfall::operators
