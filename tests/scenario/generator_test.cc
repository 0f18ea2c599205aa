#include "scenario/generator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "operators/catalog.h"
#include "operators/corridor.h"
#include "operators/event_decoder.h"
#include "operators/event_normalizer.h"
#include "operators/reference_data.h"
#include "scenario/scenarios.h"

namespace shortfall::scenario {
namespace {

using v1::EventRecord;

TimestampMs ToMs(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * kMsPerSecond + ts.nanos() / 1000000;
}

std::vector<EventRecord> Generate(const GeneratorOptions& options, GeneratorStats* stats = nullptr) {
  Generator generator(options);
  std::vector<EventRecord> records;
  records.reserve(options.events);
  EventRecord record;
  while (generator.Next(&record)) records.push_back(record);
  if (stats != nullptr) *stats = generator.stats();
  return records;
}

// The groups of an HS code, by longest-prefix-free matching against the
// prefixes of data/critical_goods_hs2022_map.csv (all of them: a code under
// two groups' prefixes is in both), plus the two HS 2017 codes it notes.
std::set<std::string> GroupsOf(const v1::GoodsLine& line) {
  static const std::map<std::string, std::vector<std::string>> kPrefixes = {
      {"semiconductors", {"8541", "8542", "8486", "381800", "280461"}},
      {"ppe",
       {"630790", "902000", "401512", "401519", "401590", "392620", "392690", "611610", "621600",
        "621010", "621020", "621030", "621040", "621050", "621142", "650500", "900490", "481850",
        "481890", "902511", "902519", "382211", "382212", "382213", "382219", "300215", "382100",
        "380894", "220710", "220890"}},
      {"batteries",
       {"850760", "850790", "850650", "850780", "283691", "282520", "282739", "283324", "282200",
        "260500", "810520", "250410", "250490", "380110", "750210", "282540", "260200", "282010"}},
      {"pharmaceuticals",
       {"3003", "3004", "3002", "2941", "2936", "2937", "2939", "2933", "2934", "2935", "2942",
        "3006"}},
      {"critical_minerals",
       {"280530", "2846", "284610", "284690", "850511", "261220", "260500", "8105", "2504",
        "283691", "282520", "811292", "811299", "8101", "261100", "261590", "8103", "810411",
        "261710", "8110", "280450", "2602", "8111", "260400", "7502", "280469", "282560",
        "253090", "360690"}},
  };
  std::set<std::string> groups;
  if (line.hs_version() == v1::HS_VERSION_2017) {
    if (line.hs_code() == "401511" || line.hs_code() == "382200") groups.insert("ppe");
    return groups;
  }
  for (const auto& [group, prefixes] : kPrefixes) {
    for (const std::string& prefix : prefixes) {
      if (line.hs_code().rfind(prefix, 0) == 0) groups.insert(group);
    }
  }
  return groups;
}

// The reasons a record is invalid, checked the way the operators' validators
// do (operators/event_normalizer.cc), but collecting every problem instead
// of stopping at the first.
std::set<std::string> Problems(const EventRecord& record) {
  std::set<std::string> problems;
  if (record.has_raw_value()) {
    const std::string& raw = record.raw_value();
    v1::ShipmentEvent shipment;
    v1::CustomsEvent customs;
    const bool parses = record.topic() == "customs.events.v1" ? customs.ParseFromString(raw)
                                                              : shipment.ParseFromString(raw);
    if (!parses && (raw.empty() || raw[0] != '{')) problems.insert("unparseable");
    if (parses) problems.insert("raw value parses");
    return problems;
  }
  const bool customs = record.has_customs();
  const std::string& id = customs ? record.customs().declaration_id() : record.shipment().shipment_id();
  if (id.empty()) problems.insert("missing_id");
  const auto& event_time = customs ? record.customs().event_time() : record.shipment().event_time();
  const auto& publish_time =
      customs ? record.customs().publish_time() : record.shipment().publish_time();
  if (ToMs(event_time) > ToMs(publish_time) + kMsPerHour) problems.insert("future_timestamp");
  const v1::Corridor& corridor = customs ? record.customs().corridor() : record.shipment().corridor();
  if (!operators::IsIsoCountry(corridor.origin_country()) ||
      !operators::IsIsoCountry(corridor.destination_country())) {
    problems.insert("unknown_country");
  }
  if (!operators::IsPortCode(corridor.port_of_entry())) problems.insert("malformed_port");
  const auto& goods = customs ? record.customs().goods() : record.shipment().goods();
  for (const v1::GoodsLine& g : goods) {
    if (g.hs_code().empty()) {
      problems.insert("missing_hs_code");
    } else if (g.hs_code().size() < 6 || g.hs_code().size() > 10 ||
               !std::all_of(g.hs_code().begin(), g.hs_code().end(),
                            [](char c) { return c >= '0' && c <= '9'; })) {
      problems.insert("malformed_hs_code");
    }
    if (!operators::LookupUnitCode(g.unit())) problems.insert("unknown_unit");
    if (g.quantity() <= 0 || g.gross_weight_kg() < 0 || g.declared_value() < 0) {
      problems.insert("negative_quantity");
    }
    if (g.quantity() > 1e9) problems.insert("absurd_quantity");
    const auto rates = operators::DefaultUsdRates();
    if (std::none_of(rates.begin(), rates.end(),
                     [&](const auto& rate) { return rate.first == g.currency(); })) {
      problems.insert("unknown_currency");
    }
  }
  const bool arri = !customs && record.shipment().event_type_code() == "ARRI";
  if ((customs || arri) && goods.empty()) problems.insert("no_goods");
  return problems;
}

TimestampMs EventTime(const EventRecord& record) {
  return record.has_customs() ? ToMs(record.customs().event_time())
                              : ToMs(record.shipment().event_time());
}

// A valid ARRI: malformed records use shipment ids "SF9..." (or none).
bool IsArrival(const EventRecord& r) {
  return r.has_shipment() && r.shipment().event_type_code() == "ARRI" &&
         !r.shipment().shipment_id().empty() && !r.shipment().shipment_id().starts_with("SF9");
}

TEST(Generator, SameSeedGivesIdenticalRecords) {
  // Given options with every feature switched on
  GeneratorOptions options;
  options.seed = 42;
  options.events = 30000;
  options.malformed_rate = 0.01;
  options.late_rate = 0.005;
  options.disruptions.push_back(
      {"batteries", "3801", kDefaultStart + kMsPerDay, kDefaultStart + 3 * kMsPerDay, 0.3});
  // When two generators run them
  const std::vector<EventRecord> a = Generate(options);
  const std::vector<EventRecord> b = Generate(options);
  // Then they produce the same bytes
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].SerializeAsString(), b[i].SerializeAsString()) << "record " << i;
  }
}

TEST(Generator, DifferentSeedsGiveDifferentRecords) {
  GeneratorOptions options;
  options.events = 2000;
  const std::vector<EventRecord> a = Generate(options);
  options.seed = 2;
  const std::vector<EventRecord> b = Generate(options);
  size_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].SerializeAsString() == b[i].SerializeAsString()) ++same;
  }
  EXPECT_LT(same, a.size() / 100);
}

TEST(Generator, ProducesExactlyTheRequestedNumberOfRecords) {
  // Given a request for 12345 records
  GeneratorOptions options;
  options.events = 12345;
  options.malformed_rate = 0.02;
  Generator generator(options);
  EventRecord record;
  uint64_t n = 0;
  // When it is drained
  while (generator.Next(&record)) ++n;
  // Then it gave exactly that many, stays done, and the stats add up
  EXPECT_EQ(n, 12345u);
  EXPECT_FALSE(generator.Next(&record));
  const GeneratorStats& stats = generator.stats();
  EXPECT_EQ(stats.records, 12345u);
  uint64_t malformed = 0;
  for (const auto& [reason, count] : stats.malformed_by_reason) malformed += count;
  EXPECT_EQ(stats.shipment_events + stats.customs_events + malformed, stats.records);
}

