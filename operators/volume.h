// Volume measures: what shortfall sums per commodity group and corridor over
// event-time buckets and rolling windows.
//
// A shipment counts once per group it carries goods of, on the actual (ACT)
// arrival event (transport ARRI) at its port of entry. Customs declarations
// count once per group and status change. Quantities are kept per canonical
// unit (operators::Unit) and never added across units.
//
// Amounts are fixed-point integers (thousandths of a unit, grams, 1/10,000
// USD), rounded once per goods line. Sums of integers are exact, so a window
// has the same value whatever order its contributions arrived in — across
// Kafka partitions, restarts and replays — and a rolling window can be moved
// by adding one bucket and subtracting another without drift. An int64 sum
// holds about 922 trillion USD, 9.2 quadrillion kg or 9.2 quadrillion pieces;
// beyond that it wraps (defined, never undefined behaviour).
//
// Unit prices. Besides the totals, a delta of a catalog group keeps, per
// goods code (HS-6 code, HS revision and canonical unit), the number of its
// arrivals' goods lines and the sum and sum of squares of their log unit
// prices (ln of declared USD per canonical unit), so the unit-value detector
// can compare like with like: a group's value per unit mixes goods priced
// cents (diodes) and goods priced hundreds of dollars (battery modules)
// apiece, and the share of each moves the group's ratio far more than any
// price does. Logs rather than value and quantity: every line counts once
// (one huge consignment does not outweigh the rest) and the scatter of
// prices within a code can be measured. Fixed-point (kLogPriceScale) like
// the other amounts, so the sums are exact in any order. A handful of codes
// per group and corridor in practice; entries kept sorted by code.
//
// Border dwell. A delta also keeps, per corridor (DwellKey of its code),
// the number of shipments whose dwell at the border — customs release minus
// actual arrival, joined per shipment by operators::DwellJoin — ended in
// it, and the sum and sum of squares of ln(dwell seconds + 60), in the same
// PriceSum shape (`lines` counts shipments). The 60 s keep a release in the
// same minute as the arrival from a log of zero. Per corridor so that a
// group's total compares each port with its own past (ports clear at very
// different speeds) whatever the mix of ports.
#ifndef SHORTFALL_OPERATORS_VOLUME_H_
#define SHORTFALL_OPERATORS_VOLUME_H_

#include <array>
#include <cmath>
#include <cstdint>

#include <string_view>
#include <vector>

#include <google/protobuf/repeated_ptr_field.h>

#include "base/time.h"
#include "operators/reference_data.h"
#include "shortfall/v1/customs_event.pb.h"

namespace shortfall::internal {
class VolumeBucketState;
class PriceSumState;
}  // namespace shortfall::internal

namespace shortfall::operators {

// CustomsStatus values 0..7 (UNSPECIFIED is never counted).
inline constexpr size_t kCustomsStatusCount = 8;
static_assert(v1::CustomsStatus_ARRAYSIZE == kCustomsStatusCount,
              "a new CustomsStatus needs a counter in VolumeDelta::customs");

// "filed", "accepted", "hold", "hold_released", "exam_selected", "released",
// "refused" (index 0, UNSPECIFIED, is "unspecified").
std::string_view CustomsStatusName(size_t status);

inline constexpr int64_t kQuantityScale = 1000;  // per canonical unit
inline constexpr int64_t kWeightScale = 1000;    // grams per kg
inline constexpr int64_t kValueScale = 10000;    // 1/10,000 USD per USD

// `v * scale` rounded to the nearest integer (half away from zero).
// REQUIRES: |v * scale| < 2^63 (validated input is far below).
inline int64_t ToFixed(double v, int64_t scale) {
  return std::llround(v * static_cast<double>(scale));
}

// A goods code for unit prices: HS-6 code (< 2^20), HS revision and
// canonical unit in one integer.
inline uint32_t PriceKey(uint32_t hs6, uint32_t revision, Unit unit) {
  return hs6 | (revision << 20) | (static_cast<uint32_t>(unit) << 24);
}
inline uint32_t PriceKeyHs6(uint32_t key) { return key & 0xFFFFF; }
inline Unit PriceKeyUnit(uint32_t key) { return static_cast<Unit>(key >> 24); }

// ln(USD per canonical unit) x kLogPriceScale, rounded.
inline constexpr int64_t kLogPriceScale = 1000000;

// The log unit prices of one goods code's lines.
struct PriceSum {
  uint32_t key = 0;      // PriceKey
  uint64_t lines = 0;    // goods lines summed
  int64_t log_sum = 0;   // sum of ln(price) x kLogPriceScale
  int64_t log_sq_sum = 0;  // sum of ln(price)^2 x kLogPriceScale
  friend bool operator==(const PriceSum&, const PriceSum&) = default;
};

// One line's PriceSum. REQUIRES: value_usd > 0 and quantity > 0.
inline PriceSum LinePrice(uint32_t key, double value_usd, double quantity) {
  const double lp = std::log(value_usd / quantity);
  return PriceSum{key, 1, ToFixed(lp, kLogPriceScale), ToFixed(lp * lp, kLogPriceScale)};
}

// ln(dwell seconds + 60) x kLogPriceScale is what a dwell sample adds.
inline constexpr double kDwellOffsetSeconds = 60;

// The dwell key of a corridor: FNV-1a 32 of its code ("MX-US-2304"), the
// same in every process (corridor ids are not).
inline uint32_t DwellKey(std::string_view corridor_code) {
  uint32_t h = 2166136261u;
  for (char c : corridor_code) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
  return h;
}

// One shipment's dwell sample. REQUIRES: dwell >= 0.
inline PriceSum DwellSample(uint32_t key, DurationMs dwell) {
  const double l = std::log(static_cast<double>(dwell) / kMsPerSecond + kDwellOffsetSeconds);
  return PriceSum{key, 1, ToFixed(l, kLogPriceScale), ToFixed(l * l, kLogPriceScale)};
}

struct VolumeDelta {
 public:
  uint64_t shipments = 0;    // arrivals carrying goods of the group
  uint64_t goods_lines = 0;  // goods lines of the group in those arrivals
  std::array<int64_t, kUnitCount> quantity{};  // per canonical unit, x kQuantityScale
  int64_t gross_weight = 0;                    // grams
  int64_t declared_value = 0;                  // USD x kValueScale
  std::array<uint64_t, kCustomsStatusCount> customs{};  // declarations by status
  std::vector<PriceSum> prices;  // arrivals of catalog groups, by goods code (sorted by key)
  std::vector<PriceSum> dwell;   // border dwell samples by DwellKey (sorted by key)

