#include "operators/event_normalizer.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/operators/test_events.h"

namespace shortfall::operators {
namespace {

using testing::AddLine;
using testing::Arrival;
using testing::Customs;
using testing::kMonday;

class EventNormalizerTest : public ::testing::Test {
 protected:
  EventNormalizerTest() : catalog_(testing::TestCatalog()), normalizer_(catalog_, {}, &corridors_) {}

  std::optional<Invalid> Run(const v1::ShipmentEvent& e) { return normalizer_.Normalize(e, 0, &out_); }
  std::optional<Invalid> Run(const v1::CustomsEvent& e) { return normalizer_.Normalize(e, 0, &out_); }

  // Expects `e` to be rejected for `reason`.
  template <typename Event>
  void ExpectInvalid(const Event& e, InvalidReason reason) {
    std::optional<Invalid> bad = Run(e);
    ASSERT_TRUE(bad.has_value()) << "accepted an event that should be " << InvalidReasonName(reason);
    EXPECT_EQ(InvalidReasonName(bad->reason), InvalidReasonName(reason)) << bad->detail;
    EXPECT_FALSE(bad->detail.empty());
  }

  Catalog catalog_;
  CorridorTable corridors_;
  EventNormalizer normalizer_;
  NormalizedEvent out_;
};

TEST_F(EventNormalizerTest, ActualArrivalCountsOneShipmentPerGroupOfItsGoods) {
  // Given an arrival with a line counting for chips and electronics, and a glove line
  v1::ShipmentEvent e = Arrival(kMonday);
  AddLine(e.mutable_goods(), "4015.12", 10, "DZN", 2, 120, "MXN");
  // When normalised
  ASSERT_FALSE(Run(e).has_value());
  // Then each group gets one shipment and its own lines, in canonical units
  EXPECT_TRUE(out_.actual);
  EXPECT_EQ(out_.event_time, kMonday);
  EXPECT_EQ(corridors_.Code(out_.corridor), "MX-US-2304");
  ASSERT_EQ(out_.groups.size(), 3u);
  const GroupId chips = *catalog_.FindGroup("chips");
  const GroupId gloves = *catalog_.FindGroup("gloves");
  for (const GroupContribution& c : out_.groups) {
    EXPECT_EQ(c.delta.shipments, 1u);
    EXPECT_EQ(c.delta.goods_lines, 1u);
    if (c.group == chips) {
      EXPECT_EQ(c.delta.quantity_in(Unit::kPiece), 100);
      EXPECT_EQ(c.delta.declared_value_usd(), 1000);
    }
    if (c.group == gloves) {
      EXPECT_EQ(c.delta.quantity_in(Unit::kPiece), 120);       // 10 dozen
      EXPECT_EQ(c.delta.declared_value, 66000);                  // 120 MXN at 0.055: 6.6 USD
      EXPECT_EQ(c.delta.gross_weight_kg(), 2);
    }
  }
}

TEST_F(EventNormalizerTest, GoodsOutsideTheCatalogCountAsUnclassified) {
  v1::ShipmentEvent e = Arrival(kMonday);
  e.mutable_goods()->Clear();
  AddLine(e.mutable_goods(), "870323", 2, "NAR", 3000, 50000);
  ASSERT_FALSE(Run(e).has_value());
  ASSERT_EQ(out_.groups.size(), 1u);
  EXPECT_EQ(out_.groups[0].group, normalizer_.unclassified_group());
  EXPECT_EQ(normalizer_.GroupName(out_.groups[0].group), "unclassified");
  EXPECT_EQ(out_.unclassified_lines, 1u);
}

TEST_F(EventNormalizerTest, OtherShipmentEventsAreValidButCountNothing) {
  v1::ShipmentEvent e = Arrival(kMonday);
  e.set_event_type_code("DEPA");
  ASSERT_FALSE(Run(e).has_value());
  EXPECT_TRUE(out_.groups.empty());
  EXPECT_TRUE(out_.actual);
}

TEST_F(EventNormalizerTest, EstimatedArrivalsAreNotActualAndCountNothing) {
  v1::ShipmentEvent e = Arrival(kMonday + 3 * kMsPerDay);
  e.set_event_classifier(v1::EVENT_CLASSIFIER_ESTIMATED);
  testing::SetTime(e.mutable_publish_time(), kMonday);  // an ETA days ahead is fine
  ASSERT_FALSE(Run(e).has_value());
  EXPECT_FALSE(out_.actual);
  EXPECT_TRUE(out_.groups.empty());
}

TEST_F(EventNormalizerTest, CustomsEventCountsOneDeclarationPerGroupUnderItsStatus) {
  ASSERT_FALSE(Run(Customs(kMonday, v1::CUSTOMS_STATUS_HOLD)).has_value());
  ASSERT_EQ(out_.groups.size(), 1u);
  EXPECT_EQ(out_.groups[0].group, *catalog_.FindGroup("gloves"));
  EXPECT_EQ(out_.groups[0].delta.customs[v1::CUSTOMS_STATUS_HOLD], 1u);
  EXPECT_EQ(out_.groups[0].delta.shipments, 0u);
}

TEST_F(EventNormalizerTest, TheCountingArrivalAndTheReleaseAreTheTwoSidesOfTheDwellJoin) {
  // Given the counting arrival of SHP-1 and its declaration's status changes
  ASSERT_FALSE(Run(Arrival(kMonday)).has_value());
  EXPECT_EQ(out_.dwell, DwellRole::kArrival);
  EXPECT_EQ(out_.shipment_id, "SHP-1");
  ASSERT_FALSE(Run(Customs(kMonday + kMsPerHour, v1::CUSTOMS_STATUS_RELEASED)).has_value());
  EXPECT_EQ(out_.dwell, DwellRole::kRelease);
  EXPECT_EQ(out_.shipment_id, "SHP-1") << "the shipment the declaration names, not the declaration";
  // Then nothing else is a side: other statuses, other shipment events
  ASSERT_FALSE(Run(Customs(kMonday, v1::CUSTOMS_STATUS_HOLD_RELEASED)).has_value());
  EXPECT_EQ(out_.dwell, DwellRole::kNone);
  EXPECT_TRUE(out_.shipment_id.empty());
  v1::ShipmentEvent departure = Arrival(kMonday);
  departure.set_event_type_code("DEPA");
  ASSERT_FALSE(Run(departure).has_value());
  EXPECT_EQ(out_.dwell, DwellRole::kNone);
  v1::ShipmentEvent inland = Arrival(kMonday);
  inland.set_facility_type("INTE");  // an arrival that is not at the border
  ASSERT_FALSE(Run(inland).has_value());
  EXPECT_EQ(out_.dwell, DwellRole::kNone);
}

TEST_F(EventNormalizerTest, NoDwellSideWithoutACatalogGroupOrWithoutTheShipment) {
  // A release of unclassified goods only: nothing to measure dwell for
  v1::CustomsEvent cars = Customs(kMonday, v1::CUSTOMS_STATUS_RELEASED);
  cars.mutable_goods()->Clear();
  AddLine(cars.mutable_goods(), "870323", 2, "NAR", 3000, 50000);
  ASSERT_FALSE(Run(cars).has_value());
  EXPECT_EQ(out_.dwell, DwellRole::kNone);
  // A release that does not say which shipment it is: no side either (the
  // event still counts its declaration)
  v1::CustomsEvent anonymous = Customs(kMonday, v1::CUSTOMS_STATUS_RELEASED);
  anonymous.clear_shipment_id();
  ASSERT_FALSE(Run(anonymous).has_value());
  EXPECT_EQ(out_.dwell, DwellRole::kNone);
  EXPECT_EQ(out_.groups.size(), 1u);
  // Then a later valid event starts clean after an invalid one
  v1::ShipmentEvent bad = Arrival(kMonday);
  bad.set_event_type_code("XXXX");
  ASSERT_FALSE(Run(Arrival(kMonday)).has_value());
  ASSERT_TRUE(Run(bad).has_value());
  EXPECT_EQ(out_.dwell, DwellRole::kNone);
}

TEST_F(EventNormalizerTest, Hs2017CodesClassifyByTheirRevision) {
  v1::ShipmentEvent e = Arrival(kMonday);
  e.mutable_goods(0)->set_hs_code("401511");
  e.mutable_goods(0)->set_hs_version(v1::HS_VERSION_2017);
  ASSERT_FALSE(Run(e).has_value());
  ASSERT_EQ(out_.groups.size(), 1u);
  EXPECT_EQ(out_.groups[0].group, *catalog_.FindGroup("gloves"));
}

TEST_F(EventNormalizerTest, NationalTariffExtensionsClassifyByTheirFirstSixDigits) {
  v1::ShipmentEvent e = Arrival(kMonday);
  e.mutable_goods(0)->set_hs_code("8542.31.0001");
  ASSERT_FALSE(Run(e).has_value());
  EXPECT_EQ(out_.groups.size(), 2u);  // chips and electronics
}

TEST_F(EventNormalizerTest, RejectsMissingIds) {
  v1::ShipmentEvent e = Arrival(kMonday);
  e.clear_shipment_id();
  ExpectInvalid(e, InvalidReason::kMissingId);
  v1::CustomsEvent c = Customs(kMonday, v1::CUSTOMS_STATUS_FILED);
  c.clear_declaration_id();
  ExpectInvalid(c, InvalidReason::kMissingId);
}

TEST_F(EventNormalizerTest, RejectsBadTimes) {
  v1::ShipmentEvent e = Arrival(kMonday);
  e.clear_event_time();
  ExpectInvalid(e, InvalidReason::kMissingEventTime);
  e = Arrival(*ParseUtc("1999-12-31T23:59:59Z"));
  ExpectInvalid(e, InvalidReason::kAbsurdTimestamp);
  e = Arrival(*ParseUtc("2100-01-01T00:00:00Z"));
  ExpectInvalid(e, InvalidReason::kAbsurdTimestamp);
}

TEST_F(EventNormalizerTest, FutureTimestampIsMeasuredFromPublishTime) {
  v1::ShipmentEvent e = Arrival(kMonday);
  testing::SetTime(e.mutable_publish_time(), kMonday - kMsPerHour);  // exactly at the 1 h skew limit
  EXPECT_FALSE(Run(e).has_value());
  testing::SetTime(e.mutable_publish_time(), kMonday - kMsPerHour - 1);
  ExpectInvalid(e, InvalidReason::kFutureTimestamp);
}

TEST_F(EventNormalizerTest, AWrongPublishTimeDoesNotLetAFutureEventThrough) {
  // The producer's clock says 2099 too; the broker's record time does not.
  v1::ShipmentEvent e = Arrival(*ParseUtc("2099-01-01T00:00:00Z"));
  std::optional<Invalid> bad = normalizer_.Normalize(e, kMonday, &out_);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->reason, InvalidReason::kFutureTimestamp);
  EXPECT_NE(bad->detail.find("record time"), std::string::npos) << bad->detail;
}

TEST_F(EventNormalizerTest, OutOfRangeBinaryTimestampsAreAbsurd) {
  v1::ShipmentEvent e = Arrival(kMonday);
  e.mutable_event_time()->set_seconds(int64_t{1} << 60);
  ExpectInvalid(e, InvalidReason::kAbsurdTimestamp);
}

TEST_F(EventNormalizerTest, OnlyArrivalsAtTheBorderCountVolume) {
  v1::ShipmentEvent e = Arrival(kMonday);
  e.set_facility_type("INTE");  // arrival at an inland terminal: not the crossing
  ASSERT_FALSE(Run(e).has_value());
  EXPECT_TRUE(out_.groups.empty());
  e.clear_facility_type();  // unspecified is taken as the border
  ASSERT_FALSE(Run(e).has_value());
  EXPECT_FALSE(out_.groups.empty());
}

TEST_F(EventNormalizerTest, FutureTimestampFallsBackToRecordTime) {
  v1::ShipmentEvent e = Arrival(kMonday);
  e.clear_publish_time();
  EXPECT_FALSE(normalizer_.Normalize(e, kMonday, &out_).has_value());
  std::optional<Invalid> bad = normalizer_.Normalize(e, kMonday - 2 * kMsPerHour, &out_);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->reason, InvalidReason::kFutureTimestamp);
}

