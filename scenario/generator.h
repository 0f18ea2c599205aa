// Generator: a seeded, deterministic stream of synthetic input records for
// shortfall: cross-border shipment and customs events on North American
// corridors, with seasonality, noise, injected shortages (disruptions), out-of-
// order and late records, and malformed records of every kind the validators
// know. `shortfall gen` writes it to Kafka or to an event file; `shortfall
// demo`, the benchmarks and the tests read it.
//
//   GeneratorOptions options;
//   options.events = 200000;
//   options.disruptions.push_back({"semiconductors", "2304", start, end, 0.2});
//   Generator gen(options);
//   v1::EventRecord record;
//   while (gen.Next(&record)) Produce(record);
//
// Determinism: the same options give the same records, byte for byte, on any
// platform. The generator uses its own PRNG (xoshiro256** seeded through
// SplitMix64) and its own uniform/normal/gamma/Poisson and exp/log helpers
// built from IEEE-754 basic operations only (no std:: distributions, no
// libm transcendental functions, no hash-order iteration). The one assumption
// is IEEE binary64 arithmetic with round-to-nearest; generator.cc turns off
// fused multiply-add contraction itself (GCC and Clang pragmas), so FMA
// targets and -march=native builds give the same bytes too.
//
// Independence: randomness is drawn from separate streams per (corridor,
// category) for traffic, for delivery and for a hold wave's extra
// inspections, one per corridor for noise and one for malformed records, with
// a fixed number of draws per event. So changing malformed_rate, late_rate or
// out_of_order_rate (or a DeliveryBurst) never changes which shipments exist
// or their contents and event times; a disruption with rate_factor <= 1
// changes only the shipments of the (corridor, category) pairs it targets;
// hold_factor, value_factor and dwell_factor change no shipment's existence,
// contents (but the declared values) or delivery, only add inspection
// events, raise values or move releases and gate-outs; an idle partition changes partitions only (and, since late and
// malformed records are placed by each partition's newest event, which of
// those are written and their event times). (`events` caps the total, so how
// far in time the run reaches moves with every option.) With none of the
// options added after the first release set (rate_scale 1, no shape,
// hold_factor, value_factor, dwell_factor, release_withheld, group "*",
// origin_country, delivery_bursts or idle_partition), the output is byte for byte what that
// release wrote; a test pins it. (origin_country only narrows which
// (corridor, category) pairs a disruption targets: it draws nothing.)
//
// What a shipment is. Each shipment crosses one corridor (see
// ScenarioCorridors()) and produces, in event-time order:
//   shipments topic  DEPA  TRANSPORT/ACT at the origin (facility CLOC, or RAMP by rail)
//   customs topic    FILED (declaration id derived from the shipment id)
//   shipments topic  ARRI  TRANSPORT/ACT at the port of entry, facility BOCR,
//                    carrying the goods lines: the event that counts volume
//   customs topic    EXAM_SELECTED and/or HOLD, HOLD_RELEASED (about 4% of
//                    shipments, twice as often for ppe and pharmaceuticals)
//   customs topic    RELEASED
//   shipments topic  GTOT  EQUIPMENT/ACT at the port, with the trailer or container number
// Every event carries the corridor; every customs event carries the goods
// lines, the authority (CBP, CBSA or ANAM by destination) and the authority's
// raw status code. DEPA and GTOT carry no goods. Shipment ids are
// "SF<corridor><category><8 digits>"; the malformed records use "SF99...".
//
// Goods lines: 1-3 per shipment. The first is from the shipment's category
// (one of the five catalog groups or unclassified goods); later lines are
// the same category or unclassified goods, so a group's goods travel only in
// that group's shipments and a disruption of a group cuts all of them. HS
// 2022 6-digit codes; goods whose code changed in HS 2022 (medical gloves
// 401512 <- 401511, reagents 382219 <- 382200, smartphones 851713 <- 851712)
// are coded in HS 2017 a quarter of the time (about 2% of all lines). Units
// are UN/ECE Rec 20 codes fitting the goods; values mostly USD, some MXN/CAD
// on Mexican/Canadian corridors and a few EUR, CNY, JPY, KRW, TWD, CHF, GBP.
//
// Rates: ARRI times follow a Poisson process per (corridor, category) whose
// hourly rate is the corridor's daily rate x category share x a weekly
// profile (weekends low) x a diurnal profile (nights low), both in the port's
// local standard time, x a gamma-distributed day factor (CV 20%) and hour
// factor (CV 29%) per corridor (overdispersed, gamma-Poisson counts) x
// rate_scale x the disruption factors in force at the arrival time. The
// rates are about 1/35 of real commercial crossings, so the default 100,000
// records cover about four weeks of event time. The first ARRI is at
// `start`; the departures and filings of the first shipments fall before it.
//
// Record metadata: topic = shipments_topic or customs_topic; key =
// shipment_id (shipment events) or declaration_id (customs events);
// partition = FNV-1a 64 of the key bytes mod `partitions` (not Kafka's
// murmur2: records carry their partition explicitly; IdlePartition moves
// some); record_time = publish_time = event_time + a delay of seconds to
// minutes (at most min(10 min, allowed_lateness / 4)). Records come out in
// publish-time order.
//
// Out-of-order: out_of_order_rate (or a DeliveryBurst's, by event time) of
// the valid records are published up to allowed_lateness / 2 later than
// usual, so they arrive behind newer events but are never late. Late:
// late_rate (or a burst's) of the valid records are held back and published
// only once their (topic, partition) has emitted an actual event newer than
// their event time + allowed_lateness + 1 h, so any operator whose
// per-partition watermark is "max event time - allowed_lateness" rejects
// them as late, whatever its window (up to 1 h long).
//
// Malformed: after each valid record, malformed_rate extra records (on
// average) that are not part of any real shipment, each invalid for exactly
// one reason, valid otherwise, with an event time at or just below its
// partition's maximum (never late, never moving a watermark), counted in
// stats().malformed_by_reason under: unparseable, missing_id,
// missing_hs_code, malformed_hs_code, unknown_unit, negative_quantity,
// absurd_quantity, unknown_country, malformed_port, unknown_currency,
// future_timestamp. A future_timestamp record is an ARRI whose publish_time
// is 3 days before its event_time; its record_time stays the stream time.
//
// Thread-safety: a Generator is not thread-safe; use one per thread.
// Ownership: it owns its state; Next() writes into the caller's record.
// Failure: none at run time. Options are checked by ValidateOptions(); the
// constructor aborts on options that fail it (a programming error: callers
// validate user input first).
#ifndef SHORTFALL_SCENARIO_GENERATOR_H_
#define SHORTFALL_SCENARIO_GENERATOR_H_

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "shortfall/v1/event_record.pb.h"