TEST(Generator, ZeroEventsProducesNothing) {
  GeneratorOptions options;
  options.events = 0;
  Generator generator(options);
  EventRecord record;
  EXPECT_FALSE(generator.Next(&record));
}

TEST(Generator, PartitionsAreInRangeAndStablePerKey) {
  // Given 5 partitions
  GeneratorOptions options;
  options.events = 20000;
  options.partitions = 5;
  // When records are generated
  std::map<std::pair<std::string, std::string>, int32_t> seen;
  for (const EventRecord& r : Generate(options)) {
    // Then every partition is in range, is the key's FNV-1a partition, and
    // the key is the event's id
    ASSERT_GE(r.partition(), 0);
    ASSERT_LT(r.partition(), 5);
    EXPECT_EQ(r.partition(), PartitionForKey(r.key(), 5));
    auto [it, inserted] = seen.emplace(std::make_pair(r.topic(), r.key()), r.partition());
    EXPECT_EQ(it->second, r.partition());
    if (r.has_shipment()) {
      EXPECT_EQ(r.key(), r.shipment().shipment_id());
    }
    if (r.has_customs()) {
      EXPECT_EQ(r.key(), r.customs().declaration_id());
    }
  }
  // And keys spread over every partition of both topics
  std::set<std::pair<std::string, int32_t>> used;
  for (const auto& [topic_key, partition] : seen) used.emplace(topic_key.first, partition);
  EXPECT_EQ(used.size(), 10u);
}

TEST(Generator, PartitionForKeyIsFnv1a64) {
  // FNV-1a 64 of "" is the offset basis 0xcbf29ce484222325; of "a" 0xaf63dc4c8601ec8c.
  EXPECT_EQ(PartitionForKey("", 1000), static_cast<int32_t>(0xcbf29ce484222325ULL % 1000));
  EXPECT_EQ(PartitionForKey("a", 1000), static_cast<int32_t>(0xaf63dc4c8601ec8cULL % 1000));
}

TEST(Generator, EveryShipmentFollowsTheEventSequenceAndItsArrivalCarriesGoods) {
  GeneratorOptions options;
  options.events = 60000;
  options.malformed_rate = 0;
  options.late_rate = 0;
  std::map<std::string, std::vector<std::pair<TimestampMs, std::string>>> by_shipment;
  for (const EventRecord& r : Generate(options)) {
    if (r.has_shipment()) {
      const v1::ShipmentEvent& e = r.shipment();
      EXPECT_EQ(e.event_classifier(), v1::EVENT_CLASSIFIER_ACTUAL);
      EXPECT_TRUE(e.mode_of_transport() == "TRUCK" || e.mode_of_transport() == "RAIL");
      if (e.event_type_code() == "ARRI") {
        EXPECT_GE(e.goods_size(), 1);
        EXPECT_LE(e.goods_size(), 3);
        EXPECT_EQ(e.facility_type(), "BOCR");
        EXPECT_EQ(e.event_class(), v1::EVENT_CLASS_TRANSPORT);
      }
      if (e.event_type_code() == "GTOT") {
        EXPECT_EQ(e.event_class(), v1::EVENT_CLASS_EQUIPMENT);
        EXPECT_EQ(e.equipment_reference().size(), 11u);
      }
      by_shipment[e.shipment_id()].emplace_back(ToMs(e.event_time()), e.event_type_code());
    } else {
      const v1::CustomsEvent& e = r.customs();
      EXPECT_GE(e.goods_size(), 1);
      EXPECT_FALSE(e.authority().empty());
      EXPECT_FALSE(e.authority_status_code().empty());
      by_shipment[e.shipment_id()].emplace_back(ToMs(e.event_time()),
                                                v1::CustomsStatus_Name(e.status()));
    }
  }
  // Shipments whose events all fell inside the run: DEPA, FILED, ARRI,
  // [EXAM_SELECTED], [HOLD, HOLD_RELEASED], RELEASED, GTOT in event-time order.
  size_t complete = 0, inspected = 0;
  for (auto& [id, events] : by_shipment) {
    std::sort(events.begin(), events.end());
    if (events.front().second != "DEPA" || events.back().second != "GTOT") continue;
    ++complete;
    std::vector<std::string> codes;
    for (const auto& e : events) codes.push_back(e.second);
    ASSERT_GE(codes.size(), 5u) << id;
    EXPECT_EQ(codes[1], "CUSTOMS_STATUS_FILED") << id;
    EXPECT_EQ(codes[2], "ARRI") << id;
    EXPECT_EQ(codes[codes.size() - 2], "CUSTOMS_STATUS_RELEASED") << id;
    if (codes.size() > 5) ++inspected;
    for (size_t i = 1; i < events.size(); ++i) EXPECT_LT(events[i - 1].first, events[i].first) << id;
  }
  EXPECT_GT(complete, 8000u);
  // About 4% of shipments are examined or held.
  EXPECT_GT(inspected, complete * 2 / 100);
  EXPECT_LT(inspected, complete * 7 / 100);
}

TEST(Generator, RecordsComeOutInPublishTimeOrderWithEventIdsUnique) {
  GeneratorOptions options;
  options.events = 50000;
  options.malformed_rate = 0.01;
  options.late_rate = 0.01;
  TimestampMs last = kMinTimestamp;
  std::set<std::string> event_ids;
  for (const EventRecord& r : Generate(options)) {
    const TimestampMs t = ToMs(r.record_time());
    ASSERT_GE(t, last);
    last = t;
    if (r.has_raw_value()) continue;
    const std::string& event_id = r.has_shipment() ? r.shipment().event_id() : r.customs().event_id();
    EXPECT_TRUE(event_ids.insert(event_id).second) << event_id;
    const TimestampMs publish =
        ToMs(r.has_shipment() ? r.shipment().publish_time() : r.customs().publish_time());
    if (Problems(r).count("future_timestamp") == 0) {
      EXPECT_EQ(publish, t);
    }
  }
}

TEST(Generator, MalformedRecordsAreCountedAndEachKindAppears) {
  // Given a long run with 1% malformed records
  GeneratorOptions options;
  options.events = 200000;
  options.malformed_rate = 0.01;
  GeneratorStats stats;
  const std::vector<EventRecord> records = Generate(options, &stats);
  // Then every kind appears, often, and the counts match the records
  ASSERT_EQ(stats.malformed_by_reason.size(), kMalformedReasons.size());
  uint64_t total = 0;
  for (std::string_view reason : kMalformedReasons) {
    const uint64_t count = stats.malformed_by_reason.at(std::string(reason));
    EXPECT_GT(count, 50u) << reason;
    total += count;
  }
  EXPECT_NEAR(static_cast<double>(total), 0.01 * static_cast<double>(stats.records), 0.002 * 200000);
  EXPECT_EQ(total, stats.records - stats.shipment_events - stats.customs_events);
}

TEST(Generator, EachMalformedRecordIsInvalidForExactlyItsReasonAndValidRecordsAreClean) {
  // Given a run with 2% malformed records
  GeneratorOptions options;
  options.events = 100000;
  options.malformed_rate = 0.02;
  GeneratorStats stats;
  const std::vector<EventRecord> records = Generate(options, &stats);
  // When every record is validated, collecting all problems
  std::map<std::string, uint64_t> found;
  for (const EventRecord& r : records) {
    const std::set<std::string> problems = Problems(r);
    // Then no record has more than one problem
    ASSERT_LE(problems.size(), 1u) << r.ShortDebugString();
    if (!problems.empty()) ++found[*problems.begin()];
    // And malformed records live in their own id space
    if (!problems.empty() && !r.has_raw_value() && !r.key().empty()) {
      const std::string& shipment_id =
          r.has_shipment() ? r.shipment().shipment_id() : r.customs().shipment_id();
      EXPECT_TRUE(shipment_id.starts_with("SF9")) << shipment_id;
    }
  }
  // And the problems found are exactly the malformed records counted
  for (const auto& [reason, count] : stats.malformed_by_reason) {
    EXPECT_EQ(found[reason], count) << reason;
  }
  EXPECT_EQ(found.count("no_goods"), 0u);
  EXPECT_EQ(found.count("raw value parses"), 0u);
}

