#include "operators/volume.h"

#include <algorithm>
#include <array>

#include "shortfall/internal/state.pb.h"

namespace shortfall::operators {

std::string_view CustomsStatusName(size_t status) {
  static constexpr std::array<std::string_view, kCustomsStatusCount> kNames = {
      "unspecified", "filed", "accepted", "hold", "hold_released", "exam_selected", "released",
      "refused"};
  return status < kNames.size() ? kNames[status] : "unknown";
}

void VolumeDelta::MergeSums(std::vector<PriceSum>* sums, const PriceSum* other, size_t n, int sign) {
  for (size_t i = 0; i < n; ++i) {
    const PriceSum& o = other[i];
    auto it = std::lower_bound(sums->begin(), sums->end(), o.key,
                               [](const PriceSum& p, uint32_t key) { return p.key < key; });
    if (it == sums->end() || it->key != o.key) it = sums->insert(it, PriceSum{o.key, 0, 0, 0});
    Wrap(it->lines, o.lines, sign);
    Wrap(it->log_sum, o.log_sum, sign);
    Wrap(it->log_sq_sum, o.log_sq_sum, sign);
    if (it->lines == 0) sums->erase(it);
  }
}

void SumsToState(const std::vector<PriceSum>& sums,
                 google::protobuf::RepeatedPtrField<internal::PriceSumState>* out) {
  for (const PriceSum& p : sums) {
    internal::PriceSumState* state = out->Add();
    state->set_key(p.key);
    state->set_lines(p.lines);
    state->set_log_sum(p.log_sum);
    state->set_log_sq_sum(p.log_sq_sum);
  }
}

void SumsFromState(const google::protobuf::RepeatedPtrField<internal::PriceSumState>& in,
                   std::vector<PriceSum>* out) {
  out->clear();
  out->reserve(static_cast<size_t>(in.size()));
  // Sorted as written; merged one by one in case a writer did not sort.
  for (const internal::PriceSumState& p : in) {
    if (p.lines() == 0) continue;
    const PriceSum one{p.key(), p.lines(), p.log_sum(), p.log_sq_sum()};
    auto it = out->empty() || out->back().key < one.key
                  ? out->end()
                  : std::lower_bound(out->begin(), out->end(), one.key,
                                     [](const PriceSum& x, uint32_t key) { return x.key < key; });
    if (it != out->end() && it->key == one.key) {
      it->lines += one.lines;
      it->log_sum += one.log_sum;
      it->log_sq_sum += one.log_sq_sum;
    } else {
      out->insert(it, one);
    }
  }
}

void ToState(const VolumeDelta& v, internal::VolumeBucketState* s) {
  s->Clear();
  s->set_shipments(v.shipments);
  s->set_goods_lines(v.goods_lines);
  for (int64_t q : v.quantity) s->add_quantity(q);
  s->set_gross_weight_g(v.gross_weight);
  s->set_declared_value(v.declared_value);
  for (uint64_t c : v.customs) s->add_customs(c);
  SumsToState(v.prices, s->mutable_prices());
  SumsToState(v.dwell, s->mutable_dwell());
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
  SumsFromState(s.prices(), &v.prices);
  SumsFromState(s.dwell(), &v.dwell);
  return v;
}

}  // namespace shortfall::operators