namespace shortfall::scenario {

// 2026-01-05T00:00:00Z, a Monday.
inline constexpr TimestampMs kDefaultStart = 1767571200000;

// The catalog groups a disruption can target, in the order the generator
// numbers its categories; category 5 is unclassified goods.
inline constexpr std::array<std::string_view, 5> kScenarioGroups = {
    "semiconductors", "ppe", "batteries", "pharmaceuticals", "critical_minerals"};

// Disruption::group for every category, unclassified goods included.
inline constexpr std::string_view kAllGoods = "*";

// The malformed_by_reason names, matching operators::InvalidReasonName().
inline constexpr std::array<std::string_view, 11> kMalformedReasons = {
    "unparseable",     "missing_id",        "missing_hs_code", "malformed_hs_code",
    "unknown_unit",    "negative_quantity", "absurd_quantity", "unknown_country",
    "malformed_port",  "unknown_currency",  "future_timestamp"};

// How a Disruption's rate_factor applies over [start, end).
enum class DisruptionShape : uint8_t {
  // rate_factor throughout: a sudden change (a closure, a cut, a surge).
  kStep,
  // From 1 at `start`, linearly in event time, to rate_factor at `end`: a
  // gradual decline (or build-up). Outside [start, end) the factor is 1, so a
  // decline that then stays down is a ramp followed by a step.
  kRamp,
};

// A change to one group's shipments on matching corridors while in force
// (ARRI event time in [start, end)): their rate, how often customs inspects
// them, and what they declare per unit. Factors of 1 change nothing; the
// factors of disruptions in force together multiply.
struct Disruption {
  // One of kScenarioGroups, or "*": every category including unclassified
  // goods (a port closure or a holiday hits every good).
  std::string group;
  std::string port_of_entry;  // a scenario port ("2304", "MXNLD"); empty = every port
  TimestampMs start = 0;      // event time (of ARRI) the disruption starts, inclusive
  TimestampMs end = 0;        // and ends, exclusive
  double rate_factor = 1.0;   // >= 0: 0.2 = 80% fewer shipments, 3 = a surge, 0 = closed
  // How rate_factor applies over the window. Default kStep. Only the rate:
  // hold_factor and value_factor are steps whatever the shape.
  DisruptionShape shape = DisruptionShape::kStep;
  // Multiplies the probability that customs selects a shipment for exam or
  // hold (3.5%, 7% for ppe and pharmaceuticals), capped at 1; in [1, 1000].
  // Default 1. A wave only raises: the extra inspections are drawn from a
  // stream of their own (per corridor and category), so every shipment
  // keeps its contents, times and delivery and only the ones a wave selects
  // gain EXAM_SELECTED and/or HOLD, HOLD_RELEASED in the usual mix (and a
  // later RELEASED and GTOT).
  double hold_factor = 1.0;
  // Multiplies the declared value (so the value per unit; quantities and
  // weights stay) of the goods lines of the targeted categories: with a
  // group, that group's lines, not the unclassified lines riding along; with
  // "*", every line. In (0, 1000]. Default 1. Draws nothing.
  double value_factor = 1.0;
  // An origin country of the scenario corridors ("MX", "CA", "US"): only
  // corridors from there; empty (default): every origin. With a
  // port_of_entry too, both must match. A shift of supply between origins
  // is two disruptions, one per origin.
  std::string origin_country{};
  // Multiplies the time from the shipment's arrival (ARRI) to its customs
  // RELEASED (a slowdown at the border: staffing, a system outage); the
  // gate-out follows the release as before, exams and holds keep their
  // times. In (0, 100]. Default 1. Draws nothing.
  double dwell_factor = 1.0;
  // True: customs releases none of the targeted shipments (a customs system
  // down, a blanket hold): their RELEASED and gate-out (GTOT) are never
  // written; departures, filings, arrivals, exams and holds are. Their
  // arrivals wait in shortfall's dwell join until they expire. Default
  // false. Draws nothing: every record written is as without it (the
  // withheld ones still take their delivery draws).
  bool release_withheld = false;
};

// A stretch of event time in which more records than usual arrive out of
// order or late (a broker backlog, a batch of delayed EDI). Applies to each
// valid record by its event time; where bursts overlap the last listed wins.
// A burst changes the delivery of records only (publish time, late or not),
// never which shipments exist or their contents and event times.
struct DeliveryBurst {
  TimestampMs start = 0;  // event time, inclusive
  TimestampMs end = 0;    // exclusive
  // Replace GeneratorOptions::late_rate / out_of_order_rate in the burst,
  // in [0, 1]; unset: the run's rate.
  std::optional<double> late_rate = std::nullopt;
  std::optional<double> out_of_order_rate = std::nullopt;
};

// One partition of the shipments topic that stops receiving records: from
// `from` on (by publish time), every shipments-topic record that would be
// written to `partition` (valid or malformed) is written to partition + 1
// (mod partitions) instead, with the same key, as a producer that routes
// around a dead partition would. So the partition is idle for good while the
// data all still arrives; records published before `from` stay where they
// were, so the key of a shipment in flight at `from` shows on both
// partitions, and a moved record's partition is not PartitionForKey(key).
// Late records held back for the idle partition are released only by its
// own newer records, so those still held at `from` are never written. (With
// `gen --to-kafka` the partition is idle only with --keep-partitions: the
// Kafka partitioner ignores the generator's partitions otherwise.)
struct IdlePartition {
  int32_t partition = 0;  // in [0, partitions); needs partitions >= 2
  TimestampMs from = 0;   // publish time from which nothing is written there
};

struct GeneratorOptions {
  // PRNG seed; every seed gives a different, equally plausible scenario.
  uint64_t seed = 1;
  // Records to produce, all kinds together (valid, late, malformed).
  uint64_t events = 100000;
  // Event time of the first ARRI. Default 2026-01-05T00:00:00Z (a Monday).
  TimestampMs start = kDefaultStart;
  // Partitions per input topic, >= 1. Keys are spread by FNV-1a 64.
  int32_t partitions = 8;
  // Extra malformed records per valid record, >= 0 (0.001 = one in a thousand).
  double malformed_rate = 0.001;
  // Fraction of valid records held back until they are late, in [0, 1].
  double late_rate = 0.0005;
  // Fraction of valid records delayed by up to allowed_lateness / 2, in [0, 1].
  double out_of_order_rate = 0.01;
  // What "late" is measured against: the operators' allowed lateness, >= 0.
  // Default 6 h, the operators' default.
  DurationMs allowed_lateness = 6 * kMsPerHour;
  std::vector<Disruption> disruptions;
  // Multiplies every corridor's shipments per day, in (0, 100]. Default 1
  // (about 1/35 of real crossings; Laredo 240 shipments a day). 0.25 makes
  // every corridor thin and noisy; 10 gives Laredo 2,400 a day, and `events`
  // must grow as much to cover the same weeks.
  double rate_scale = 1.0;
  // Out-of-order and late bursts; default none.
  std::vector<DeliveryBurst> delivery_bursts;
  // A shipments-topic partition that goes idle; default none.
  std::optional<IdlePartition> idle_partition;
  std::string shipments_topic = "shipments.events.v1";
  std::string customs_topic = "customs.events.v1";
};

// Checks the options; errors name the field ("disruptions[1].group: ...").
Status ValidateOptions(const GeneratorOptions& options);

struct GeneratorStats {
  uint64_t records = 0;          // everything Next() returned
  uint64_t shipments = 0;        // valid ARRI records (one per shipment; late ones included)
  uint64_t shipment_events = 0;  // valid records on the shipments topic
  uint64_t customs_events = 0;   // valid records on the customs topic
  uint64_t late = 0;             // valid records emitted late (in the two counts above)
  uint64_t out_of_order = 0;     // valid records emitted out of order, not late
  // Malformed records by reason; every name in kMalformedReasons is present.
  std::map<std::string, uint64_t> malformed_by_reason;
};

// A corridor of the scenario, for documentation, help texts and tests.
struct ScenarioCorridor {
  std::string_view origin_country;       // ISO 3166-1 alpha-2
  std::string_view destination_country;  // ISO 3166-1 alpha-2
  std::string_view port_of_entry;        // CBP port code or UN/LOCODE
  std::string_view name;                 // "Laredo"
  double shipments_per_day;              // mean ARRI per day before seasonality
  double rail_share;                     // fraction of shipments by rail
  int utc_offset_hours;                  // local standard time of the port
  // Shares of semiconductors, ppe, batteries, pharmaceuticals,
  // critical_minerals, unclassified (sum 1).
  std::array<double, 6> category_share;
};
std::span<const ScenarioCorridor> ScenarioCorridors();

// The partition of a record key: FNV-1a 64 of the key's bytes mod
// `partitions`. REQUIRES: partitions >= 1.
int32_t PartitionForKey(std::string_view key, int32_t partitions);

class Generator {
 public:
  // REQUIRES: ValidateOptions(options).ok(); aborts otherwise.
  explicit Generator(GeneratorOptions options);
  ~Generator();
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // Writes the next record into *out (overwriting it) and returns true, or
  // returns false once options.events records were produced.
  bool Next(shortfall::v1::EventRecord* out);

  const GeneratorStats& stats() const { return stats_; }
  const GeneratorOptions& options() const { return options_; }

 private:
  struct State;  // PRNG streams, pending events, shipments (generator.cc)

  // Generates the shipments whose ARRI falls in the next hour of event time
  // and schedules their events.
  void GenerateHour();
  // The partition a record goes to: `partition`, unless it is the idle
  // shipments partition and `publish` is at or after its `from`.
  int32_t Route(bool customs, int32_t partition, TimestampMs publish) const;
  // Writes one malformed record into *out; false when it cannot be placed
  // yet (its partition has no event time to stay below).
  bool MakeMalformed(shortfall::v1::EventRecord* out);

  GeneratorOptions options_;
  GeneratorStats stats_;
  std::unique_ptr<State> state_;
};

}  // namespace shortfall::scenario

#endif  // SHORTFALL_SCENARIO_GENERATOR_H_