TEST(Generator, LateRecordsAreBeyondAllowedLatenessAndOthersAreNot) {
  // Given 1% late and 5% out-of-order records against a 2 h allowed lateness
  GeneratorOptions options;
  options.events = 100000;
  options.late_rate = 0.01;
  options.out_of_order_rate = 0.05;
  options.malformed_rate = 0.01;
  options.allowed_lateness = 2 * kMsPerHour;
  GeneratorStats stats;
  const std::vector<EventRecord> records = Generate(options, &stats);
  // When each record is compared with its partition's running maximum event time
  std::map<std::pair<std::string, int32_t>, TimestampMs> max_event_time;
  uint64_t late = 0, behind = 0;
  for (const EventRecord& r : records) {
    if (r.has_raw_value()) continue;
    const TimestampMs t = EventTime(r);
    auto [it, inserted] = max_event_time.emplace(std::make_pair(r.topic(), r.partition()), t);
    const TimestampMs max = inserted ? t : it->second;
    if (t < max - options.allowed_lateness) {
      // Then a record behind the watermark is a held-back one, behind by
      // more than the lateness plus an hour
      ++late;
      EXPECT_LT(t + options.allowed_lateness + kMsPerHour, max);
    }
    if (t < max) ++behind;
    if (Problems(r).empty()) it->second = std::max(it->second, t);
    // And malformed records never raise the maximum
    if (!Problems(r).empty()) {
      EXPECT_LE(t, max);
    }
  }
  // And exactly the counted late records are late; out-of-order ones are not
  EXPECT_EQ(late, stats.late);
  EXPECT_GT(stats.late, 500u);
  EXPECT_GT(stats.out_of_order, 3000u);
  EXPECT_GT(behind, stats.out_of_order);
}

// ARRI counts per UTC hour over whole weeks.
TEST(Generator, WeekdayHoursCarryMoreShipmentsThanWeekendHours) {
  GeneratorOptions options;
  options.events = 200000;
  std::map<int64_t, uint64_t> per_hour;
  TimestampMs last = 0;
  for (const EventRecord& r : Generate(options)) {
    if (!IsArrival(r)) continue;
    const TimestampMs t = EventTime(r);
    ++per_hour[(t - options.start) / kMsPerHour];
    last = std::max(last, t);
  }
  const int64_t weeks = (last - options.start) / (7 * kMsPerDay);
  ASSERT_GE(weeks, 4);
  double weekday = 0, weekend = 0;
  for (int64_t h = 0; h < weeks * 7 * 24; ++h) {
    const int64_t day_of_week = h / 24 % 7;  // start is a Monday
    (day_of_week < 5 ? weekday : weekend) += static_cast<double>(per_hour[h]);
  }
  const double weekday_hourly = weekday / static_cast<double>(weeks * 5 * 24);
  const double weekend_hourly = weekend / static_cast<double>(weeks * 2 * 24);
  EXPECT_GT(weekday_hourly, 1.5 * weekend_hourly);
  // And nights are quieter than afternoons at Laredo (UTC-6: 03:00 local is 09 UTC).
  uint64_t night = 0, afternoon = 0;
  for (const auto& [h, n] : per_hour) {
    if (h % 24 == 9) night += n;
    if (h % 24 == 20) afternoon += n;
  }
  EXPECT_GT(afternoon, 3 * night);
}

struct Window {
  TimestampMs start;
  TimestampMs end;
};

// ARRI per (group, port) inside `window`; a shipment counts once per group.
std::map<std::pair<std::string, std::string>, uint64_t> ArrivalsByGroupAndPort(
    const std::vector<EventRecord>& records, Window window) {
  std::map<std::pair<std::string, std::string>, uint64_t> counts;
  for (const EventRecord& r : records) {
    if (!IsArrival(r)) continue;
    const TimestampMs t = EventTime(r);
    if (t < window.start || t >= window.end) continue;
    std::set<std::string> groups;
    for (const v1::GoodsLine& g : r.shipment().goods()) {
      const std::set<std::string> line_groups = GroupsOf(g);
      groups.insert(line_groups.begin(), line_groups.end());
      if (line_groups.empty()) groups.insert("unclassified");
    }
    for (const std::string& group : groups) {
      ++counts[{group, r.shipment().corridor().port_of_entry()}];
    }
  }
  return counts;
}

TEST(Generator, DisruptionCutsItsGroupOnItsPortDuringItsWindowAndNothingElse) {
  // Given a scenario, and the same with semiconductors at Laredo cut to 10%
  // in its second week
  GeneratorOptions options;
  options.events = 200000;
  const Window window{options.start + 7 * kMsPerDay, options.start + 14 * kMsPerDay};
  const auto before = ArrivalsByGroupAndPort(Generate(options), window);
  options.disruptions.push_back({"semiconductors", "2304", window.start, window.end, 0.1});
  const auto after = ArrivalsByGroupAndPort(Generate(options), window);
  // Then that group's arrivals there fall by well over half
  const uint64_t base = before.at({"semiconductors", "2304"});
  ASSERT_GT(base, 60u);
  EXPECT_LT(after.at({"semiconductors", "2304"}), base * 3 / 10);
  // And every other (group, port) is unchanged, to the shipment (unclassified
  // goods at Laredo excepted: some rode along in the cut semiconductor loads)
  for (const auto& [key, count] : before) {
    if (key.second == "2304" && (key.first == "semiconductors" || key.first == "unclassified")) {
      continue;
    }
    EXPECT_EQ(after.count(key) ? after.at(key) : 0, count) << key.first << " " << key.second;
  }
}

TEST(Generator, AnOriginCountryNarrowsADisruptionToThatOriginsCorridors) {
  // Given a scenario, and the same with semiconductors from Canada cut to
  // 10% (no port named) in its second week
  GeneratorOptions options;
  options.events = 200000;
  const Window window{options.start + 7 * kMsPerDay, options.start + 14 * kMsPerDay};
  const auto before = ArrivalsByGroupAndPort(Generate(options), window);
  Disruption d{"semiconductors", "", window.start, window.end, 0.1};
  d.origin_country = "CA";
  options.disruptions.push_back(d);
  const auto after = ArrivalsByGroupAndPort(Generate(options), window);
  // Then semiconductors at the Canadian ports fall well below a third
  uint64_t canada_before = 0, canada_after = 0;
  for (const char* port : {"3801", "0901", "3802"}) {
    canada_before += before.count({"semiconductors", port}) ? before.at({"semiconductors", port}) : 0;
    canada_after += after.count({"semiconductors", port}) ? after.at({"semiconductors", port}) : 0;
  }
  ASSERT_GT(canada_before, 20u);
  EXPECT_LT(canada_after, canada_before * 3 / 10);
  // And every other origin's (group, port) is unchanged, to the shipment
  for (const auto& [key, count] : before) {
    if (key.second == "3801" || key.second == "0901" || key.second == "3802") continue;
    EXPECT_EQ(after.count(key) ? after.at(key) : 0, count) << key.first << " " << key.second;
  }
}