TEST_F(EventNormalizerTest, RejectsEventCodesOutsideTheirDcsaClass) {
  v1::ShipmentEvent e = Arrival(kMonday);
  e.set_event_type_code("GTIN");  // an equipment code on a transport event
  ExpectInvalid(e, InvalidReason::kUnknownEventCode);
  e.set_event_class(v1::EVENT_CLASS_UNSPECIFIED);
  ExpectInvalid(e, InvalidReason::kUnknownEventCode);
  // A class from a newer schema is named by its number in the detail.
  e.set_event_class(static_cast<v1::EventClass>(7));
  std::optional<Invalid> bad = Run(e);
  ASSERT_TRUE(bad.has_value());
  EXPECT_NE(bad->detail.find("for event_class 7"), std::string::npos) << bad->detail;
}

TEST_F(EventNormalizerTest, RejectsUnknownCustomsStatus) {
  v1::CustomsEvent c = Customs(kMonday, v1::CUSTOMS_STATUS_UNSPECIFIED);
  ExpectInvalid(c, InvalidReason::kUnknownCustomsStatus);
  c.set_status(static_cast<v1::CustomsStatus>(42));  // a status from a newer schema
  ExpectInvalid(c, InvalidReason::kUnknownCustomsStatus);
}

TEST_F(EventNormalizerTest, RejectsUnknownCountriesAndMalformedPorts) {
  v1::ShipmentEvent e = Arrival(kMonday);
  e.mutable_corridor()->set_origin_country("ZZ");
  ExpectInvalid(e, InvalidReason::kUnknownCountry);
  e = Arrival(kMonday);
  e.mutable_corridor()->set_destination_country("usa");
  ExpectInvalid(e, InvalidReason::kUnknownCountry);
  e = Arrival(kMonday);
  e.mutable_corridor()->set_port_of_entry("LAREDO");
  ExpectInvalid(e, InvalidReason::kMalformedPort);
  e.mutable_corridor()->set_port_of_entry("CAWND");  // a UN/LOCODE is fine
  EXPECT_FALSE(Run(e).has_value());
}

