// Decoding input record values into v1 events.
//
// A value is binary protobuf (the wire format) or JSON in protobuf's JSON
// mapping. With PayloadFormat::kAuto a value whose first non-blank byte is
// '{' is read as JSON, anything else as protobuf: no v1 message can start
// with 0x7B in binary (that byte is field 15 with the deprecated group wire
// type), so the guess is never wrong for a valid event.
//
// Pure functions; thread-safe. A value that cannot be decoded yields
// Invalid{kUnparseable} with the parser's reason; nothing aborts.
#ifndef SHORTFALL_OPERATORS_EVENT_DECODER_H_
#define SHORTFALL_OPERATORS_EVENT_DECODER_H_

#include <optional>
#include <string_view>

#include "operators/invalid_reason.h"
#include "shortfall/v1/customs_event.pb.h"
#include "shortfall/v1/shipment_event.pb.h"

namespace shortfall::operators {

enum class PayloadFormat { kAuto, kProtobuf, kJson };

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
