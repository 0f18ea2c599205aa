#include "operators/detector_options.h"

#include <cmath>
#include <cstdio>

namespace shortfall::operators {

std::string OptionNumber(double x) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", x);
  return buffer;
}

Status ValidateCusum(std::string_view prefix, double cusum_slack, double cusum_threshold, double recover_z) {
  const std::string p(prefix);
  if (!std::isfinite(cusum_slack) || cusum_slack < 0) {
    return InvalidArgumentError(p + ".cusum_slack: " + OptionNumber(cusum_slack) + " (want >= 0)");
  }
  if (!std::isfinite(cusum_threshold) || cusum_threshold <= 0) {
    return InvalidArgumentError(p + ".cusum_threshold: " + OptionNumber(cusum_threshold) + " (want > 0)");
  }
  if (!std::isfinite(recover_z)) {
    return InvalidArgumentError(p + ".recover_z: " + OptionNumber(recover_z) + " (want a number)");
  }
  return OkStatus();
}

}  // namespace shortfall::operators