TEST(Generator, SurgeDisruptionRaisesItsGroup) {
  GeneratorOptions options;
  options.events = 100000;
  const Window window{options.start + 3 * kMsPerDay, options.start + 10 * kMsPerDay};
  const auto before = ArrivalsByGroupAndPort(Generate(options), window);
  options.disruptions.push_back({"pharmaceuticals", "", window.start, window.end, 3.0});
  const auto after = ArrivalsByGroupAndPort(Generate(options), window);
  EXPECT_GT(after.at({"pharmaceuticals", "0901"}), 2 * before.at({"pharmaceuticals", "0901"}));
}

TEST(Generator, CoversEveryGroupAndUnclassifiedGoodsWithPlausibleLines) {
  GeneratorOptions options;
  options.events = 100000;
  std::map<std::string, uint64_t> lines_by_group;
  std::set<std::string> units, currencies;
  uint64_t lines = 0, hs2017 = 0;
  std::set<std::string> hs2017_codes;
  for (const EventRecord& r : Generate(options)) {
    if (!IsArrival(r)) continue;
    // Shipment ids are "SF<corridor><category>...": categories follow kScenarioGroups.
    const int category = r.shipment().shipment_id()[3] - '0';
    for (const v1::GoodsLine& g : r.shipment().goods()) {
      ++lines;
      const std::set<std::string> groups = GroupsOf(g);
      // Each line is in at most one group, the shipment's own (or unclassified)
      ASSERT_LE(groups.size(), 1u) << g.hs_code();
      const std::string group = groups.empty() ? "unclassified" : *groups.begin();
      ++lines_by_group[group];
      if (!groups.empty()) {
        EXPECT_EQ(group, kScenarioGroups[static_cast<size_t>(category)]);
      }
      EXPECT_EQ(g.hs_code().size(), 6u);
      EXPECT_GT(g.quantity(), 0);
      EXPECT_GT(g.gross_weight_kg(), 0);
      EXPECT_GT(g.declared_value(), 0);
      EXPECT_FALSE(g.description().empty());
      units.insert(g.unit());
      currencies.insert(g.currency());
      if (g.hs_version() == v1::HS_VERSION_2017) {
        ++hs2017;
        hs2017_codes.insert(g.hs_code());
      } else {
        EXPECT_EQ(g.hs_version(), v1::HS_VERSION_2022);
      }
    }
  }
  for (std::string_view group : kScenarioGroups) {
    EXPECT_GT(lines_by_group[std::string(group)], 100u) << group;
  }
  EXPECT_GT(lines_by_group["unclassified"], lines / 2);
  // Some lines are coded in HS 2017, with codes that changed in HS 2022
  EXPECT_GT(hs2017, lines / 200);
  EXPECT_LT(hs2017, lines / 20);
  EXPECT_EQ(hs2017_codes, (std::set<std::string>{"382200", "401511", "851712"}));
  // Units and currencies are all ones the operators know; most value is in USD
  for (const std::string& unit : units) EXPECT_TRUE(operators::LookupUnitCode(unit)) << unit;
  EXPECT_GE(units.size(), 12u);
  EXPECT_TRUE(currencies.count("USD") && currencies.count("MXN") && currencies.count("CAD"));
}

TEST(Generator, OperatorsRejectEachMalformedRecordForItsReasonAndAcceptTheRest) {
  // Given a run with 2% malformed records, and the operators' own decoder,
  // validator and compiled-in catalog
  GeneratorOptions options;
  options.events = 60000;
  options.malformed_rate = 0.02;
  GeneratorStats stats;
  const std::vector<EventRecord> records = Generate(options, &stats);
  const operators::Catalog& catalog = operators::Catalog::Default();
  operators::CorridorTable corridors;
  operators::EventNormalizer normalizer(catalog, operators::NormalizerOptions(), &corridors);
  operators::Classifier classifier(catalog);
  std::map<std::string, uint64_t> rejected;
  std::set<std::string> groups_seen;
  v1::ShipmentEvent shipment;
  v1::CustomsEvent customs;
  operators::NormalizedEvent normalized;
  for (const EventRecord& r : records) {
    // When each record is decoded and validated
    std::optional<operators::Invalid> bad;
    const bool is_customs = r.topic() == options.customs_topic;
    if (r.has_raw_value()) {
      bad = is_customs ? operators::DecodeCustomsEvent(r.raw_value(), operators::PayloadFormat::kAuto,
                                                       &customs)
                       : operators::DecodeShipmentEvent(r.raw_value(),
                                                        operators::PayloadFormat::kAuto, &shipment);
      ASSERT_TRUE(bad.has_value());
    } else if (r.has_customs()) {
      bad = normalizer.Normalize(r.customs(), ToMs(r.record_time()), &normalized);
    } else {
      bad = normalizer.Normalize(r.shipment(), ToMs(r.record_time()), &normalized);
    }
    if (bad) {
      ++rejected[std::string(operators::InvalidReasonName(bad->reason))];
      continue;
    }
    // Then valid goods lines fall in at most one group, their shipment's own
    const auto& goods = r.has_customs() ? r.customs().goods() : r.shipment().goods();
    const std::string& id = r.has_customs() ? r.customs().shipment_id() : r.shipment().shipment_id();
    for (const v1::GoodsLine& g : goods) {
      const operators::GroupMask mask = classifier.Classify(
          static_cast<uint32_t>(std::stoul(g.hs_code())),
          g.hs_version() == v1::HS_VERSION_2017 ? operators::HsRevision::k2017
                                                : operators::HsRevision::k2022);
      ASSERT_EQ(mask & (mask - 1), 0u) << g.hs_code();
      if (mask == 0) continue;
      const std::string group(catalog.group_name(static_cast<operators::GroupId>(
          __builtin_ctzll(mask))));
      groups_seen.insert(group);
      EXPECT_EQ(group, kScenarioGroups[static_cast<size_t>(id[3] - '0')]) << g.hs_code();
    }
  }
  // And the operators reject exactly the malformed records, each for its reason
  std::map<std::string, uint64_t> injected = stats.malformed_by_reason;
  std::erase_if(injected, [](const auto& kv) { return kv.second == 0; });
  EXPECT_EQ(rejected, injected);
  EXPECT_EQ(groups_seen.size(), kScenarioGroups.size());
}

TEST(Generator, MalformedLateAndOutOfOrderRatesDoNotChangeTheShipments) {
  // Given the same seed with and without injected faults
  GeneratorOptions options;
  options.events = 40000;
  options.malformed_rate = 0;
  options.late_rate = 0;
  options.out_of_order_rate = 0;
  std::set<std::string> clean;
  TimestampMs clean_end = 0;
  for (const EventRecord& r : Generate(options)) {
    if (!IsArrival(r)) continue;
    clean.insert(r.shipment().shipment_id() + "@" +
                 std::to_string(EventTime(r)) + "#" + r.shipment().goods(0).hs_code());
    clean_end = std::max(clean_end, EventTime(r));
  }
  options.malformed_rate = 0.05;
  options.late_rate = 0.01;
  options.out_of_order_rate = 0.05;
  std::set<std::string> faulty;
  for (const EventRecord& r : Generate(options)) {
    if (!IsArrival(r) || EventTime(r) > clean_end - kMsPerDay) continue;
    faulty.insert(r.shipment().shipment_id() + "@" + std::to_string(EventTime(r)) + "#" +
                  r.shipment().goods(0).hs_code());
  }
  // Then the valid arrivals are the same shipments at the same times
  ASSERT_GT(faulty.size(), 5000u);
  for (const std::string& s : faulty) EXPECT_TRUE(clean.count(s)) << s;
}