TEST_F(EventNormalizerTest, RejectsArrivalsAndCustomsEventsWithoutGoods) {
  v1::ShipmentEvent e = Arrival(kMonday);
  e.mutable_goods()->Clear();
  ExpectInvalid(e, InvalidReason::kNoGoods);
  v1::CustomsEvent c = Customs(kMonday, v1::CUSTOMS_STATUS_FILED);
  c.mutable_goods()->Clear();
  ExpectInvalid(c, InvalidReason::kNoGoods);
}

TEST_F(EventNormalizerTest, RejectsBadGoodsLines) {
  const auto with_line = [&](auto mutate) {
    v1::ShipmentEvent e = Arrival(kMonday);
    mutate(e.mutable_goods(0));
    return e;
  };
  ExpectInvalid(with_line([](v1::GoodsLine* g) { g->clear_hs_code(); }), InvalidReason::kMissingHsCode);
  ExpectInvalid(with_line([](v1::GoodsLine* g) { g->set_hs_code("85A231"); }), InvalidReason::kMalformedHsCode);
  ExpectInvalid(with_line([](v1::GoodsLine* g) { g->set_hs_code("8542"); }), InvalidReason::kMalformedHsCode);
  ExpectInvalid(with_line([](v1::GoodsLine* g) { g->set_hs_code("85423100001"); }), InvalidReason::kMalformedHsCode);
  ExpectInvalid(with_line([](v1::GoodsLine* g) { g->set_unit("XYZ"); }), InvalidReason::kUnknownUnit);
  ExpectInvalid(with_line([](v1::GoodsLine* g) { g->set_quantity(-5); }), InvalidReason::kNegativeQuantity);
  ExpectInvalid(with_line([](v1::GoodsLine* g) { g->set_quantity(0); }), InvalidReason::kNegativeQuantity);
  ExpectInvalid(with_line([](v1::GoodsLine* g) { g->set_gross_weight_kg(-1); }), InvalidReason::kNegativeQuantity);
  ExpectInvalid(with_line([](v1::GoodsLine* g) { g->set_quantity(1e15); }), InvalidReason::kAbsurdQuantity);
  ExpectInvalid(with_line([](v1::GoodsLine* g) { g->set_quantity(NAN); }), InvalidReason::kAbsurdQuantity);
  ExpectInvalid(with_line([](v1::GoodsLine* g) { g->set_declared_value(1e12); }), InvalidReason::kAbsurdQuantity);
  ExpectInvalid(with_line([](v1::GoodsLine* g) { g->set_currency("ZZZ"); }), InvalidReason::kUnknownCurrency);
  ExpectInvalid(with_line([](v1::GoodsLine* g) { g->clear_currency(); }), InvalidReason::kUnknownCurrency);
}

