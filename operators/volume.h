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
// by adding one bucket and subtracting another without drift. int64 holds
// about 900 billion USD, 9 trillion kg or 9 quadrillion pieces per sum.
#ifndef SHORTFALL_OPERATORS_VOLUME_H_
#define SHORTFALL_OPERATORS_VOLUME_H_

#include <array>
#include <cmath>
#include <cstdint>

#include "operators/reference_data.h"

namespace shortfall::operators {

// CustomsStatus values 0..7 (UNSPECIFIED is never counted).
inline constexpr size_t kCustomsStatusCount = 8;

inline constexpr int64_t kQuantityScale = 1000;  // per canonical unit
inline constexpr int64_t kWeightScale = 1000;    // grams per kg
inline constexpr int64_t kValueScale = 10000;    // 1/10,000 USD per USD

// `v * scale` rounded to the nearest integer (half away from zero).
// REQUIRES: |v * scale| < 2^63 (validated input is far below).
inline int64_t ToFixed(double v, int64_t scale) {
  return std::llround(v * static_cast<double>(scale));
}

struct VolumeDelta {
  uint64_t shipments = 0;    // arrivals carrying goods of the group
  uint64_t goods_lines = 0;  // goods lines of the group in those arrivals
  std::array<int64_t, kUnitCount> quantity{};  // per canonical unit, x kQuantityScale
  int64_t gross_weight = 0;                    // grams
  int64_t declared_value = 0;                  // USD x kValueScale
  std::array<uint64_t, kCustomsStatusCount> customs{};  // declarations by status

  double quantity_in(Unit unit) const {
    return static_cast<double>(quantity[static_cast<size_t>(unit)]) / kQuantityScale;
  }
  double gross_weight_kg() const { return static_cast<double>(gross_weight) / kWeightScale; }
  double declared_value_usd() const { return static_cast<double>(declared_value) / kValueScale; }

  void Add(const VolumeDelta& other) {
    shipments += other.shipments;
    goods_lines += other.goods_lines;
    for (size_t i = 0; i < kUnitCount; ++i) quantity[i] += other.quantity[i];
    gross_weight += other.gross_weight;
    declared_value += other.declared_value;
    for (size_t i = 0; i < kCustomsStatusCount; ++i) customs[i] += other.customs[i];
  }
  // REQUIRES: `other` was added before (counts never go below zero).
  void Subtract(const VolumeDelta& other) {
    shipments -= other.shipments;
    goods_lines -= other.goods_lines;
    for (size_t i = 0; i < kUnitCount; ++i) quantity[i] -= other.quantity[i];
    gross_weight -= other.gross_weight;
    declared_value -= other.declared_value;
    for (size_t i = 0; i < kCustomsStatusCount; ++i) customs[i] -= other.customs[i];
  }
  bool IsZero() const { return *this == VolumeDelta{}; }
  friend bool operator==(const VolumeDelta&, const VolumeDelta&) = default;
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_VOLUME_H_
