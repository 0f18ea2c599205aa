// The version of shortfall, as `shortfall version` prints it and the
// shortfall_build_info metric labels it.
#ifndef SHORTFALL_PIPELINE_VERSION_H_
#define SHORTFALL_PIPELINE_VERSION_H_

#include <string_view>

namespace shortfall::pipeline {

inline constexpr std::string_view kVersion = "0.5.0";

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_VERSION_H_
