#include "operators/event_decoder.h"

#include <google/protobuf/util/json_util.h>

#include <limits>
#include <string>
#include <vector>

namespace shortfall::operators {
namespace {

bool LooksLikeJson(std::string_view value) {
  for (char c : value) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    return c == '{';
  }
  return false;
}

bool NoKnownField(const google::protobuf::Message& message) {
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  message.GetReflection()->ListFields(message, &fields);
  return fields.empty();
}

template <typename Message>
std::optional<Invalid> Decode(std::string_view value, PayloadFormat format, Message* out);

// kAuto: a value starting with '{' is tried as JSON first; if that fails it
// may still be binary (0x7B can start a binary event whose first field is
// long), so protobuf gets a try before the JSON error is reported.
template <typename Message>
std::optional<Invalid> DecodeAuto(std::string_view value, Message* out) {
  if (!LooksLikeJson(value)) return Decode(value, PayloadFormat::kProtobuf, out);
  std::optional<Invalid> as_json = Decode(value, PayloadFormat::kJson, out);
  if (!as_json) return std::nullopt;
  if (!Decode(value, PayloadFormat::kProtobuf, out)) return std::nullopt;
  return as_json;
}

template <typename Message>
std::optional<Invalid> Decode(std::string_view value, PayloadFormat format, Message* out) {
  if (format == PayloadFormat::kAuto) return DecodeAuto(value, out);
  if (format == PayloadFormat::kJson) {
    out->Clear();
    google::protobuf::util::JsonParseOptions options;
    // Newer producers may add fields (v1 is additive); old readers skip them.
    options.ignore_unknown_fields = true;
    const auto status = google::protobuf::util::JsonStringToMessage(
        google::protobuf::StringPiece(value.data(), value.size()), out, options);
    if (!status.ok()) {
      return Invalid{InvalidReason::kUnparseable,
                     "not a " + Message::descriptor()->full_name() + " in JSON: " +
                         std::string(status.message())};
    }
    return std::nullopt;
  }
  if (value.size() > static_cast<size_t>(std::numeric_limits<int>::max()) ||
      !out->ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return Invalid{InvalidReason::kUnparseable,
                   "not a " + Message::descriptor()->full_name() + " in protobuf (" +
                       std::to_string(value.size()) + " bytes)"};
  }
  // Random bytes sometimes parse as nothing but unknown fields; a value that
  // sets no field this schema knows is not one of its events.
  const google::protobuf::Reflection* reflection = out->GetReflection();
  if (reflection->GetUnknownFields(*out).field_count() > 0 && NoKnownField(*out)) {
    return Invalid{InvalidReason::kUnparseable,
                   "protobuf with no known " + Message::descriptor()->full_name() + " field"};
  }
  return std::nullopt;
}

}  // namespace

PayloadFormat PayloadFormatFromContentType(std::string_view content_type) {
  const auto has = [&](std::string_view s) { return content_type.find(s) != std::string_view::npos; };
  if (has("json")) return PayloadFormat::kJson;
  if (has("protobuf") || has("x-protobuf") || has("vnd.google.protobuf")) return PayloadFormat::kProtobuf;
  return PayloadFormat::kAuto;
}

std::optional<Invalid> DecodeShipmentEvent(std::string_view value, PayloadFormat format,
                                           v1::ShipmentEvent* out) {
  return Decode(value, format, out);
}

std::optional<Invalid> DecodeCustomsEvent(std::string_view value, PayloadFormat format,
                                          v1::CustomsEvent* out) {
  return Decode(value, format, out);
}

}  // namespace shortfall::operators
