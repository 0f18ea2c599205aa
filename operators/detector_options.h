// What the detectors' option checks share: the number format of their error
// messages, and the checks of the CUSUM settings every sustained-shift test
// has (VolumeDropDetector, CustomsHoldDetector, LevelRiseDetector).
//
// Thread-safety: pure functions.
#ifndef SHORTFALL_OPERATORS_DETECTOR_OPTIONS_H_
#define SHORTFALL_OPERATORS_DETECTOR_OPTIONS_H_

#include <string>
#include <string_view>

#include "base/status.h"

namespace shortfall::operators {

// `x` as option errors print it ("%g": 0.5, 1e+09, nan).
std::string OptionNumber(double x);

// kInvalidArgument naming "<prefix>.<field>" unless cusum_slack >= 0,
// cusum_threshold > 0 and recover_z is a number (all finite), e.g.
// "customs_hold.cusum_slack: -1 (want >= 0)".
Status ValidateCusum(std::string_view prefix, double cusum_slack, double cusum_threshold, double recover_z);

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_DETECTOR_OPTIONS_H_
