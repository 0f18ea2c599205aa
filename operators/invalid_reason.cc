#include "operators/invalid_reason.h"

#include <algorithm>

namespace shortfall::operators {
namespace {

constexpr std::array<std::string_view, kInvalidReasonCount> kNames = {
    "unparseable",        "unknown_topic",     "missing_id",
    "missing_event_time", "future_timestamp",  "absurd_timestamp",
    "unknown_event_code", "unknown_customs_status", "unknown_country",
    "malformed_port",     "no_goods",          "missing_hs_code",
    "malformed_hs_code",  "unknown_unit",      "negative_quantity",
    "absurd_quantity",    "unknown_currency",
};

}  // namespace

std::string_view InvalidReasonName(InvalidReason reason) {
  return kNames[static_cast<size_t>(reason)];
}

std::optional<InvalidReason> InvalidReasonFromName(std::string_view name) {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) return static_cast<InvalidReason>(i);
  }
  return std::nullopt;
}

std::string PrintableDetail(std::string_view detail) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::min(detail.size(), kMaxDetailBytes) + 3);
  for (size_t i = 0; i < detail.size() && i < kMaxDetailBytes; ++i) {
    const auto c = static_cast<unsigned char>(detail[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (detail.size() > kMaxDetailBytes) out += "...";
  return out;
}

}  // namespace shortfall::operators
