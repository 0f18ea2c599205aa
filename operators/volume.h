// Volume measures: what shortfall sums per commodity group and corridor over
// event-time buckets and rolling windows.
//
// A shipment counts once per group it carries goods of, on the actual (ACT)
// arrival event (transport ARRI) at its port of entry. Customs declarations
// count once per group and status change. Quantities are kept per canonical
// unit (operators::Unit) and never added across units.
#ifndef SHORTFALL_OPERATORS_VOLUME_H_
#define SHORTFALL_OPERATORS_VOLUME_H_

#include <array>
#include <cstdint>

#include "operators/reference_data.h"

namespace shortfall::operators {

// CustomsStatus values 0..7 (UNSPECIFIED is never counted).
inline constexpr size_t kCustomsStatusCount = 8;

struct VolumeDelta {
  uint64_t shipments = 0;    // arrivals carrying goods of the group
  uint64_t goods_lines = 0;  // goods lines of the group in those arrivals
  std::array<double, kUnitCount> quantity{};  // per canonical unit
  double gross_weight_kg = 0;
  double declared_value_usd = 0;
  std::array<uint64_t, kCustomsStatusCount> customs{};  // declarations by status

  void Add(const VolumeDelta& other) {
    shipments += other.shipments;
    goods_lines += other.goods_lines;
    for (size_t i = 0; i < kUnitCount; ++i) quantity[i] += other.quantity[i];
    gross_weight_kg += other.gross_weight_kg;
    declared_value_usd += other.declared_value_usd;
    for (size_t i = 0; i < kCustomsStatusCount; ++i) customs[i] += other.customs[i];
  }
  bool IsZero() const { return *this == VolumeDelta{}; }
  friend bool operator==(const VolumeDelta&, const VolumeDelta&) = default;
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_VOLUME_H_
