// InvalidReason: why an input record was rejected. Each reason has a stable
// snake_case name used in dead-letter headers, metrics labels and replay
// reports; names are a contract (add, never rename).
#ifndef SHORTFALL_OPERATORS_INVALID_REASON_H_
#define SHORTFALL_OPERATORS_INVALID_REASON_H_

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace shortfall::operators {

enum class InvalidReason : uint8_t {
  kUnparseable = 0,        // bytes are neither a valid protobuf nor JSON event
  kUnknownTopic,           // record from a topic shortfall does not read
  kMissingId,              // no shipment_id / declaration_id
  kMissingEventTime,       // no event_time
  kFutureTimestamp,        // actual event time too far ahead of publish time
  kAbsurdTimestamp,        // before 2000-01-01 or after 2100-01-01
  kUnknownEventCode,       // event_type_code not a DCSA code of its event_class
  kUnknownCustomsStatus,   // customs status UNSPECIFIED or unknown value
  kUnknownCountry,         // not an ISO 3166-1 alpha-2 code
  kMalformedPort,          // port of entry neither a CBP code nor a UN/LOCODE
  kNoGoods,                // an event that must carry goods carries none
  kMissingHsCode,          // goods line without hs_code
  kMalformedHsCode,        // hs_code not 6 to 10 digits (dots allowed)
  kUnknownUnit,            // unit not a supported UN/ECE Rec 20 code
  kNegativeQuantity,       // quantity, weight or value < 0 (quantity <= 0)
  kAbsurdQuantity,         // beyond the configured per-line limits, or NaN/inf
  kUnknownCurrency,        // currency not in the rate table
  kCount_,                 // number of reasons; not a reason
};

inline constexpr size_t kInvalidReasonCount = static_cast<size_t>(InvalidReason::kCount_);

// The stable name, e.g. "missing_hs_code".
std::string_view InvalidReasonName(InvalidReason reason);
std::optional<InvalidReason> InvalidReasonFromName(std::string_view name);

// The DLQ reason for records past the allowed lateness. Not an InvalidReason:
// a late record is valid, only too late to count.
inline constexpr std::string_view kLateReasonName = "late";

// A rejected record: the reason and a detail for people ("goods[2].unit 'XYZ'").
struct Invalid {
  InvalidReason reason;
  std::string detail;
};

// Longest detail PrintableDetail keeps, in bytes before escaping.
inline constexpr size_t kMaxDetailBytes = 240;

// `detail` made safe for a log line or a Kafka header: bytes outside
// printable ASCII (control characters, invalid or any non-ASCII UTF-8) become
// \xNN, and past kMaxDetailBytes the rest is cut and "..." marks the cut.
// Details quote the bad input, which may be any bytes.
std::string PrintableDetail(std::string_view detail);

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_INVALID_REASON_H_
