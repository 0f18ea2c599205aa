#include "base/number_format.h"

#include <cmath>
#include <cstdio>

namespace shortfall {
namespace {

std::string Printf(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

}  // namespace

std::string FormatNumber(double x) {
  if (!std::isfinite(x)) return std::isnan(x) ? "nan" : (x > 0 ? "inf" : "-inf");
  if (std::fabs(x) >= 100 || std::fabs(x - std::round(x)) < 1e-9) return Printf("%.0f", x);
  std::string s = Printf("%.3g", x);
  if (s.find('e') == std::string::npos && s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s;
}

}  // namespace shortfall
