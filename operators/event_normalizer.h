// EventNormalizer: stage one of the volume pipeline. It validates a decoded
// event and turns it into per-group volume contributions on one corridor:
// HS codes classified through the catalog, quantities converted to canonical
// units, declared values converted to USD.
//
//   EventNormalizer normalizer(catalog, options, &corridors);
//   NormalizedEvent ev;
//   if (auto bad = normalizer.Normalize(shipment, kafka_record_time_ms, &ev)) {
//     dead_letter(bad->reason, bad->detail);
//   }
//
// Validation finds the first problem in this order: id, event time, event
// code or customs status, corridor, goods lines (in line order). Each problem
// is an InvalidReason; a bad record never aborts anything.
//
// What counts: a ShipmentEvent counts volume when it is an actual (ACT)
// transport arrival (ARRI) at the border — facility type BOCR, or none given —
// which must carry goods; each such event counts one shipment per group of
// its goods. A CustomsEvent counts one declaration per group under its
// status, and must carry goods. Every accepted event counts: a resent event
// counts again (deduplication by event_id is not done yet). Other valid shipment events count nothing. Actual events and
// customs events are "actual" (checked for lateness, move watermarks);
// planned or estimated ones are neither.
//
// Border dwell. The counting arrival and a RELEASED customs event that names
// its shipment (CustomsEvent.shipment_id) are the two sides of a shipment's
// dwell at the border; the normalizer marks them (NormalizedEvent::dwell and
// shipment_id) for the groups of the catalog the event carries, and
// operators::DwellJoin pairs them per group downstream (the two sides come
// from different topics, keyed differently, so from different tasks).
//
// Thread-safety: not thread-safe (the classifier memo and corridor table
// mutate); one normalizer per task. The catalog and corridor table must
// outlive it.
#ifndef SHORTFALL_OPERATORS_EVENT_NORMALIZER_H_
#define SHORTFALL_OPERATORS_EVENT_NORMALIZER_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/time.h"
#include "operators/catalog.h"
#include "operators/corridor.h"
#include "operators/invalid_reason.h"
#include "operators/volume.h"
#include "shortfall/v1/customs_event.pb.h"
#include "shortfall/v1/shipment_event.pb.h"

namespace shortfall::operators {

struct NormalizerOptions {
  // An actual event may be at most this far after its publish time (or the
  // record time when there is no publish time). Default 1 h: clock skew
  // between sources is minutes; more means a wrong clock or time zone.
  DurationMs max_future_skew = kMsPerHour;
  // Per goods line limits; beyond them a line is "absurd_quantity". Defaults
  // are above any single real consignment and below overflow territory.
  double max_line_quantity = 1e9;          // in the line's own unit
  double max_line_gross_weight_kg = 1e9;   // a million tonnes
  double max_line_value_usd = 1e11;        // 100 billion USD
  // Rates to USD: one unit of the currency is `rate` USD. Default: the
  // illustrative DefaultUsdRates(); set real ones in production.
  std::vector<std::pair<std::string, double>> usd_rates;

  NormalizerOptions();
  // Checks the options; errors name the field ("usd_rates[MXN]: ...").
  Status Validate() const;
};

// One group's share of an event.
struct GroupContribution {
  GroupId group;  // a catalog group, or EventNormalizer::unclassified_group()
  VolumeDelta delta;
};

// Which side of the border-dwell join an event is (see the header).
enum class DwellRole : uint8_t {
  kNone,
  kArrival,  // the counting ARRI
  kRelease,  // a CUSTOMS_STATUS_RELEASED event naming its shipment
};

struct NormalizedEvent {
  TimestampMs event_time = 0;
  bool actual = false;  // checked for lateness; moves the partition watermark
  CorridorId corridor = kAllCorridors;
  std::vector<GroupContribution> groups;  // empty when the event counts nothing
  uint32_t unclassified_lines = 0;        // goods lines outside the catalog
  // A side of the dwell join, for the catalog groups in `groups` (never for
  // unclassified goods); kNone otherwise, and then shipment_id is empty.
  DwellRole dwell = DwellRole::kNone;
  std::string shipment_id;
};

class EventNormalizer {
 public:
  // REQUIRES: options.Validate().ok().
  EventNormalizer(const Catalog& catalog, const NormalizerOptions& options,
                  CorridorTable* corridors);

  // Return nullopt and fill *out, or return why the event is invalid.
  // `record_time` is the broker's (or the file's) timestamp of the record, 0
  // when unknown. An actual event may be at most max_future_skew after its
  // publish_time and after its record time.
  std::optional<Invalid> Normalize(const v1::ShipmentEvent& event, TimestampMs record_time,
                                   NormalizedEvent* out);
  std::optional<Invalid> Normalize(const v1::CustomsEvent& event, TimestampMs record_time,
                                   NormalizedEvent* out);

  // The id counted for goods outside the catalog: catalog().group_count().
  GroupId unclassified_group() const { return unclassified_; }
  // "unclassified" for unclassified_group(), else the catalog's name.
  std::string_view GroupName(GroupId id) const;
  const Catalog& catalog() const { return classifier_.catalog(); }

 private:
  struct Line {  // fixed-point, as in VolumeDelta
    GroupMask groups;
    uint32_t price_key;  // PriceKey of the line's goods code
    Unit unit;
    int64_t quantity;
    int64_t gross_weight;
    int64_t value;
  };
  std::optional<Invalid> CheckTime(const google::protobuf::Timestamp* event_time,
                                   const google::protobuf::Timestamp* publish_time,
                                   bool check_future, TimestampMs record_time,
                                   TimestampMs* out) const;
  std::optional<Invalid> CheckCorridor(const v1::Corridor& corridor, CorridorId* out);
  std::optional<Invalid> CheckGoods(
      const google::protobuf::RepeatedPtrField<v1::GoodsLine>& goods);
  std::optional<double> UsdRate(std::string_view currency) const;
  // Marks *out as `role` of the dwell join when it has a catalog group.
  void MarkDwell(DwellRole role, const std::string& shipment_id, NormalizedEvent* out) const;

  Classifier classifier_;
  NormalizerOptions options_;
  CorridorTable* corridors_;
  GroupId unclassified_;
  std::vector<std::pair<uint32_t, double>> rates_;  // packed 3-letter code -> rate
  std::vector<Line> lines_;                         // scratch, reused
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_EVENT_NORMALIZER_H_
