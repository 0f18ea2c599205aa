#include "operators/volume.h"

#include <array>

#include "shortfall/internal/state.pb.h"

namespace shortfall::operators {

std::string_view CustomsStatusName(size_t status) {
  static constexpr std::array<std::string_view, kCustomsStatusCount> kNames = {
      "unspecified", "filed", "accepted", "hold", "hold_released", "exam_selected", "released",
      "refused"};
  return status < kNames.size() ? kNames[status] : "unknown";
}

void ToState(const VolumeDelta& v, internal::VolumeBucketState* s) {
  s->Clear();
  s->set_shipments(v.shipments);
  s->set_goods_lines(v.goods_lines);
  for (int64_t q : v.quantity) s->add_quantity(q);
  s->set_gross_weight_g(v.gross_weight);
  s->set_declared_value(v.declared_value);
  for (uint64_t c : v.customs) s->add_customs(c);
}

VolumeDelta FromState(const internal::VolumeBucketState& s) {
  VolumeDelta v;
  v.shipments = s.shipments();
  v.goods_lines = s.goods_lines();
  for (int i = 0; i < s.quantity_size() && i < static_cast<int>(kUnitCount); ++i) {
    v.quantity[static_cast<size_t>(i)] = s.quantity(i);
  }
  v.gross_weight = s.gross_weight_g();
  v.declared_value = s.declared_value();
  for (int i = 0; i < s.customs_size() && i < static_cast<int>(kCustomsStatusCount); ++i) {
    v.customs[static_cast<size_t>(i)] = s.customs(i);
  }
  return v;
}

}  // namespace shortfall::operators