TEST_F(EventNormalizerTest, AValuelessLineNeedsNoCurrency) {
  v1::ShipmentEvent e = Arrival(kMonday);
  e.mutable_goods(0)->set_declared_value(0);
  e.mutable_goods(0)->clear_currency();
  EXPECT_FALSE(Run(e).has_value());
}

TEST_F(EventNormalizerTest, DetailNamesTheOffendingLine) {
  v1::ShipmentEvent e = Arrival(kMonday);
  AddLine(e.mutable_goods(), "401512", 1, "BOX", 1, 1);
  std::optional<Invalid> bad = Run(e);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->detail, "goods[1].unit 'BOX'");
}

TEST(NormalizerOptions, ValidateNamesTheBadRate) {
  NormalizerOptions o;
  o.usd_rates.emplace_back("EURO", 1.1);
  EXPECT_EQ(o.Validate().message(), "usd_rates[EURO]: not an ISO 4217 code (3 letters A-Z)");
  o.usd_rates.back() = {"XAU", 0};
  EXPECT_EQ(o.Validate().message(), "usd_rates[XAU]: rate must be a positive number");
  o.usd_rates.back() = {"USD", 1};
  EXPECT_EQ(o.Validate().message(), "usd_rates[USD]: listed twice");
}

}  // namespace
}  // namespace shortfall::operators
