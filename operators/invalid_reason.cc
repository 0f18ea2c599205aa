#include "operators/invalid_reason.h"

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

}  // namespace shortfall::operators