TEST(Generator, CorridorsCoverTheNorthAmericanBordersAtVeryDifferentRates) {
  const auto corridors = ScenarioCorridors();
  std::set<std::string> directions;
  double fastest = 0, slowest = 1e9;
  for (const ScenarioCorridor& c : corridors) {
    directions.insert(std::string(c.origin_country) + ">" + std::string(c.destination_country));
    EXPECT_TRUE(operators::IsPortCode(c.port_of_entry)) << c.port_of_entry;
    double share = 0;
    for (double s : c.category_share) share += s;
    EXPECT_NEAR(share, 1.0, 1e-9) << c.name;
    fastest = std::max(fastest, c.shipments_per_day);
    slowest = std::min(slowest, c.shipments_per_day);
  }
  EXPECT_EQ(directions, (std::set<std::string>{"MX>US", "CA>US", "US>MX", "US>CA"}));
  EXPECT_GT(fastest, 50 * slowest);
}

TEST(ValidateOptions, AcceptsTheDefaults) { EXPECT_TRUE(ValidateOptions(GeneratorOptions()).ok()); }

TEST(ValidateOptions, RejectsBadOptionsNamingTheField) {
  auto error_of = [](auto mutate) {
    GeneratorOptions options;
    mutate(options);
    return ValidateOptions(options).message();
  };
  EXPECT_NE(error_of([](GeneratorOptions& o) { o.partitions = 0; }).find("partitions"),
            std::string::npos);
  EXPECT_NE(error_of([](GeneratorOptions& o) { o.late_rate = 2; }).find("late_rate"),
            std::string::npos);
  EXPECT_NE(error_of([](GeneratorOptions& o) { o.allowed_lateness = -1; }).find("allowed_lateness"),
            std::string::npos);
  EXPECT_NE(error_of([](GeneratorOptions& o) {
              o.disruptions.push_back({"chips", "", 0, kDefaultStart, 0.5});
            }).find("disruptions[0].group"),
            std::string::npos);
  EXPECT_NE(error_of([](GeneratorOptions& o) {
              o.disruptions.push_back({"ppe", "9999", 0, kDefaultStart, 0.5});
            }).find("disruptions[0].port_of_entry"),
            std::string::npos);
  EXPECT_NE(error_of([](GeneratorOptions& o) {
              o.disruptions.push_back({"ppe", "", kDefaultStart, kDefaultStart, 0.5});
            }).find("disruptions[0].start"),
            std::string::npos);
  EXPECT_NE(error_of([](GeneratorOptions& o) {
              o.disruptions.push_back({"ppe", "", 0, kDefaultStart, -1});
            }).find("disruptions[0].rate_factor"),
            std::string::npos);
}


// ---------------------------------------------------------------------------
// Byte-for-byte stability, and the options added after the first release.

uint64_t Digest(const GeneratorOptions& options) {
  Generator generator(options);
  EventRecord record;
  std::string bytes;
  uint64_t h = 14695981039346656037ULL;  // FNV-1a 64 over every record's bytes
  while (generator.Next(&record)) {
    record.SerializeToString(&bytes);
    for (char c : bytes) {
      h ^= static_cast<uint8_t>(c);
      h *= 1099511628211ULL;
    }
  }
  return h;
}

TEST(Generator, OutputForTheFirstReleasesOptionsIsPinnedByteForByte) {
  // Digests of what `shortfall gen` wrote before rate_scale, shapes, hold and
  // value factors, delivery bursts and idle partitions existed: options that
  // set none of them must keep giving exactly those bytes.
  GeneratorOptions defaults;
  defaults.events = 30000;
  EXPECT_EQ(Digest(defaults), 0xf42780d49fbf308aULL);
  GeneratorOptions faulty;
  faulty.seed = 7;
  faulty.events = 40000;
  faulty.partitions = 3;
  faulty.malformed_rate = 0.02;
  faulty.late_rate = 0.01;
  EXPECT_EQ(Digest(faulty), 0xad81a752bf6213e5ULL);
  const NamedScenario* demo = FindScenario("demo");  // two group disruptions
  ASSERT_NE(demo, nullptr);
  EXPECT_EQ(Digest(demo->options), 0xc39f280d0b8c6b88ULL);
}

TimestampMs LastArrival(const std::vector<EventRecord>& records) {
  TimestampMs last = kMinTimestamp;
  for (const EventRecord& r : records) {
    if (IsArrival(r)) last = std::max(last, EventTime(r));
  }
  return last;
}

// "id@time" of the valid arrivals before `until`.
std::set<std::string> ArrivalIds(const std::vector<EventRecord>& records, TimestampMs until) {
  std::set<std::string> ids;
  for (const EventRecord& r : records) {
    if (IsArrival(r) && EventTime(r) < until) {
      ids.insert(r.shipment().shipment_id() + "@" + std::to_string(EventTime(r)));
    }
  }
  return ids;
}

TEST(Generator, AllGoodsDisruptionClosesEveryCategoryOnItsPortAndNothingElse) {
  // Given a run, and the same with Laredo closed to every good for three days
  GeneratorOptions options;
  options.events = 120000;
  const Window window{options.start + 7 * kMsPerDay, options.start + 10 * kMsPerDay};
  const auto before = ArrivalsByGroupAndPort(Generate(options), window);
  options.disruptions.push_back({std::string(kAllGoods), "2304", window.start, window.end, 0.0});
  const auto after = ArrivalsByGroupAndPort(Generate(options), window);
  // Then nothing at all arrives at Laredo in those days, unclassified goods included
  ASSERT_GT(before.at({"unclassified", "2304"}), 400u);
  ASSERT_GT(before.at({"semiconductors", "2304"}), 30u);
  for (const auto& [key, count] : after) EXPECT_NE(key.second, "2304") << key.first << " " << count;
  // And every other port sees exactly the same shipments
  for (const auto& [key, count] : before) {
    if (key.second == "2304") continue;
    EXPECT_EQ(after.count(key) ? after.at(key) : 0, count) << key.first << " " << key.second;
  }
}

TEST(Generator, RampDeclinesStepByStepFromOneToItsFactor) {
  // Given Laredo's arrivals, and the same with a two-week ramp down to 20%
  GeneratorOptions options;
  options.events = 110000;
  const Window ramp{options.start + 7 * kMsPerDay, options.start + 21 * kMsPerDay};
  const std::vector<EventRecord> base = Generate(options);
  Disruption d{std::string(kAllGoods), "2304", ramp.start, ramp.end, 0.2};
  d.shape = DisruptionShape::kRamp;
  options.disruptions.push_back(d);
  const std::vector<EventRecord> ramped = Generate(options);
  ASSERT_GT(std::min(LastArrival(base), LastArrival(ramped)), ramp.end);
  // When arrivals at Laredo are counted over the ramp's four quarters
  auto quarters = [&](const std::vector<EventRecord>& records) {
    std::array<double, 4> n{};
    for (const EventRecord& r : records) {
      if (!IsArrival(r) || r.shipment().corridor().port_of_entry() != "2304") continue;
      const TimestampMs t = EventTime(r);
      if (t < ramp.start || t >= ramp.end) continue;
      n[static_cast<size_t>((t - ramp.start) * 4 / (ramp.end - ramp.start))] += 1;
    }
    return n;
  };
  const std::array<double, 4> a = quarters(base), b = quarters(ramped);
  // Then each quarter keeps about the ramp's mean factor over it (0.9, 0.7,
  // 0.5, 0.3), each clearly below the one before
  const std::array<double, 4> expected = {0.9, 0.7, 0.5, 0.3};
  for (size_t q = 0; q < 4; ++q) {
    ASSERT_GT(a[q], 500) << q;
    EXPECT_NEAR(b[q] / a[q], expected[q], 0.06) << "quarter " << q;
    if (q > 0) {
      EXPECT_LT(b[q] / a[q], b[q - 1] / a[q - 1] - 0.1) << "quarter " << q;
    }
  }
  // And before the ramp, and on other ports during it, nothing changed
  EXPECT_EQ(ArrivalIds(ramped, ramp.start), ArrivalIds(base, ramp.start));
  const auto other_before = ArrivalsByGroupAndPort(base, ramp);
  const auto other_after = ArrivalsByGroupAndPort(ramped, ramp);
  for (const auto& [key, count] : other_before) {
    if (key.second != "2304") {
      EXPECT_EQ(other_after.at(key), count) << key.first << " " << key.second;
    }
  }
}