  // Adds `price` (e.g. one goods line) to `prices`.
  void AddPrice(const PriceSum& price) { MergeSums(&prices, &price, 1, +1); }
  // Adds `sample` (one shipment's DwellSample) to `dwell`.
  void AddDwell(const PriceSum& sample) { MergeSums(&dwell, &sample, 1, +1); }

  double quantity_in(Unit unit) const {
    return static_cast<double>(quantity[static_cast<size_t>(unit)]) / kQuantityScale;
  }
  double gross_weight_kg() const { return static_cast<double>(gross_weight) / kWeightScale; }
  double declared_value_usd() const { return static_cast<double>(declared_value) / kValueScale; }

  void Add(const VolumeDelta& other) { Combine(other, +1); }
  // REQUIRES: `other` was added before (counts never go below zero).
  void Subtract(const VolumeDelta& other) { Combine(other, -1); }
  friend bool operator==(const VolumeDelta&, const VolumeDelta&) = default;

 private:
  // Two's-complement arithmetic through uint64: exact, and wrapping rather
  // than undefined if a sum ever leaves int64.
  static void Wrap(int64_t& a, int64_t b, int sign) {
    const uint64_t ub = static_cast<uint64_t>(b);
    a = static_cast<int64_t>(static_cast<uint64_t>(a) + (sign > 0 ? ub : 0 - ub));
  }
  static void Wrap(uint64_t& a, uint64_t b, int sign) { a = sign > 0 ? a + b : a - b; }
  void Combine(const VolumeDelta& o, int sign) {
    Wrap(shipments, o.shipments, sign);
    Wrap(goods_lines, o.goods_lines, sign);
    for (size_t i = 0; i < kUnitCount; ++i) Wrap(quantity[i], o.quantity[i], sign);
    Wrap(gross_weight, o.gross_weight, sign);
    Wrap(declared_value, o.declared_value, sign);
    for (size_t i = 0; i < kCustomsStatusCount; ++i) Wrap(customs[i], o.customs[i], sign);
    if (!o.prices.empty()) MergeSums(&prices, o.prices.data(), o.prices.size(), sign);
    if (!o.dwell.empty()) MergeSums(&dwell, o.dwell.data(), o.dwell.size(), sign);
  }
  // Merges sorted entries into *sums; an entry that a subtraction brings
  // to zero lines is removed (a rolling window does not keep codes it no
  // longer holds).
  static void MergeSums(std::vector<PriceSum>* sums, const PriceSum* other, size_t n, int sign);
};

// The stored and transported form (state stores, the repartition topic).
void ToState(const VolumeDelta& volume, internal::VolumeBucketState* state);
VolumeDelta FromState(const internal::VolumeBucketState& state);
// ... of keyed log sums alone (VolumeDelta::prices and ::dwell, the
// detectors' references); SumsFromState keeps entries with lines, sorted by
// key, whatever order they were written in.
void SumsToState(const std::vector<PriceSum>& sums,
                 google::protobuf::RepeatedPtrField<internal::PriceSumState>* out);
void SumsFromState(const google::protobuf::RepeatedPtrField<internal::PriceSumState>& in,
                   std::vector<PriceSum>* out);

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_VOLUME_H_
