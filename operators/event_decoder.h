// Decoding input record values into v1 events.
//
// A value is binary protobuf (the wire format) or JSON in protobuf's JSON
// mapping. With PayloadFormat::kAuto a value whose first non-blank byte is
// '{' is tried as JSON and, if that fails, as protobuf; anything else is
// protobuf. (A binary event can look like that too — 0x0A 0x7B is a
// 123-byte first field — which is why the fallback exists.)
//
// Pure functions; thread-safe. A value that cannot be decoded yields
// Invalid{kUnparseable} with the parser's reason; nothing aborts.
#ifndef SHORTFALL_OPERATORS_EVENT_DECODER_H_
#define SHORTFALL_OPERATORS_EVENT_DECODER_H_

#include <google/protobuf/timestamp.pb.h>

#include <optional>
#include <string_view>

#include "base/time.h"
#include "operators/invalid_reason.h"
#include "shortfall/v1/customs_event.pb.h"
#include "shortfall/v1/shipment_event.pb.h"

namespace shortfall::operators {

enum class PayloadFormat { kAuto, kProtobuf, kJson };

// A protobuf Timestamp as milliseconds, or nullopt when it lies outside
// years 0001..9999 (the range protobuf's Timestamp allows) or its nanos are
// outside [0, 1e9) — binary input is not range-checked by the parser, and
// multiplying an unchecked value could overflow.
inline std::optional<TimestampMs> TimestampToMs(const google::protobuf::Timestamp& ts) {
  constexpr int64_t kMinSeconds = -62135596800;  // 0001-01-01T00:00:00Z
  constexpr int64_t kMaxSeconds = 253402300799;  // 9999-12-31T23:59:59Z
  if (ts.seconds() < kMinSeconds || ts.seconds() > kMaxSeconds || ts.nanos() < 0 ||
      ts.nanos() >= 1000000000) {
    return std::nullopt;
  }
  return ts.seconds() * kMsPerSecond + ts.nanos() / 1000000;
}

// Maps a content-type ("application/x-protobuf", "application/json", ...) to
// a format; kAuto for empty or unknown types.
PayloadFormat PayloadFormatFromContentType(std::string_view content_type);

// Each returns nullopt on success (with *out filled) or why the value is bad.
std::optional<Invalid> DecodeShipmentEvent(std::string_view value, PayloadFormat format,
                                           v1::ShipmentEvent* out);
std::optional<Invalid> DecodeCustomsEvent(std::string_view value, PayloadFormat format,
                                          v1::CustomsEvent* out);

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_EVENT_DECODER_H_