// Per shipment id: its arrival (time, port, category digit), and its
// inspection events "STATUS@time".
struct Inspections {
  std::map<std::string, std::pair<TimestampMs, std::string>> arrival_port;
  std::map<std::string, std::set<std::string>> events;
};
Inspections InspectionsOf(const std::vector<EventRecord>& records) {
  Inspections out;
  for (const EventRecord& r : records) {
    if (IsArrival(r)) {
      out.arrival_port[r.shipment().shipment_id()] = {EventTime(r), r.shipment().corridor().port_of_entry()};
    }
    if (!r.has_customs()) continue;
    const v1::CustomsStatus status = r.customs().status();
    if (status == v1::CUSTOMS_STATUS_EXAM_SELECTED || status == v1::CUSTOMS_STATUS_HOLD ||
        status == v1::CUSTOMS_STATUS_HOLD_RELEASED) {
      out.events[r.customs().shipment_id()].insert(v1::CustomsStatus_Name(status) + "@" +
                                                   std::to_string(EventTime(r)));
    }
  }
  return out;
}

TEST(Generator, HoldWaveRaisesInspectionsOnlyForItsGroupPortAndWeek) {
  // Given a run, and the same with a week of six times the exams and holds
  // for ppe at Laredo
  GeneratorOptions options;
  options.events = 120000;
  options.malformed_rate = 0;
  options.late_rate = 0;
  const Window week{options.start + 7 * kMsPerDay, options.start + 14 * kMsPerDay};
  const std::vector<EventRecord> base = Generate(options);
  Disruption d{"ppe", "2304", week.start, week.end, 1.0};
  d.hold_factor = 6;
  options.disruptions.push_back(d);
  const std::vector<EventRecord> wave = Generate(options);
  // (the extra customs events make the capped run end a little earlier)
  const TimestampMs reach = std::min(LastArrival(base), LastArrival(wave)) - kMsPerDay;
  ASSERT_GT(reach, week.end + 3 * kMsPerDay);
  // Then the shipments are the same, everywhere
  EXPECT_EQ(ArrivalIds(wave, reach), ArrivalIds(base, reach));
  const Inspections a = InspectionsOf(base), b = InspectionsOf(wave);
  // And every shipment inspected before is inspected exactly as before
  size_t ppe_laredo = 0, inspected_before = 0, inspected_after = 0, extra = 0;
  for (const auto& [id, arrival] : a.arrival_port) {
    if (arrival.first >= reach) continue;
    const bool in_wave = id[3] == '1' && arrival.second == "2304" && arrival.first >= week.start &&
                         arrival.first < week.end;
    const auto before = a.events.find(id);
    const auto after = b.events.find(id);
    if (before != a.events.end()) {
      ASSERT_NE(after, b.events.end()) << id;
      EXPECT_EQ(after->second, before->second) << id;
    } else if (after != b.events.end()) {
      // And the shipments newly inspected are all ppe at Laredo that week
      EXPECT_TRUE(in_wave) << id << " " << FormatUtc(arrival.first) << " " << arrival.second;
      ++extra;
    }
    if (in_wave) {
      ++ppe_laredo;
      inspected_before += before != a.events.end();
      inspected_after += after != b.events.end();
    }
  }
  // And there about 42% of them are inspected (7% x 6) instead of 7%
  ASSERT_GT(ppe_laredo, 40u);
  EXPECT_GE(extra, 10u);
  const double share = static_cast<double>(inspected_after) / static_cast<double>(ppe_laredo);
  EXPECT_GT(share, 0.25);
  EXPECT_LT(share, 0.6);
  EXPECT_GT(inspected_after, 3 * std::max<size_t>(inspected_before, 1));
}

// Each valid record by event id; without its publish time when
// `clear_publish_time`.
std::map<std::string, EventRecord> ValidById(const std::vector<EventRecord>& records, bool clear_publish_time) {
  std::map<std::string, EventRecord> out;
  for (EventRecord r : records) {
    if (r.has_raw_value() || !Problems(r).empty()) continue;
    if (clear_publish_time) {
      (r.has_customs() ? r.mutable_customs()->mutable_publish_time() : r.mutable_shipment()->mutable_publish_time())
          ->Clear();
    }
    out[r.has_customs() ? r.customs().event_id() : r.shipment().event_id()] = r;
  }
  return out;
}

// The arrival (ARRI) time of each shipment.
std::map<std::string, TimestampMs> ArrivalTimes(const std::vector<EventRecord>& records) {
  std::map<std::string, TimestampMs> out;
  for (const EventRecord& r : records) {
    if (IsArrival(r)) out[r.shipment().shipment_id()] = EventTime(r);
  }
  return out;
}

// Whether `x` is an event of a PPE shipment (category digit 1) at Laredo
// (2304) that arrived in `window`.
bool PpeAtLaredoArrivingIn(const EventRecord& x, const std::map<std::string, TimestampMs>& arrival, Window window) {
  const std::string& shipment = x.has_customs() ? x.customs().shipment_id() : x.shipment().shipment_id();
  const auto it = arrival.find(shipment);
  return shipment[3] == '1' && it != arrival.end() && it->second >= window.start && it->second < window.end &&
         (x.has_customs() ? x.customs().corridor().port_of_entry() : x.shipment().corridor().port_of_entry()) == "2304";
}

TEST(Generator, ValueFactorRaisesUnitValuesOfItsGroupAndChangesNothingElse) {
  // Given a run, and the same with battery prices doubled for four days
  GeneratorOptions options;
  options.events = 60000;
  const Window window{options.start + 5 * kMsPerDay, options.start + 9 * kMsPerDay};
  const std::vector<EventRecord> base = Generate(options);
  Disruption d{"batteries", "", window.start, window.end, 1.0};
  d.value_factor = 2.0;
  options.disruptions.push_back(d);
  const std::vector<EventRecord> dear = Generate(options);
  // Then the runs have the same records in the same order
  ASSERT_EQ(dear.size(), base.size());
  std::map<std::string, TimestampMs> arrival = ArrivalTimes(base);
  size_t changed_lines = 0, battery_arrivals = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    const EventRecord& x = base[i];
    const EventRecord& y = dear[i];
    if (IsArrival(x) && x.shipment().shipment_id()[3] == '2' && EventTime(x) >= window.start &&
        EventTime(x) < window.end) {
      ++battery_arrivals;
    }
    if (x.SerializeAsString() == y.SerializeAsString()) continue;
    // And the only ones that differ belong to battery shipments arriving in
    // the window, and differ only in the declared value of battery lines,
    // which doubled
    ASSERT_FALSE(x.has_raw_value()) << i;
    const std::string& id = x.has_customs() ? x.customs().shipment_id() : x.shipment().shipment_id();
    ASSERT_EQ(id[3], '2') << id;
    ASSERT_TRUE(arrival.count(id)) << id;
    EXPECT_GE(arrival[id], window.start) << id;
    EXPECT_LT(arrival[id], window.end) << id;
    EventRecord restored = y;
    auto* x_goods = x.has_customs() ? &x.customs().goods() : &x.shipment().goods();
    auto* y_goods = restored.has_customs() ? restored.mutable_customs()->mutable_goods()
                                           : restored.mutable_shipment()->mutable_goods();
    ASSERT_EQ(x_goods->size(), y_goods->size());
    for (int g = 0; g < x_goods->size(); ++g) {
      const v1::GoodsLine& before = x_goods->Get(g);
      v1::GoodsLine* after = y_goods->Mutable(g);
      if (GroupsOf(before) == std::set<std::string>{"batteries"}) {
        EXPECT_NEAR(after->declared_value(), 2 * before.declared_value(), 1.0) << id;
        after->set_declared_value(before.declared_value());
        ++changed_lines;
      }
    }
    EXPECT_EQ(restored.SerializeAsString(), x.SerializeAsString()) << id;
  }
  EXPECT_GT(battery_arrivals, 50u);
  EXPECT_GT(changed_lines, battery_arrivals);  // ARRI and customs events carry the lines
}

