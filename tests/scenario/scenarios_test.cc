#include "scenario/scenarios.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "scenario/generator.h"

namespace shortfall::scenario {
namespace {

TimestampMs ToMs(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * kMsPerSecond + ts.nanos() / 1000000;
}

bool IsScenarioPort(std::string_view port) {
  const auto corridors = ScenarioCorridors();
  return std::any_of(corridors.begin(), corridors.end(),
                     [&](const ScenarioCorridor& c) { return c.port_of_entry == port; });
}

TEST(NamedScenarios, NamesAreUniqueFindableAndListed) {
  std::set<std::string> names;
  for (const NamedScenario& s : NamedScenarios()) {
    EXPECT_TRUE(names.insert(s.name).second) << s.name;
    EXPECT_EQ(FindScenario(s.name), &s);
    EXPECT_NE(ScenarioNameList().find(s.name), std::string::npos) << s.name;
    EXPECT_FALSE(s.description.empty()) << s.name;
  }
  EXPECT_EQ(FindScenario("no_such_scenario"), nullptr);
  // The suite the detection-quality test scores, demo first.
  EXPECT_EQ(NamedScenarios().front().name, "demo");
  for (const char* name :
       {"sudden_drop", "gradual_decline", "port_closure", "hold_wave", "price_spike", "origin_shift", "holiday_dip",
        "demand_surge", "low_volume_noise", "late_burst", "idle_partition"}) {
    EXPECT_NE(FindScenario(name), nullptr) << name;
  }
}

TEST(NamedScenarios, OptionsValidateAndTruthIsWellFormed) {
  for (const NamedScenario& s : NamedScenarios()) {
    const Status valid = ValidateOptions(s.options);
    EXPECT_TRUE(valid.ok()) << s.name << ": " << valid.message();
    for (const TruthEntry& t : s.truth) {
      const std::string at = s.name + " '" + t.what + "'";
      const bool known_group =
          t.group == kAllGoods ||
          std::find(kScenarioGroups.begin(), kScenarioGroups.end(), t.group) != kScenarioGroups.end();
      EXPECT_TRUE(known_group) << at;
      EXPECT_TRUE(t.port_of_entry.empty() || IsScenarioPort(t.port_of_entry)) << at;
      EXPECT_LT(t.start, t.end) << at;
      EXPECT_FALSE(t.what.empty()) << at;
      // An alert kind exactly for shortages
      EXPECT_EQ(t.shortage, t.alert != ExpectedAlert::kNone) << at;
      // After three weeks of history: the volume-drop baseline needs two
      EXPECT_GE(t.start, s.options.start + 21 * kMsPerDay) << at;
      // A shortage is injected by a disruption with its group, port and start
      if (t.shortage) {
        const auto& all = s.options.disruptions;
        EXPECT_TRUE(std::any_of(all.begin(), all.end(), [&](const Disruption& d) {
          return d.group == t.group && d.port_of_entry == t.port_of_entry && d.start == t.start;
        })) << at;
      }
    }
  }
}

TEST(NamedScenarios, EachRunsAWeekPastItsChanges) {
  // The records must reach a week past every change's end, or past its
  // first week if it lasts longer: time for a detector to see it, and to
  // fall quiet (or not) after it.
  for (const NamedScenario& s : NamedScenarios()) {
    if (s.truth.empty()) continue;
    Generator generator(s.options);
    v1::EventRecord record;
    TimestampMs last_arrival = kMinTimestamp;
    while (generator.Next(&record)) {
      if (record.has_shipment() && record.shipment().event_type_code() == "ARRI") {
        last_arrival = std::max(last_arrival, ToMs(record.shipment().event_time()));
      }
    }
    for (const TruthEntry& t : s.truth) {
      EXPECT_GE(last_arrival, std::min(t.end, t.start + 7 * kMsPerDay) + 7 * kMsPerDay)
          << s.name << " '" << t.what << "' ends at " << FormatUtc(last_arrival);
    }
  }
}

TEST(NamedScenarios, OriginShiftMovesChipsFromCanadaToMexicoAndKeepsTheTotal) {
  // Chip arrivals into the US by origin, the week before the fade and the
  // week after it completes
  const NamedScenario* s = FindScenario("origin_shift");
  ASSERT_NE(s, nullptr);
  const TimestampMs fade = s->truth.front().start;
  std::map<std::pair<bool, std::string>, uint64_t> counts;  // (after?, origin)
  Generator generator(s->options);
  v1::EventRecord record;
  while (generator.Next(&record)) {
    if (!record.has_shipment() || record.shipment().event_type_code() != "ARRI") continue;
    const v1::ShipmentEvent& e = record.shipment();
    // Shipment ids are "SF<corridor><category>...": category 0 is semiconductors.
    if (e.shipment_id().size() < 4 || e.shipment_id()[3] != '0' || e.corridor().destination_country() != "US") {
      continue;
    }
    const TimestampMs t = ToMs(e.event_time());
    if (t >= fade - 7 * kMsPerDay && t < fade) ++counts[{false, e.corridor().origin_country()}];
    if (t >= fade + 14 * kMsPerDay && t < fade + 21 * kMsPerDay) ++counts[{true, e.corridor().origin_country()}];
  }
  const double ca_before = static_cast<double>(counts[{false, "CA"}]);
  const double ca_after = static_cast<double>(counts[{true, "CA"}]);
  const double total_before = ca_before + static_cast<double>(counts[{false, "MX"}]);
  const double total_after = ca_after + static_cast<double>(counts[{true, "MX"}]);
  ASSERT_GT(ca_before, 15);
  // Canada's share of US chip imports falls to a fraction
  EXPECT_LT(ca_after / total_after, 0.4 * ca_before / total_before);
  // while the total stays within noise of what it was: nothing for a volume alert
  EXPECT_NEAR(total_after / total_before, 1.0, 0.15);
}

TEST(TruthCsv, WritesOneLinePerEntryWithTheAlertKindLast) {
  NamedScenario s;
  s.name = "x";
  s.truth = {TruthEntry{.group = "ppe",
                        .port_of_entry = "2304",
                        .start = kDefaultStart,
                        .end = kDefaultStart + kMsPerDay,
                        .shortage = true,
                        .what = "masks \"N95\", fewer",
                        .alert = ExpectedAlert::kCustomsHoldSpike},
             TruthEntry{.group = "*",
                        .port_of_entry = "",
                        .start = kDefaultStart,
                        .end = kDefaultStart + kMsPerHour,
                        .shortage = false,
                        .what = "holiday",
                        .alert = ExpectedAlert::kNone}};
  EXPECT_EQ(TruthCsv(s),
            "scenario,group,port_of_entry,start,end,shortage,what,alert_kind,detect_within_hours\n"
            "x,ppe,2304,2026-01-05T00:00:00Z,2026-01-06T00:00:00Z,true,\"masks \"\"N95\"\", fewer\","
            "customs_hold_spike,96\n"
            "x,*,,2026-01-05T00:00:00Z,2026-01-05T01:00:00Z,false,\"holiday\",none,96\n");
}

TEST(TruthCsv, NamesEveryExpectedAlertAsTheAlertSchemaDoes) {
  EXPECT_EQ(ExpectedAlertName(ExpectedAlert::kNone), "none");
  EXPECT_EQ(ExpectedAlertName(ExpectedAlert::kVolumeDrop), "volume_drop");
  EXPECT_EQ(ExpectedAlertName(ExpectedAlert::kCustomsHoldSpike), "customs_hold_spike");
  EXPECT_EQ(ExpectedAlertName(ExpectedAlert::kUnitValueSpike), "unit_value_spike");
  EXPECT_EQ(ExpectedAlertName(ExpectedAlert::kOriginConcentration), "origin_concentration");
}

}  // namespace
}  // namespace shortfall::scenario
