// Builders for valid v1 events, for operator tests. Each test changes one
// thing from a valid event and checks what follows.
#ifndef SHORTFALL_TESTS_OPERATORS_TEST_EVENTS_H_
#define SHORTFALL_TESTS_OPERATORS_TEST_EVENTS_H_

#include <string>

#include "base/time.h"
#include "operators/catalog.h"
#include "shortfall/v1/customs_event.pb.h"
#include "shortfall/v1/shipment_event.pb.h"

namespace shortfall::testing {

inline void SetTime(google::protobuf::Timestamp* ts, TimestampMs ms) {
  ts->set_seconds(ms / 1000);
  ts->set_nanos(static_cast<int32_t>(ms % 1000) * 1000000);
}

inline const TimestampMs kMonday = *ParseUtc("2026-01-05T00:00:00Z");

// A small catalog: chips 8542 (and 854231 also "electronics"), gloves.
inline constexpr std::string_view kTestCatalog =
    "group,hs_prefix,hs_revision,rule,note\n"
    "chips,8542,any,include,\n"
    "chips,854239,any,exclude,test exclusion\n"
    "electronics,854231,any,include,\n"
    "gloves,401512,2022,include,\n"
    "gloves,401511,2017,include,\n";

inline operators::Catalog TestCatalog() { return *operators::Catalog::Parse(kTestCatalog, "test"); }

inline v1::GoodsLine* AddLine(google::protobuf::RepeatedPtrField<v1::GoodsLine>* goods,
                              std::string hs, double quantity, std::string unit, double kg,
                              double value, std::string currency = "USD") {
  v1::GoodsLine* g = goods->Add();
  g->set_hs_code(std::move(hs));
  g->set_hs_version(v1::HS_VERSION_2022);
  g->set_quantity(quantity);
  g->set_unit(std::move(unit));
  g->set_gross_weight_kg(kg);
  g->set_declared_value(value);
  g->set_currency(std::move(currency));
  return g;
}

inline void SetCorridor(v1::Corridor* c, std::string origin = "MX", std::string dest = "US",
                        std::string port = "2304") {
  c->set_origin_country(std::move(origin));
  c->set_destination_country(std::move(dest));
  c->set_port_of_entry(std::move(port));
}

// An actual ARRI of 100 chips (854231) at Laredo at `t`, published a minute later.
inline v1::ShipmentEvent Arrival(TimestampMs t, std::string id = "SHP-1") {
  v1::ShipmentEvent e;
  e.set_event_id("EV-" + id);
  e.set_shipment_id(std::move(id));
  e.set_event_class(v1::EVENT_CLASS_TRANSPORT);
  e.set_event_type_code("ARRI");
  e.set_event_classifier(v1::EVENT_CLASSIFIER_ACTUAL);
  SetTime(e.mutable_event_time(), t);
  SetTime(e.mutable_publish_time(), t + kMsPerMinute);
  SetCorridor(e.mutable_corridor());
  e.set_facility_type("BOCR");
  e.set_mode_of_transport("TRUCK");
  AddLine(e.mutable_goods(), "854231", 100, "NAR", 5, 1000);
  return e;
}

// A customs status change for declaration `id` with one line of gloves.
inline v1::CustomsEvent Customs(TimestampMs t, v1::CustomsStatus status, std::string id = "DEC-1") {
  v1::CustomsEvent e;
  e.set_event_id("CE-" + id);
  e.set_declaration_id(std::move(id));
  e.set_shipment_id("SHP-1");
  e.set_status(status);
  e.set_authority("CBP");
  SetTime(e.mutable_event_time(), t);
  SetTime(e.mutable_publish_time(), t + kMsPerMinute);
  SetCorridor(e.mutable_corridor());
  AddLine(e.mutable_goods(), "401512", 1000, "PR", 50, 2000);
  return e;
}

}  // namespace shortfall::testing

#endif  // SHORTFALL_TESTS_OPERATORS_TEST_EVENTS_H_