TEST(Generator, DwellFactorStretchesReleasesOfItsGroupAndPortAndChangesNothingElse) {
  // Given a run, and the same with PPE releases at Laredo taking three times as long for four days
  GeneratorOptions options;
  options.events = 60000;
  const Window window{options.start + 5 * kMsPerDay, options.start + 9 * kMsPerDay};
  const std::vector<EventRecord> base = Generate(options);
  Disruption d{"ppe", "2304", window.start, window.end, 1.0};
  d.dwell_factor = 3.0;
  options.disruptions.push_back(d);
  const std::vector<EventRecord> slow = Generate(options);
  // Each valid event by id, without its publish time (a later release is published later)
  const std::map<std::string, EventRecord> a = ValidById(base, true), b = ValidById(slow, true);
  std::map<std::string, TimestampMs> arrival = ArrivalTimes(base);
  const TimestampMs compared_until = window.end + 3 * kMsPerDay;  // the event cap cuts both runs' tails
  size_t stretched = 0;
  for (const auto& [id, x] : a) {
    if (EventTime(x) >= compared_until) continue;
    auto it = b.find(id);
    const bool targeted = PpeAtLaredoArrivingIn(x, arrival, window);
    const bool moves = targeted && ((x.has_customs() && x.customs().status() == v1::CUSTOMS_STATUS_RELEASED) ||
                                    (x.has_shipment() && x.shipment().event_type_code() == "GTOT"));
    if (it == b.end()) {
      ADD_FAILURE() << id << " missing with the slowdown";
      continue;
    }
    if (!moves) {
      EXPECT_EQ(it->second.SerializeAsString(), x.SerializeAsString()) << id;
      continue;
    }
    // Then the targeted releases come three times as long after their arrival
    if (x.has_customs()) {
      const TimestampMs arri = arrival[x.customs().shipment_id()];
      EXPECT_NEAR(static_cast<double>(EventTime(it->second) - arri), 3.0 * static_cast<double>(EventTime(x) - arri), 1.0)
          << id;
      ++stretched;
    }
  }
  EXPECT_GT(stretched, 20u);  // PPE at Laredo: about ten a weekday
}

TEST(Generator, ReleaseWithheldDropsTheReleasesAndGateOutsOfItsGroupAndPortAndChangesNothingElse) {
  // Given a run, and the same with no PPE released at Laredo for four days
  GeneratorOptions options;
  options.events = 60000;
  const Window window{options.start + 5 * kMsPerDay, options.start + 9 * kMsPerDay};
  const std::vector<EventRecord> base = Generate(options);
  Disruption d{"ppe", "2304", window.start, window.end, 1.0};
  d.release_withheld = true;
  options.disruptions.push_back(d);
  const std::vector<EventRecord> withheld = Generate(options);
  const std::map<std::string, EventRecord> a = ValidById(base, false), b = ValidById(withheld, false);
  std::map<std::string, TimestampMs> arrival = ArrivalTimes(base);
  const TimestampMs compared_until = window.end + 3 * kMsPerDay;  // the event cap cuts both runs' tails
  size_t dropped = 0;
  size_t kept_arrivals = 0;
  for (const auto& [id, x] : a) {
    if (EventTime(x) >= compared_until) continue;
    const bool targeted = PpeAtLaredoArrivingIn(x, arrival, window);
    const bool release = (x.has_customs() && x.customs().status() == v1::CUSTOMS_STATUS_RELEASED) ||
                         (x.has_shipment() && x.shipment().event_type_code() == "GTOT");
    auto it = b.find(id);
    if (targeted && release) {
      // Then the targeted releases and gate-outs are not written
      EXPECT_EQ(it, b.end()) << id;
      ++dropped;
      continue;
    }
    // and every other record is the same, publish time included
    if (it == b.end()) {
      ADD_FAILURE() << id << " missing with the releases withheld";
      continue;
    }
    EXPECT_EQ(it->second.SerializeAsString(), x.SerializeAsString()) << id;
    kept_arrivals += targeted && IsArrival(x);
  }
  EXPECT_GT(dropped, 40u);  // PPE at Laredo: about ten a weekday, two records each
  EXPECT_GT(kept_arrivals, 20u);
}

// Valid records behind their partition's maximum event time by more than
// the lateness (late) or by more than 20 min, twice the longest usual
// publish delay (out of order, or late), counted by whether their event
// time is in `window`.
struct DeliveryCounts {
  uint64_t late_in = 0, behind_in = 0, valid_in = 0;
  std::set<std::string> late_out;  // event ids, outside the window, before `until`
};
DeliveryCounts CountDelivery(const std::vector<EventRecord>& records, Window window, TimestampMs until,
                             DurationMs lateness) {
  DeliveryCounts out;
  std::map<std::pair<std::string, int32_t>, TimestampMs> max_event_time;
  for (const EventRecord& r : records) {
    if (r.has_raw_value() || !Problems(r).empty()) continue;
    const TimestampMs t = EventTime(r);
    auto [it, inserted] = max_event_time.emplace(std::make_pair(r.topic(), r.partition()), t);
    const bool in = t >= window.start && t < window.end;
    const bool late = t < it->second - lateness;
    if (in) {
      ++out.valid_in;
      out.late_in += late;
      out.behind_in += t < it->second - 20 * kMsPerMinute;
    } else if (late && t < until) {
      out.late_out.insert(r.has_customs() ? r.customs().event_id() : r.shipment().event_id());
    }
    it->second = std::max(it->second, t);
  }
  return out;
}

TEST(Generator, DeliveryBurstRaisesLateAndOutOfOrderOnlyInItsWindow) {
  // Given a run, and the same with two days of 5% late and 30% out-of-order records
  GeneratorOptions options;
  options.events = 80000;
  options.malformed_rate = 0;
  options.late_rate = 0.002;
  const Window window{options.start + 7 * kMsPerDay, options.start + 9 * kMsPerDay};  // Mon, Tue
  GeneratorStats base_stats, burst_stats;
  const std::vector<EventRecord> base = Generate(options, &base_stats);
  options.delivery_bursts.push_back(
      DeliveryBurst{.start = window.start, .end = window.end, .late_rate = 0.05, .out_of_order_rate = 0.3});
  const std::vector<EventRecord> burst = Generate(options, &burst_stats);
  const TimestampMs until = std::min(LastArrival(base), LastArrival(burst)) - 3 * kMsPerDay;
  ASSERT_GT(until, window.end + 3 * kMsPerDay);
  // Then the shipments are the same
  EXPECT_EQ(ArrivalIds(burst, until), ArrivalIds(base, until));
  const DeliveryCounts a = CountDelivery(base, window, until, options.allowed_lateness);
  const DeliveryCounts b = CountDelivery(burst, window, until, options.allowed_lateness);
  // And in the window about 5% of records come late and many more out of order
  ASSERT_GT(b.valid_in, 5000u);
  EXPECT_NEAR(static_cast<double>(b.late_in) / static_cast<double>(b.valid_in), 0.05, 0.01);
  EXPECT_LT(a.late_in * 5, b.late_in);
  EXPECT_GT(b.behind_in, 4 * a.behind_in);
  EXPECT_GT(static_cast<double>(b.behind_in), 0.25 * static_cast<double>(b.valid_in));
  // And outside it the very same records are late as without the burst
  EXPECT_GT(a.late_out.size(), 20u);
  EXPECT_EQ(b.late_out, a.late_out);
  EXPECT_GT(burst_stats.late, base_stats.late + 300);
}

