#include "operators/event_normalizer.h"

#include <algorithm>
#include <cmath>

#include "operators/event_decoder.h"

namespace shortfall::operators {
namespace {

constexpr TimestampMs kEarliestValid = 946684800000;   // 2000-01-01T00:00:00Z
constexpr TimestampMs kLatestValid = 4102444800000;    // 2100-01-01T00:00:00Z

constexpr std::string_view kTransportCodes[] = {"ARRI", "DEPA"};
constexpr std::string_view kEquipmentCodes[] = {"LOAD", "DISC", "GTIN", "GTOT", "STUF", "STRP",
                                                "PICK", "DROP", "INSP", "RSEA", "RMVD", "AVPU",
                                                "AVDO", "CUSS", "CUSI", "CUSR", "WAYP"};
constexpr std::string_view kShipmentCodes[] = {"RECE", "DRFT", "PENA", "PENU", "PENC", "REJE",
                                               "APPR", "ISSU", "SURR", "SUBM", "VOID", "CONF",
                                               "REQS", "CMPL", "HOLD", "RELS", "CANC"};

// A 4-letter code as one integer, for cheap comparison; 0 when not 4 bytes.
constexpr uint32_t Pack4(std::string_view code) {
  if (code.size() != 4) return 0;
  uint32_t packed = 0;
  for (char c : code) packed = (packed << 8) | static_cast<uint8_t>(c);
  return packed;
}

template <size_t N>
bool Contains(const std::string_view (&codes)[N], std::string_view code) {
  const uint32_t packed = Pack4(code);
  if (packed == 0) return false;
  for (std::string_view c : codes) {
    if (Pack4(c) == packed) return true;
  }
  return false;
}

bool IsKnownEventCode(v1::EventClass event_class, std::string_view code) {
  switch (event_class) {
    case v1::EVENT_CLASS_TRANSPORT: return Contains(kTransportCodes, code);
    case v1::EVENT_CLASS_EQUIPMENT: return Contains(kEquipmentCodes, code);
    case v1::EVENT_CLASS_SHIPMENT: return Contains(kShipmentCodes, code);
    default: return false;
  }
}

// "ABC" -> 24-bit integer; 0 when not three upper-case letters.
uint32_t PackCurrency(std::string_view code) {
  if (code.size() != 3) return 0;
  uint32_t packed = 0;
  for (char c : code) {
    if (c < 'A' || c > 'Z') return 0;
    packed = (packed << 8) | static_cast<uint8_t>(c);
  }
  return packed;
}


// Digits of an HS code with dots removed: 6 to 10 digits -> first six as an
// integer; -1 otherwise.
int64_t ParseHs6(std::string_view code) {
  int64_t hs6 = 0;
  int digits = 0;
  for (char c : code) {
    if (c == '.') continue;
    if (c < '0' || c > '9') return -1;
    if (digits < 6) hs6 = hs6 * 10 + (c - '0');
    ++digits;
  }
  return digits >= 6 && digits <= 10 ? hs6 : -1;
}

HsRevision ToRevision(v1::HsVersion version) {
  switch (version) {
    case v1::HS_VERSION_2017: return HsRevision::k2017;
    case v1::HS_VERSION_2022: return HsRevision::k2022;
    default: return HsRevision::kUnspecified;
  }
}

std::string LineField(int index, std::string_view field) {
  return "goods[" + std::to_string(index) + "]." + std::string(field);
}

bool Finite(double v) { return std::isfinite(v); }

}  // namespace

NormalizerOptions::NormalizerOptions() {
  for (const auto& [code, rate] : DefaultUsdRates()) usd_rates.emplace_back(code, rate);
}

Status NormalizerOptions::Validate() const {
  if (max_future_skew < 0) return InvalidArgumentError("max_future_skew: must be >= 0");
  if (!(max_line_quantity > 0)) return InvalidArgumentError("max_line_quantity: must be > 0");
  if (!(max_line_gross_weight_kg > 0)) {
    return InvalidArgumentError("max_line_gross_weight_kg: must be > 0");
  }
  if (!(max_line_value_usd > 0)) return InvalidArgumentError("max_line_value_usd: must be > 0");
  // Fixed-point sums (operators/volume.h) need lines well inside int64.
  // The largest unit factor is 1000 (TNE), the quantity scale 1000.
  if (max_line_quantity > 1e12 || max_line_gross_weight_kg > 1e12 || max_line_value_usd > 1e13) {
    return InvalidArgumentError(
        "max_line_quantity and max_line_gross_weight_kg: at most 1e12; max_line_value_usd: at most "
        "1e13 (one line must fit the fixed-point amounts of operators/volume.h)");
  }
  std::vector<uint32_t> seen;
  for (const auto& [code, rate] : usd_rates) {
    const uint32_t packed = PackCurrency(code);
    if (packed == 0) {
      return InvalidArgumentError("usd_rates[" + code + "]: not an ISO 4217 code (3 letters A-Z)");
    }
    if (!(rate > 0) || !Finite(rate)) {
      return InvalidArgumentError("usd_rates[" + code + "]: rate must be a positive number");
    }
    if (std::find(seen.begin(), seen.end(), packed) != seen.end()) {
      return InvalidArgumentError("usd_rates[" + code + "]: listed twice");
    }
    seen.push_back(packed);
  }
  return OkStatus();
}

EventNormalizer::EventNormalizer(const Catalog& catalog, const NormalizerOptions& options,
                                 CorridorTable* corridors)
    : classifier_(catalog),
      options_(options),
      corridors_(corridors),
      unclassified_(static_cast<GroupId>(catalog.group_count())) {
  SHORTFALL_CHECK(options_.Validate().ok());
  for (const auto& [code, rate] : options_.usd_rates) rates_.emplace_back(PackCurrency(code), rate);
}

std::string_view EventNormalizer::GroupName(GroupId id) const {
  return id == unclassified_ ? kUnclassifiedGroup : catalog().group_name(id);
}

std::optional<double> EventNormalizer::UsdRate(std::string_view currency) const {
  const uint32_t packed = PackCurrency(currency);
  for (const auto& [code, rate] : rates_) {
    if (code == packed) return rate;
  }
  return std::nullopt;
}

std::optional<Invalid> EventNormalizer::CheckTime(const google::protobuf::Timestamp* event_time,
                                                  const google::protobuf::Timestamp* publish_time,
                                                  bool check_future, TimestampMs record_time,
                                                  TimestampMs* out) const {
  if (event_time == nullptr) return Invalid{InvalidReason::kMissingEventTime, "event_time not set"};
  const std::optional<TimestampMs> t = TimestampToMs(*event_time);
  if (!t || *t < kEarliestValid || *t >= kLatestValid) {
    return Invalid{InvalidReason::kAbsurdTimestamp,
                   t ? "event_time " + FormatUtc(*t)
                     : "event_time seconds " + std::to_string(event_time->seconds()) + " nanos " +
                           std::to_string(event_time->nanos())};
  }
  if (check_future) {
    // Against every clock the record carries: one wrong clock (a producer's
    // publish time) must not let an event from the future through, because
    // it would move its partition's watermark ahead of every later event.
    std::optional<TimestampMs> publish;
    if (publish_time != nullptr) publish = TimestampToMs(*publish_time);
    for (const auto& [name, reference] :
         {std::pair<const char*, TimestampMs>{"publish_time ", publish.value_or(0)},
          std::pair<const char*, TimestampMs>{"record time ", record_time}}) {
      if (reference > 0 && *t > reference + options_.max_future_skew) {
        return Invalid{InvalidReason::kFutureTimestamp,
                       "event_time " + FormatUtc(*t) + " is more than " +
                           FormatDuration(options_.max_future_skew) + " after " + name +
                           FormatUtc(reference)};
      }
    }
  }
  *out = *t;
  return std::nullopt;
}

std::optional<Invalid> EventNormalizer::CheckCorridor(const v1::Corridor& corridor,
                                                      CorridorId* out) {
  if (!IsIsoCountry(corridor.origin_country())) {
    return Invalid{InvalidReason::kUnknownCountry,
                   "corridor.origin_country '" + corridor.origin_country() + "'"};
  }
  if (!IsIsoCountry(corridor.destination_country())) {
    return Invalid{InvalidReason::kUnknownCountry,
                   "corridor.destination_country '" + corridor.destination_country() + "'"};
  }
  if (!IsPortCode(corridor.port_of_entry())) {
    return Invalid{InvalidReason::kMalformedPort,
                   "corridor.port_of_entry '" + corridor.port_of_entry() +
                       "' (want a 4-digit CBP port code or a UN/LOCODE)"};
  }
  *out = corridors_->Intern(corridor.origin_country(), corridor.destination_country(),
                            corridor.port_of_entry());
  return std::nullopt;
}

std::optional<Invalid> EventNormalizer::CheckGoods(
    const google::protobuf::RepeatedPtrField<v1::GoodsLine>& goods) {
  lines_.clear();
  int index = 0;
  for (const v1::GoodsLine& g : goods) {
    if (g.hs_code().empty()) return Invalid{InvalidReason::kMissingHsCode, LineField(index, "hs_code empty")};
    const int64_t hs6 = ParseHs6(g.hs_code());
    if (hs6 < 0) {
      return Invalid{InvalidReason::kMalformedHsCode,
                     LineField(index, "hs_code '") + g.hs_code() + "' (want 6 to 10 digits)"};
    }
    const std::optional<UnitConversion> unit = LookupUnitCode(g.unit());
    if (!unit) {
      return Invalid{InvalidReason::kUnknownUnit, LineField(index, "unit '") + g.unit() + "'"};
    }
    if (!Finite(g.quantity()) || !Finite(g.gross_weight_kg()) || !Finite(g.declared_value())) {
      return Invalid{InvalidReason::kAbsurdQuantity, LineField(index, "quantity, weight or value not finite")};
    }
    if (g.quantity() <= 0) {
      return Invalid{InvalidReason::kNegativeQuantity,
                     LineField(index, "quantity ") + std::to_string(g.quantity()) + " (must be > 0)"};
    }
    if (g.gross_weight_kg() < 0 || g.declared_value() < 0) {
      return Invalid{InvalidReason::kNegativeQuantity,
                     LineField(index, "gross_weight_kg or declared_value < 0")};
    }
    double rate = 0;
    if (!g.currency().empty() || g.declared_value() > 0) {
      const std::optional<double> r = UsdRate(g.currency());
      if (!r) {
        return Invalid{InvalidReason::kUnknownCurrency,
                       LineField(index, "currency '") + g.currency() + "' (not in the rate table)"};
      }
      rate = *r;
    }
    const double value_usd = g.declared_value() * rate;
    if (g.quantity() > options_.max_line_quantity ||
        g.gross_weight_kg() > options_.max_line_gross_weight_kg ||
        value_usd > options_.max_line_value_usd) {
      return Invalid{InvalidReason::kAbsurdQuantity,
                     LineField(index, "quantity ") + std::to_string(g.quantity()) + " " + g.unit() +
                         ", " + std::to_string(g.gross_weight_kg()) + " kg, " +
                         std::to_string(value_usd) + " USD exceeds the configured limits"};
    }
    const HsRevision revision = ToRevision(g.hs_version());
    lines_.push_back(Line{classifier_.Classify(static_cast<uint32_t>(hs6), revision),
                          PriceKey(static_cast<uint32_t>(hs6), static_cast<uint32_t>(revision), unit->unit),
                          unit->unit, ToFixed(g.quantity() * unit->factor, kQuantityScale),
                          ToFixed(g.gross_weight_kg(), kWeightScale), ToFixed(value_usd, kValueScale)});
    ++index;
  }
  return std::nullopt;
}

namespace {

VolumeDelta* DeltaFor(std::vector<GroupContribution>* groups, GroupId group) {
  for (GroupContribution& c : *groups) {
    if (c.group == group) return &c.delta;
  }
  groups->push_back(GroupContribution{group, VolumeDelta{}});
  return &groups->back().delta;
}

}  // namespace

void EventNormalizer::MarkDwell(DwellRole role, const std::string& shipment_id, NormalizedEvent* out) const {
  for (const GroupContribution& c : out->groups) {
    if (c.group == unclassified_) continue;
    out->dwell = role;
    out->shipment_id = shipment_id;
    return;
  }
}

std::optional<Invalid> EventNormalizer::Normalize(const v1::ShipmentEvent& event,
                                                  TimestampMs record_time, NormalizedEvent* out) {
  out->groups.clear();
  out->unclassified_lines = 0;
  out->dwell = DwellRole::kNone;
  out->shipment_id.clear();
  if (event.shipment_id().empty()) return Invalid{InvalidReason::kMissingId, "shipment_id empty"};
  out->actual = event.event_classifier() == v1::EVENT_CLASSIFIER_ACTUAL;
  if (auto bad = CheckTime(event.has_event_time() ? &event.event_time() : nullptr,
                           event.has_publish_time() ? &event.publish_time() : nullptr,
                           out->actual, record_time, &out->event_time)) {
    return bad;
  }
  if (!IsKnownEventCode(event.event_class(), event.event_type_code())) {
    // A class from a newer schema has no name here: show its number.
    const std::string& class_name = v1::EventClass_Name(event.event_class());
    return Invalid{InvalidReason::kUnknownEventCode,
                   "event_type_code '" + event.event_type_code() + "' for " +
                       (class_name.empty() ? "event_class " + std::to_string(event.event_class()) : class_name)};
  }
  if (auto bad = CheckCorridor(event.corridor(), &out->corridor)) return bad;
  if (auto bad = CheckGoods(event.goods())) return bad;

  // The crossing itself: an arrival at the border (an empty facility type is
  // taken as the border, for feeds that do not say).
  const bool counts = out->actual && event.event_class() == v1::EVENT_CLASS_TRANSPORT &&
                      event.event_type_code() == "ARRI" &&
                      (event.facility_type().empty() || event.facility_type() == "BOCR");
  if (!counts) return std::nullopt;
  if (lines_.empty()) return Invalid{InvalidReason::kNoGoods, "actual ARRI without goods lines"};
  for (const Line& line : lines_) {
    GroupMask mask = line.groups;
    // Unit prices of the goods shortfall watches (and only of lines that
    // declare a value: a zero says nothing about the price).
    const bool priced = mask != 0 && line.value > 0 && line.quantity > 0;
    const PriceSum price = priced ? LinePrice(line.price_key, static_cast<double>(line.value) / kValueScale,
                                              static_cast<double>(line.quantity) / kQuantityScale)
                                  : PriceSum{};
    if (mask == 0) {
      ++out->unclassified_lines;
      mask = GroupMask{1} << unclassified_;
    }
    for (; mask != 0; mask &= mask - 1) {
      const auto group = static_cast<GroupId>(__builtin_ctzll(mask));
      VolumeDelta* d = DeltaFor(&out->groups, group);
      d->goods_lines += 1;
      d->quantity[static_cast<size_t>(line.unit)] += line.quantity;
      d->gross_weight += line.gross_weight;
      d->declared_value += line.value;
      if (priced) d->AddPrice(price);
    }
  }
  for (GroupContribution& c : out->groups) c.delta.shipments = 1;
  MarkDwell(DwellRole::kArrival, event.shipment_id(), out);
  return std::nullopt;
}

std::optional<Invalid> EventNormalizer::Normalize(const v1::CustomsEvent& event,
                                                  TimestampMs record_time, NormalizedEvent* out) {
  out->groups.clear();
  out->unclassified_lines = 0;
  out->dwell = DwellRole::kNone;
  out->shipment_id.clear();
  if (event.declaration_id().empty()) return Invalid{InvalidReason::kMissingId, "declaration_id empty"};
  out->actual = true;
  if (auto bad = CheckTime(event.has_event_time() ? &event.event_time() : nullptr,
                           event.has_publish_time() ? &event.publish_time() : nullptr, true,
                           record_time, &out->event_time)) {
    return bad;
  }
  const int status = event.status();
  if (status <= 0 || status >= static_cast<int>(kCustomsStatusCount)) {
    return Invalid{InvalidReason::kUnknownCustomsStatus,
                   "status " + std::to_string(status) + " (raw '" + event.authority_status_code() + "')"};
  }
  if (auto bad = CheckCorridor(event.corridor(), &out->corridor)) return bad;
  if (auto bad = CheckGoods(event.goods())) return bad;
  if (lines_.empty()) return Invalid{InvalidReason::kNoGoods, "customs event without goods lines"};
  GroupMask all = 0;
  for (const Line& line : lines_) {
    if (line.groups == 0) ++out->unclassified_lines;
    all |= line.groups == 0 ? GroupMask{1} << unclassified_ : line.groups;
  }
  for (; all != 0; all &= all - 1) {
    VolumeDelta* d = DeltaFor(&out->groups, static_cast<GroupId>(__builtin_ctzll(all)));
    d->customs[static_cast<size_t>(status)] = 1;
  }
  if (status == v1::CUSTOMS_STATUS_RELEASED && !event.shipment_id().empty()) {
    MarkDwell(DwellRole::kRelease, event.shipment_id(), out);
  }
  return std::nullopt;
}

}  // namespace shortfall::operators
