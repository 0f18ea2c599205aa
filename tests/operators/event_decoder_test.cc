#include "operators/event_decoder.h"

#include <gtest/gtest.h>
#include <google/protobuf/util/json_util.h>

#include "tests/operators/test_events.h"

namespace shortfall::operators {
namespace {

TEST(EventDecoder, ReadsBinaryProtobuf) {
  const v1::ShipmentEvent in = testing::Arrival(testing::kMonday);
  v1::ShipmentEvent out;
  EXPECT_FALSE(DecodeShipmentEvent(in.SerializeAsString(), PayloadFormat::kAuto, &out).has_value());
  EXPECT_EQ(out.SerializeAsString(), in.SerializeAsString());
}

TEST(EventDecoder, ReadsProtobufJsonMappingWithEitherFieldNameStyle) {
  const std::string camel =
      R"({"shipmentId":"SHP-9","eventClass":"EVENT_CLASS_TRANSPORT","eventTypeCode":"ARRI",
          "eventTime":"2026-03-02T14:00:00Z","goods":[{"hsCode":"854231","quantity":5}]})";
  const std::string snake =
      R"(  {"shipment_id":"SHP-9","event_class":"EVENT_CLASS_TRANSPORT","event_type_code":"ARRI",
          "event_time":"2026-03-02T14:00:00Z","goods":[{"hs_code":"854231","quantity":5}]})";
  v1::ShipmentEvent a, b;
  ASSERT_FALSE(DecodeShipmentEvent(camel, PayloadFormat::kAuto, &a).has_value());
  ASSERT_FALSE(DecodeShipmentEvent(snake, PayloadFormat::kAuto, &b).has_value());
  EXPECT_EQ(a.shipment_id(), "SHP-9");
  EXPECT_EQ(a.goods(0).quantity(), 5);
  EXPECT_EQ(a.event_time().seconds(), *ParseUtc("2026-03-02T14:00:00Z") / 1000);
  EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString());
}

TEST(EventDecoder, IgnoresJsonFieldsFromANewerSchema) {
  v1::CustomsEvent out;
  EXPECT_FALSE(DecodeCustomsEvent(R"({"declarationId":"D1","fieldFromV1Point5":true})",
                                  PayloadFormat::kJson, &out)
                   .has_value());
  EXPECT_EQ(out.declaration_id(), "D1");
}

TEST(EventDecoder, GarbageIsUnparseable) {
  v1::ShipmentEvent out;
  for (std::string_view bad : {std::string_view("\xff\xff\xff\xff"), std::string_view("{not json"),
                               std::string_view("\x0a\x05" "ab")}) {
    std::optional<Invalid> r = DecodeShipmentEvent(bad, PayloadFormat::kAuto, &out);
    ASSERT_TRUE(r.has_value()) << "accepted garbage";
    EXPECT_EQ(r->reason, InvalidReason::kUnparseable);
  }
}

TEST(EventDecoder, BytesWithOnlyUnknownFieldsAreUnparseable) {
  // Field 99, varint 1: valid protobuf, but nothing a ShipmentEvent knows.
  const std::string unknown_only("\x98\x06\x01", 3);
  v1::ShipmentEvent out;
  std::optional<Invalid> r = DecodeShipmentEvent(unknown_only, PayloadFormat::kProtobuf, &out);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->reason, InvalidReason::kUnparseable);
}

TEST(EventDecoder, ABinaryEventThatStartsLikeJsonStillDecodes) {
  // event_id is field 1: a 123-byte id starts the bytes with 0x0A 0x7B ("\n{").
  v1::ShipmentEvent in = testing::Arrival(testing::kMonday);
  in.set_event_id(std::string(123, 'x'));
  std::string bytes = in.SerializeAsString();
  ASSERT_EQ(bytes.substr(0, 2), "\x0a\x7b");
  v1::ShipmentEvent out;
  EXPECT_FALSE(DecodeShipmentEvent(bytes, PayloadFormat::kAuto, &out).has_value());
  // and one whose id starts with '{' makes the very first byte... still 0x0A; force '{' first:
  in.clear_event_id();
  in.set_event_id("{x}");
  bytes = in.SerializeAsString();
  EXPECT_FALSE(DecodeShipmentEvent(bytes, PayloadFormat::kAuto, &out).has_value());
  EXPECT_EQ(out.event_id(), "{x}");
}

TEST(EventDecoder, TimestampsOutsideTheProtobufRangeAreRefused) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(1767571200);
  ts.set_nanos(250000000);
  EXPECT_EQ(TimestampToMs(ts), 1767571200250);
  ts.set_seconds(int64_t{1} << 60);  // would overflow when scaled to ms
  EXPECT_FALSE(TimestampToMs(ts).has_value());
  ts.set_seconds(0);
  ts.set_nanos(-1);
  EXPECT_FALSE(TimestampToMs(ts).has_value());
}

TEST(EventDecoder, ContentTypeChoosesTheFormat) {
  EXPECT_EQ(PayloadFormatFromContentType("application/json"), PayloadFormat::kJson);
  EXPECT_EQ(PayloadFormatFromContentType("application/x-protobuf"), PayloadFormat::kProtobuf);
  EXPECT_EQ(PayloadFormatFromContentType(""), PayloadFormat::kAuto);
  // JSON sent as protobuf is a bad record, not a guess.
  v1::ShipmentEvent out;
  EXPECT_TRUE(DecodeShipmentEvent(R"({"shipmentId":"x"})", PayloadFormat::kProtobuf, &out).has_value());
}

}  // namespace
}  // namespace shortfall::operators