TEST(Generator, IdlePartitionGetsNoShipmentRecordsFromItsTimeAndItsRecordsMoveNextDoor) {
  // Given 4 partitions, with late and malformed records, and shipments
  // partition 1 going idle on day 5
  GeneratorOptions options;
  options.events = 60000;
  options.partitions = 4;
  options.late_rate = 0.01;
  options.malformed_rate = 0.01;
  const TimestampMs from = options.start + 5 * kMsPerDay;
  options.idle_partition = IdlePartition{.partition = 1, .from = from};
  GeneratorStats stats;
  const std::vector<EventRecord> records = Generate(options, &stats);
  // Then the cap and the order still hold
  EXPECT_EQ(records.size(), 60000u);
  EXPECT_EQ(stats.records, 60000u);
  uint64_t on_idle_before = 0, moved = 0, customs_on_1_after = 0;
  TimestampMs last = kMinTimestamp;
  for (const EventRecord& r : records) {
    const TimestampMs t = ToMs(r.record_time());
    ASSERT_GE(t, last);
    last = t;
    const bool shipments = r.topic() == options.shipments_topic;
    if (!shipments) {
      EXPECT_EQ(r.partition(), PartitionForKey(r.key(), 4));
      customs_on_1_after += r.partition() == 1 && t >= from;
      continue;
    }
    // And nothing reaches shipments partition 1 from `from` on; what would
    // have goes to partition 2
    if (r.partition() == 1) {
      EXPECT_LT(t, from) << r.ShortDebugString();
      ++on_idle_before;
    }
    const int32_t own = PartitionForKey(r.key(), 4);
    if (own == 1 && t >= from) {
      EXPECT_EQ(r.partition(), 2);
      ++moved;
    } else {
      EXPECT_EQ(r.partition(), own);
    }
  }
  EXPECT_GT(last, from + 3 * kMsPerDay);
  EXPECT_GT(on_idle_before, 1000u);
  EXPECT_GT(moved, 1000u);
  EXPECT_GT(customs_on_1_after, 1000u);
}

TEST(Generator, IdlePartitionChangesOnlyPartitions) {
  // Given no late or malformed records (whose placement depends on each
  // partition's newest event), a run with and without an idle partition
  GeneratorOptions options;
  options.events = 40000;
  options.partitions = 3;
  options.late_rate = 0;
  options.malformed_rate = 0;
  const std::vector<EventRecord> base = Generate(options);
  options.idle_partition = IdlePartition{.partition = 0, .from = options.start + 4 * kMsPerDay};
  const std::vector<EventRecord> idle = Generate(options);
  // Then the records are the same, in the same order, but for their partition
  ASSERT_EQ(idle.size(), base.size());
  size_t moved = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    EventRecord x = base[i], y = idle[i];
    moved += x.partition() != y.partition();
    x.clear_partition();
    y.clear_partition();
    ASSERT_EQ(x.SerializeAsString(), y.SerializeAsString()) << i;
  }
  EXPECT_GT(moved, 1000u);
}

TEST(Generator, RateScaleMultipliesEveryCorridorsArrivals) {
  // Given a run at the default rates and one at three times them
  GeneratorOptions options;
  options.events = 40000;
  const Window week{options.start + kMsPerDay, options.start + 8 * kMsPerDay};
  const auto base = ArrivalsByGroupAndPort(Generate(options), week);
  options.rate_scale = 3;
  options.events = 120000;
  const auto scaled = ArrivalsByGroupAndPort(Generate(options), week);
  // Then every busy (group, port) sees about three times the shipments:
  // within 4 standard deviations of the ratio of two Poisson counts (the
  // day and hour factors are the same draws in both runs)
  size_t checked = 0;
  for (const auto& [key, count] : base) {
    if (count < 300) continue;
    ++checked;
    const double n = static_cast<double>(count);
    EXPECT_NEAR(static_cast<double>(scaled.at(key)) / n, 3.0, 4 * 3.0 * std::sqrt(4.0 / (3.0 * n)))
        << key.first << " " << key.second;
  }
  EXPECT_GE(checked, 5u);
}

TEST(ValidateOptions, ChecksTheNewerFieldsNamingThem) {
  auto error_of = [](auto mutate) {
    GeneratorOptions options;
    mutate(options);
    return ValidateOptions(options).message();
  };
  // Given every newer field set to something valid, it validates
  GeneratorOptions valid;
  valid.disruptions.push_back({std::string(kAllGoods), "2304", kDefaultStart, kDefaultStart + 1, 0});
  valid.disruptions.back().shape = DisruptionShape::kRamp;
  valid.disruptions.back().hold_factor = 5;
  valid.disruptions.back().value_factor = 0.5;
  valid.disruptions.back().origin_country = "MX";
  valid.rate_scale = 10;
  valid.delivery_bursts.push_back({.start = kDefaultStart, .end = kDefaultStart + 1, .late_rate = 1});
  valid.idle_partition = IdlePartition{.partition = 7, .from = kDefaultStart};
  EXPECT_TRUE(ValidateOptions(valid).ok()) << ValidateOptions(valid).message();
  // And each bad one is named
  const auto with = [](auto field) {
    return [field](GeneratorOptions& o) {
      o.disruptions.push_back({"ppe", "", kDefaultStart, kDefaultStart + 1, 1});
      field(o.disruptions.back());
    };
  };
  EXPECT_NE(error_of(with([](Disruption& d) { d.hold_factor = 0.5; })).find("disruptions[0].hold_factor"),
            std::string::npos);
  EXPECT_NE(error_of(with([](Disruption& d) { d.value_factor = 0; })).find("disruptions[0].value_factor"),
            std::string::npos);
  EXPECT_NE(error_of(with([](Disruption& d) { d.origin_country = "DE"; })).find("disruptions[0].origin_country"),
            std::string::npos);
  EXPECT_NE(error_of(with([](Disruption& d) { d.dwell_factor = 0; })).find("disruptions[0].dwell_factor"),
            std::string::npos);
  EXPECT_NE(error_of(with([](Disruption& d) { d.shape = static_cast<DisruptionShape>(9); }))
                .find("disruptions[0].shape"),
            std::string::npos);
  EXPECT_NE(error_of([](GeneratorOptions& o) { o.rate_scale = 0; }).find("rate_scale"), std::string::npos);
  EXPECT_NE(error_of([](GeneratorOptions& o) {
              o.delivery_bursts.push_back({.start = kDefaultStart, .end = kDefaultStart});
            }).find("delivery_bursts[0].start"),
            std::string::npos);
  EXPECT_NE(error_of([](GeneratorOptions& o) {
              o.delivery_bursts.push_back({.start = 0, .end = kDefaultStart, .out_of_order_rate = 1.5});
            }).find("delivery_bursts[0].out_of_order_rate"),
            std::string::npos);
  EXPECT_NE(error_of([](GeneratorOptions& o) {
              o.idle_partition = IdlePartition{.partition = 8, .from = 0};
            }).find("idle_partition.partition"),
            std::string::npos);
  EXPECT_NE(error_of([](GeneratorOptions& o) {
              o.partitions = 1;
              o.idle_partition = IdlePartition{.partition = 0, .from = 0};
            }).find("idle_partition"),
            std::string::npos);
}

}  // namespace
}  // namespace shortfall::scenario
